"""Shared fixtures: running pipdepot as a real process, isolated clients, a Debian root."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.seaweed import Seaweed

PipdepotRunner = Callable[..., subprocess.CompletedProcess[str]]


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without anything that steers pip or uv, plus ``extra``.

    The machine's own pip configuration (PIP_* variables, /etc/pip.conf,
    /etc/xdg/pip) would otherwise let an install pass for the wrong reason.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_", "DIB_", "PYPI_MIRROR_URL", "PIPDEPOT_")) and k != "VIRTUAL_ENV"
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    env.update(extra)
    return env


@pytest.fixture
def run_pipdepot(tmp_path: Path) -> PipdepotRunner:
    """Run the real ``pipdepot`` command in a clean environment with a private HOME."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)

    def run(
        *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        environ = clean_environ(HOME=str(home))
        environ.pop("XDG_CACHE_HOME", None)
        environ.pop("XDG_CONFIG_HOME", None)
        environ.update(env or {})
        result = subprocess.run(
            [sys.executable, "-m", "pipdepot", *args],
            env=environ,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"pipdepot {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    return run


def debian_mirrors() -> tuple[str, str]:
    """The Debian and Debian-security mirrors apt already uses on this machine."""
    texts = [p.read_text() for p in Path("/etc/apt").rglob("*.sources")]
    texts += [p.read_text() for p in Path("/etc/apt").rglob("*.list")]
    urls = re.findall(r"(?:URIs:|deb)\s+(?:\[[^\]]*\]\s+)?(\S+)", "\n".join(texts))
    main = next((u for u in urls if u.rstrip("/").endswith("/debian")), None)
    security = next((u for u in urls if u.rstrip("/").endswith("/debian-security")), None)
    if main is None or security is None:
        pytest.fail(f"cannot find the Debian mirrors in apt's sources: {urls}")
    return main, security


@pytest.fixture(scope="session")
def debian_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minimal Debian bookworm with python3-pip and python3-venv, built once per run."""
    if os.geteuid() != 0:
        pytest.fail("building a Debian root needs root (debootstrap, chroot, mounts)")
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is not installed (apt-get install debootstrap)")
    root = tmp_path_factory.mktemp("debian") / "root"
    main, _ = debian_mirrors()
    result = subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=python3-pip,python3-venv",
            "bookworm",
            str(root),
            main,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"debootstrap failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return root


def download_wheel(requirement: str, directory: Path) -> Path:
    """One wheel from PyPI, fetched with the machine's pip, its configuration ignored."""
    directory.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    result = subprocess.run(
        [*argv, "--disable-pip-version-check", "-d", str(directory), requirement],
        env=clean_environ(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    wheels = list(directory.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        pytest.fail(f"cannot download {requirement}:\n{result.stderr[-2000:]}")
    return wheels[0]


@pytest.fixture(scope="session")
def uv_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of the uv this test run uses, fetched once, to install uv inside a root from the mirror."""
    from importlib.metadata import version  # noqa: PLC0415

    return download_wheel(f"uv=={version('uv')}", tmp_path_factory.mktemp("uv-wheel"))


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    """A real S3 server (SeaweedFS) on loopback ports, started once per run; ``location()`` per test.

    It has ``endpoint``, ``access_key``, ``secret_key``, ``env`` (the AWS variables that reach it)
    and ``location()``: a fresh ``s3://bucket/prefix`` each call.
    """
    server = Seaweed(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- a plain web server on loopback ---------------------------------------------------------------


class _Files(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}  # noqa: RUF012 (set per server, read only)

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "no such file")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(ConnectionError):  # a client that stops reading (too large)
            self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """A plain web server on loopback (where OpenStack keeps its upper-constraints): its URL and files."""
    files: dict[str, bytes] = {}
    handler = type("Handler", (_Files,), {"files": files})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", files
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
