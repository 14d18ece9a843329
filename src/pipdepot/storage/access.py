"""Whether a mirror directory can be written, asked before a writer starts.

There is no writer lock: any number of processes write one mirror at once (see
``storage.store``). What a writer must know first is that it can write at all, so that an
offline server on read-only media opens as a reader instead of failing at its first write.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from pipdepot.errors import ConfigError
from pipdepot.storage.store import STATE_DIR

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["ReadOnlyMirrorError", "require_writable"]


def __dir__() -> list[str]:
    return __all__


class ReadOnlyMirrorError(ConfigError):
    """The mirror directory cannot be written at all: read-only media or mount, or no permission."""


_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def require_writable(mirror_dir: Path) -> None:
    """Make the mirror directory (on first use) and its state directory, or say why not.

    :raises ReadOnlyMirrorError: the directory exists but cannot be written.
    :raises ConfigError: the directory cannot be used.
    """
    state = mirror_dir / STATE_DIR
    try:
        state.mkdir(parents=True, exist_ok=True)
        if not os.access(state, os.W_OK | os.X_OK):
            raise PermissionError(errno.EROFS if _read_only(state) else errno.EACCES, "cannot write")
    except OSError as exc:
        cause = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno in _READ_ONLY and mirror_dir.is_dir():
            raise ReadOnlyMirrorError(f"mirror directory {mirror_dir}: {cause}") from exc
        raise ConfigError(f"mirror directory {mirror_dir}: {cause}") from exc


def _read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
