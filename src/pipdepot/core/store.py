"""Where the mirror's bytes live: a small interface, so the filesystem can become an object store.

Keys are relative POSIX paths (``packages/ab/cd/x.whl``, ``six/index.html``).
Every write is atomic: a reader sees the old content or the new, never half.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NewType, Protocol

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

__all__ = ["COMMIT_MARKER", "STATE_DIR", "IntegrityError", "Store", "StoreKey", "StoredFile"]

StoreKey = NewType("StoreKey", str)

#: pipdepot's own files inside the mirror directory; no project can be named so.
STATE_DIR = ".pipdepot"
#: Spool files named so say "this key is being moved into the tree": kept when the spool is cleared,
#: so a writer that starts after a kill can remove a file that was moved but never recorded.
COMMIT_MARKER = "commit-"


def __dir__() -> list[str]:
    return __all__


class IntegrityError(Exception):
    """Bytes did not match the digest or size they were promised to have; nothing was stored."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file present in the store."""

    key: StoreKey
    size: int
    mtime: float


class Store(Protocol):
    """The mirror's storage."""

    async def stat(self, key: StoreKey) -> StoredFile | None:
        """The file at ``key``, or ``None``."""

    async def read(self, key: StoreKey) -> bytes | None:
        """The whole (small) file at ``key``, or ``None``."""

    async def read_start(self, key: StoreKey, size: int) -> bytes | None:
        """The first ``size`` bytes of the file at ``key`` (all of it if shorter), or ``None``."""

    async def put(self, key: StoreKey, source: Path | bytes, *, sha256: str | None = None) -> StoredFile:
        """Store ``source`` at ``key`` atomically; with ``sha256``, only if it matches.

        A ``Path`` source is a finished local file, moved into the store (it is consumed).

        :raises IntegrityError: the digest does not match; nothing is stored.
        """

    async def delete(self, key: StoreKey) -> None:
        """Remove ``key`` if present."""

    def list(self, prefix: str) -> AsyncIterator[StoreKey]:
        """Every key under ``prefix`` (a directory-like prefix ending in ``/``)."""

    def local_path(self, key: StoreKey) -> Path | None:
        """A local path to send with the OS's zero-copy path, when the store has one."""

    def spool_directory(self) -> Path:
        """A local directory for files being downloaded, on the store's filesystem if it has one."""
