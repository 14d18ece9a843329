"""One server process of a contender: started by the harness, watched until healthy, stopped by its PID.

Servers run in their own session and are stopped by the PID the harness holds, never by name, so a
benchmark run cannot touch anybody else's nginx or gunicorn. Every started server is remembered in
``STARTED`` so that ``kill_leftovers()`` can stop what a failed part left running. Peak RSS is read
just before the stop, while ``/proc`` still has the processes.
"""

from __future__ import annotations

import datetime as dt
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from common import Json, clean_env, log, peak_rss
from web import fetch

if TYPE_CHECKING:
    from pathlib import Path


@dataclass
class Server:
    """One running contender, started and stopped by this script."""

    name: str
    argv: list[str]
    health: str
    index: str
    log: Path
    port: int
    env: dict[str, str] = field(default_factory=clean_env)
    process: subprocess.Popen[bytes] | None = None
    ready_s: float | None = None
    rss: Json | None = None

    @property
    def base(self) -> str:
        """The server's address."""
        return f"http://127.0.0.1:{self.port}"

    def page(self, project: str) -> str:
        """The URL of a project's page."""
        return f"{self.base}{self.index}{project}/"

    def start(self, timeout: float = 120) -> Server:
        """Spawn and wait for the first 200 on the health URL; that wait is the startup time measured."""
        log(f"starting {self.name} on port {self.port}")
        with self.log.open("ab") as out:
            out.write(f"\n=== {dt.datetime.now(dt.UTC).isoformat()} {shlex.join(self.argv)}\n".encode())
            out.flush()
            begin = time.perf_counter()
            self.process = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        STARTED.append(self)
        deadline = begin + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                break
            try:
                status, _, _ = fetch(self.base + self.health, timeout=2)
            except OSError:
                status = 0
            if status == 200:
                self.ready_s = round(time.perf_counter() - begin, 3)
                return self
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer 200 on {self.health}; see {self.log}")

    def stop(self) -> Json | None:
        """SIGTERM to our own PID (gunicorn and nginx masters stop their workers); peak RSS first."""
        if self.process is None:
            return self.rss
        if self.process.poll() is None:
            self.rss = peak_rss(self.process.pid)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        log(f"stopped {self.name} (peak RSS {self.rss})")
        self.process = None
        return self.rss

    def __enter__(self) -> Server:  # noqa: PYI034 (Server is final here)
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


#: Every server this process started, so none outlives it.
STARTED: list[Server] = []


def kill_leftovers() -> None:
    """Stop any server this process started and that still runs (a part that failed half-way)."""
    for server in STARTED:
        if server.process is not None and server.process.poll() is None:
            log(f"leftover {server.name} pid {server.process.pid}; stopping it")
            server.stop()
    STARTED.clear()
