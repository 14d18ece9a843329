"""Each writing process's own scratch directory, beside the others', and what a dead one left.

Many processes write one mirror, so none may clear the shared scratch directory at start as a
single writer could. Each takes ``SCRATCH/<id>/`` and holds an ``flock`` on ``SCRATCH/<id>.lock``
while it lives; the kernel drops the lock when the process ends, however it ends. A process that
opens a spool clears the directories whose lock it can take (their owner is dead) and adopts their
commit markers, so a file a killed writer moved into the tree is still recorded.

The lock file is locked before it gets its final name (a rename), so no process ever sees an
unlocked lock of a live owner.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

from pipdepot.storage.store import COMMIT_MARKER

__all__ = ["Spool"]

_LOCK = ".lock"
_NEW_LOCK = ".new-lock-"
#: A lock file not yet renamed into place, older than this, was left by a process killed in between.
_NEW_LOCK_AGE = 60.0


def __dir__() -> list[str]:
    return __all__


class Spool:
    """A process's private directory under ``scratch``, created on first use."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self._path: Path | None = None
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        """The directory, made (and the dead writers' directories cleared) on first use."""
        if self._path is None:
            self._path = self._claim()
            self._clear_abandoned()
        return self._path

    def _claim(self) -> Path:
        self.scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.scratch, prefix=_NEW_LOCK)
        fcntl.flock(fd, fcntl.LOCK_EX)
        ident = f"{os.getpid()}-{Path(name).name.removeprefix(_NEW_LOCK)}"
        Path(name).rename(self.scratch / f"{ident}{_LOCK}")
        self._fd = fd
        path = self.scratch / ident
        path.mkdir()
        return path

    def _clear_abandoned(self) -> None:
        """Clear what dead writers left; their commit markers move here, for this process to settle."""
        for entry in sorted(self.scratch.iterdir()):
            if entry == self._path or entry.name == f"{self._path and self._path.name}{_LOCK}":
                continue
            if entry.name.endswith(_LOCK) or entry.name.startswith(_NEW_LOCK):
                self._clear_if_dead(entry)
            elif entry.is_dir():
                if not (self.scratch / f"{entry.name}{_LOCK}").exists():  # its owner's lock went: dead
                    self._adopt(entry)
            else:  # a file of the single-writer layout, from before directories per process
                self._adopt_file(entry)

    def _clear_if_dead(self, lock: Path) -> None:
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # alive
            if lock.name.startswith(_NEW_LOCK):
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - lock.stat().st_mtime > _NEW_LOCK_AGE:
                        lock.unlink()
                return
            directory = self.scratch / lock.name.removesuffix(_LOCK)
            if directory.is_dir():
                self._adopt(directory)
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def _adopt(self, directory: Path) -> None:
        for entry in directory.iterdir():
            self._adopt_file(entry)
        shutil.rmtree(directory, ignore_errors=True)

    def _adopt_file(self, entry: Path) -> None:
        assert self._path is not None  # noqa: S101 (claimed first)
        if entry.name.startswith(COMMIT_MARKER) and entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                entry.rename(self._path / entry.name)
        else:
            _remove(entry)

    def close(self) -> None:
        """Remove this process's directory (commit markers stay for the next writer: they name work)."""
        if self._path is None:
            return
        leftovers = [e for e in self._path.iterdir() if e.name.startswith(COMMIT_MARKER)]
        if leftovers:  # kept without a lock: the next writer adopts them
            for entry in self._path.iterdir():
                if entry not in leftovers:
                    _remove(entry)
        else:
            shutil.rmtree(self._path, ignore_errors=True)
        (self.scratch / f"{self._path.name}{_LOCK}").unlink(missing_ok=True)
        if self._fd is not None:
            os.close(self._fd)
        self._path, self._fd = None, None


def _remove(entry: Path) -> None:
    if entry.is_dir():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)
