"""One writer per mirror directory, across processes.

``serve``, ``sync``, ``add`` and ``import`` change the mirror and its state
files, and each keeps some of that state in memory: two at once would undo each
other's records. Each holds an exclusive ``flock`` on ``DIR/.pipdepot/lock``
while it runs; the kernel drops it when the process ends, however it ends.
Readers (``check``, ``ls``, ``export``, nginx, ``file://`` clients) need no lock:
every file is replaced atomically.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from typing import TYPE_CHECKING

from pipdepot.errors import ConfigError
from pipdepot.storage.store import STATE_DIR

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["ReadOnlyMirrorError", "writer_lock"]


def __dir__() -> list[str]:
    return __all__


class ReadOnlyMirrorError(ConfigError):
    """The mirror directory cannot be written at all: read-only media or mount, or no permission."""


_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


@contextlib.contextmanager
def writer_lock(mirror_dir: Path, purpose: str) -> Iterator[None]:
    """Hold the mirror's writer lock for ``purpose`` (``pipdepot sync``), or fail at once.

    :raises ReadOnlyMirrorError: the directory exists but cannot be written.
    :raises ConfigError: the directory cannot be used, or another process writes to it.
    """
    path = mirror_dir / STATE_DIR / "lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # the mirror directory too, on first use
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno in _READ_ONLY and mirror_dir.is_dir():
            raise ReadOnlyMirrorError(f"mirror directory {mirror_dir}: {exc.strerror}") from exc
        raise ConfigError(f"mirror directory {mirror_dir}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise ConfigError(
                f"mirror {mirror_dir} is in use by {holder}",
                hint="stop it first, or give this command another --mirror",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{purpose} (pid {os.getpid()})\n".encode(), 0)
        yield
    finally:
        os.close(fd)
