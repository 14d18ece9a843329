"""Running ``pipdepot serve`` as a real process, and real pip and uv clients against it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import clean_environ


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Depot:
    """A running ``pipdepot serve``; stop it by its PID."""

    mirror: Path
    log: Path
    args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    #: A command the server runs under (``prlimit --nofile=...``).
    prefix: tuple[str, ...] = ()
    #: ``--mirror`` when it is not the directory ``mirror`` (``s3://BUCKET/PREFIX``).
    location: str | None = None
    #: Variables added to the server's clean environment (the AWS ones for a bucket).
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def index(self) -> str:
        return f"{self.url}/simple/"

    def start(self) -> Depot:
        argv = [
            sys.executable,
            "-m",
            "pipdepot",
            "serve",
            "--port",
            str(self.port),
            "--mirror",
            self.location or str(self.mirror),
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.prefix, *argv, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_environ(**self.env),
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/+health", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"pipdepot serve did not start:\n{self.log.read_text()}")

    def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def peak_rss_mb(self) -> float:
        """The server's peak resident memory so far (VmHWM), in MiB."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        return kib / 1024

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def fresh_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def pip_install(
    python: Path, index: str, *requirements: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """pip, isolated from this machine's pip configuration, with no cache."""
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-cache-dir"]
    return _client([*pip, "--disable-pip-version-check", "--index-url", index, *requirements], check=check)


def uv_install(
    python: Path, index: str, *requirements: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """uv pip, with no config files and no cache."""
    uv = Path(sys.executable).parent / "uv"
    command = [str(uv if uv.exists() else "uv"), "pip", "install", "--no-config", "--no-cache"]
    return _client([*command, "--python", str(python), "--index-url", index, *requirements], check=check)


def _client(argv: list[str], *, check: bool) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, env=clean_environ(), capture_output=True, text=True, check=False, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{argv[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result


def installed(python: Path, module: str) -> str:
    out = subprocess.run(
        [str(python), "-c", f"import {module}; print({module}.VERSION)"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    return out.stdout.strip()


def get(
    url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange: status, headers and body, an error status included."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
