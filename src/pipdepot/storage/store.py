"""Where the mirror's bytes live: a small interface, so the filesystem and an object store serve alike.

Keys are relative POSIX paths (``packages/ab/cd/x.whl``, ``six/index.html``).
Every write is atomic: a reader sees the old content or the new, never half.

Many processes write one store at once (``serve`` nodes, ``sync``, ``add``, ``import``), so
the interface has the two conditional writes an object store offers and nothing that needs a
lock held across calls:

- ``put(..., create=True)``: create-only (S3 ``If-None-Match: *``): of two writers racing on
  one key, one wins and the other gets :class:`AlreadyExists` and uses the winner's file.
- ``put(..., if_version=v)``: compare-and-swap (S3 ``If-Match``) on a version read with
  :meth:`Store.read_versioned`, for the small records that are read, changed and written
  back; a loser gets :class:`VersionMismatch` and starts again from a fresh read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NewType, Protocol

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

__all__ = [
    "COMMIT_MARKER",
    "STATE_DIR",
    "AlreadyExists",
    "IntegrityError",
    "Store",
    "StoreError",
    "StoreKey",
    "StoredFile",
    "VersionMismatch",
    "Versioned",
]

StoreKey = NewType("StoreKey", str)

#: pipdepot's own files inside the mirror directory; no project can be named so.
STATE_DIR = ".pipdepot"
#: Spool files named so say "this key is being moved into the tree": kept when the spool is cleared,
#: so a writer that starts after a kill can record (or remove) a file that was moved but never recorded.
COMMIT_MARKER = "commit-"


def __dir__() -> list[str]:
    return __all__


class IntegrityError(Exception):
    """Bytes did not match the digest or size they were promised to have; nothing was stored."""


class AlreadyExists(Exception):  # noqa: N818 (named for what the caller learns, as FileExistsError)
    """A create-only write found the key present; nothing was changed."""


class VersionMismatch(Exception):  # noqa: N818
    """The key changed (or appeared, or went) since its version was read; nothing was changed."""


class StoreError(OSError):
    """The store could not be used (unreachable, no answer in time, access denied, an error answer).

    Its message is one line that names the key (or the store) and the cause; an ``OSError``, as
    the filesystem store's own failures are.
    """


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file present in the store."""

    key: StoreKey
    size: int
    mtime: float
    #: The version a compare-and-swap would need now, when the write knows it.
    version: str | None = None


@dataclass(frozen=True, slots=True)
class Versioned:
    """A small file's bytes and the version they were read at (an ETag, or the file's identity)."""

    data: bytes
    version: str


class Store(Protocol):
    """The mirror's storage."""

    #: Where the store is, for messages (a directory, ``s3://bucket/prefix``).
    location: str

    async def stat(self, key: StoreKey) -> StoredFile | None:
        """The file at ``key``, or ``None``."""

    async def read(self, key: StoreKey) -> bytes | None:
        """The whole (small) file at ``key``, or ``None``."""

    async def read_versioned(self, key: StoreKey) -> Versioned | None:
        """The whole (small) file at ``key`` and its version, or ``None``."""

    async def read_start(self, key: StoreKey, size: int) -> bytes | None:
        """The first ``size`` bytes of the file at ``key`` (all of it if shorter), or ``None``."""

    def stream(self, key: StoreKey, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes of ``key`` from ``start`` up to ``end`` (exclusive; ``None``: the end), in chunks.

        :raises FileNotFoundError: no such key (before the first chunk).
        """

    async def put(
        self,
        key: StoreKey,
        source: Path | bytes,
        *,
        sha256: str | None = None,
        create: bool = False,
        if_version: str | None = None,
    ) -> StoredFile:
        """Store ``source`` at ``key`` atomically; with ``sha256``, only if it matches.

        A ``Path`` source is a finished local file in :meth:`spool_directory`; it is consumed
        (moved or uploaded, then removed) whatever the outcome.

        :raises IntegrityError: the digest does not match; nothing is stored.
        :raises AlreadyExists: ``create`` and the key is present; nothing is stored.
        :raises VersionMismatch: ``if_version`` is not the key's current version; nothing is stored.
        """

    async def delete(self, key: StoreKey) -> None:
        """Remove ``key`` if present."""

    def list(self, prefix: str) -> AsyncIterator[StoreKey]:
        """Every key under ``prefix`` (a directory-like prefix ending in ``/``, or ``""``)."""

    async def count(self, prefix: str, *, excluding: str | tuple[str, ...] = "") -> int:
        """How many keys are under ``prefix`` (those ending in ``excluding``, or one of them, left out).

        Without holding the caller's event loop: a census of 100,000 files takes seconds.
        """

    async def children(self, prefix: str) -> tuple[str, ...]:
        """The names directly under ``prefix`` that hold keys (directories), sorted.

        A name whose keys were all deleted may still be listed by some S3 servers (SeaweedFS
        keeps the emptied directory): a caller treats a name with no keys as absent.
        """

    async def sweep(self) -> None:
        """Remove what writers killed mid-write left in the store itself (their spools clear themselves)."""

    def local_path(self, key: StoreKey) -> Path | None:
        """A local path to send with the OS's zero-copy path, when the store has one."""

    def spool_directory(self) -> Path:
        """The process's own local directory for downloads (on the store's filesystem, if it has one)."""

    async def close(self) -> None:
        """Release the spool and connections."""
