"""Per-process spools: a killed writer's directory is cleared and its commit markers adopted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pipdepot.storage.spool import Spool
from pipdepot.storage.store import COMMIT_MARKER

if TYPE_CHECKING:
    from collections.abc import Iterator

_WRITER = """
import sys, time
from pathlib import Path
from pipdepot.storage.spool import Spool

spool = Spool(Path(sys.argv[1]))
(spool.path / "partial-download.whl").write_bytes(b"half a wheel")
(spool.path / "commit-six").write_text("six/six-1.0.tar.gz")
print(spool.path, flush=True)
time.sleep(600)
"""


class Writer:
    """A real process holding a spool under ``scratch``, with a half download and a commit marker."""

    def __init__(self, scratch: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(scratch)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.path = Path(self.process.stdout.readline().strip())
        assert self.path.is_dir(), "the writer did not start"

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    started = Writer(tmp_path / "scratch")
    try:
        yield started
    finally:
        started.kill()


def test_a_killed_writers_spool_is_cleared_and_its_commits_adopted(writer: Writer, tmp_path: Path) -> None:
    writer.kill()
    spool = Spool(tmp_path / "scratch")
    own = spool.path  # a spool is claimed, and the dead ones cleared, on first use
    try:
        assert own != writer.path
        assert not writer.path.exists()
        assert not (tmp_path / "scratch" / f"{writer.path.name}.lock").exists()
        adopted = sorted(p.name for p in spool.path.iterdir())
        assert adopted == [f"{COMMIT_MARKER}six"]
        assert (spool.path / f"{COMMIT_MARKER}six").read_text() == "six/six-1.0.tar.gz"
    finally:
        spool.close()


def test_a_live_writers_spool_is_left_alone(writer: Writer, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "scratch")
    own = spool.path
    try:
        assert own != writer.path
        assert (writer.path / "partial-download.whl").read_bytes() == b"half a wheel"
        assert (writer.path / f"{COMMIT_MARKER}six").exists()
        assert list(own.iterdir()) == []
    finally:
        spool.close()
    assert not own.exists()
    assert (writer.path / "partial-download.whl").exists()


def test_close_keeps_commit_markers_for_the_next_writer(tmp_path: Path) -> None:
    first = Spool(tmp_path / "scratch")
    (first.path / f"{COMMIT_MARKER}x").write_text("x")
    (first.path / "download").write_bytes(b"x")
    path = first.path
    first.close()
    assert sorted(p.name for p in path.iterdir()) == [f"{COMMIT_MARKER}x"]
    second = Spool(tmp_path / "scratch")
    try:
        assert [p.name for p in second.path.iterdir()] == [f"{COMMIT_MARKER}x"]
        assert not path.exists()
    finally:
        second.close()
