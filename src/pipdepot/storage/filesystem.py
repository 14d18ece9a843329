"""The local filesystem store: the mirror directory itself, a static PEP 503 tree.

Create-only writes are a hard link of the finished file to its final name, which fails if the
name exists (atomic on every local filesystem). Compare-and-swap holds one of a few striped
``flock`` locks for the few microseconds between checking a file's content and renaming over
it; the kernel drops a lock when its process dies, so a killed writer never wedges the mirror.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pipdepot.storage.digests import file_sha256
from pipdepot.storage.spool import Spool
from pipdepot.storage.store import (
    STATE_DIR,
    AlreadyExists,
    IntegrityError,
    StoredFile,
    StoreKey,
    Versioned,
    VersionMismatch,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

__all__ = ["FilesystemStore"]

_CHUNK = 256 * 1024
#: Lock files for compare-and-swap, keys spread over them by hash: a bounded number of files, and
#: writers of different records seldom wait for each other (and then for microseconds).
_STRIPES = 64


def __dir__() -> list[str]:
    return __all__


class FilesystemStore:
    """Keys are paths under ``root``; writes go through a spool file and a rename (or a link)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)
        self._spool = Spool(root / STATE_DIR / "tmp")
        self._locks = root / STATE_DIR / "locks"

    def _path(self, key: StoreKey) -> Path:
        parts = key.split("/")
        if key.startswith("/") or any(p in {"", ".", ".."} for p in parts) or "\0" in key:
            raise ValueError(f"invalid store key {key!r}")
        return self.root.joinpath(*parts)

    async def stat(self, key: StoreKey) -> StoredFile | None:
        """The file at ``key``, or ``None``."""
        try:
            info = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return StoredFile(key, info.st_size, info.st_mtime)

    async def read(self, key: StoreKey) -> bytes | None:
        """The whole file at ``key``, or ``None``."""
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except (FileNotFoundError, NotADirectoryError):
            return None

    async def read_versioned(self, key: StoreKey) -> Versioned | None:
        """The whole file at ``key`` and its identity (inode, time, size), or ``None``."""
        try:
            return await asyncio.to_thread(_read_versioned, self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None

    async def read_start(self, key: StoreKey, size: int) -> bytes | None:
        """The first ``size`` bytes of the file at ``key``, or ``None``."""
        try:
            return await asyncio.to_thread(_read_start, self._path(key), size)
        except (FileNotFoundError, NotADirectoryError):
            return None

    async def stream(self, key: StoreKey, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The file's bytes in chunks, read in a thread."""
        stream = await asyncio.to_thread(self._path(key).open, "rb")
        with stream:
            stream.seek(start)
            left = None if end is None else end - start
            while left is None or left > 0:
                chunk = await asyncio.to_thread(stream.read, _CHUNK if left is None else min(_CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    async def put(
        self,
        key: StoreKey,
        source: Path | bytes,
        *,
        sha256: str | None = None,
        create: bool = False,
        if_version: str | None = None,
    ) -> StoredFile:
        """Store atomically; verify ``sha256`` first when given."""
        return await asyncio.to_thread(self._put, key, source, sha256, create, if_version)

    def _put(
        self, key: StoreKey, source: Path | bytes, sha256: str | None, create: bool, if_version: str | None
    ) -> StoredFile:
        target = self._path(key)
        staged = self._stage(source)
        try:
            if sha256 is not None and file_sha256(staged)[0] != sha256:
                raise IntegrityError(f"{key}: sha256 mismatch")
            staged.chmod(0o644)
            for attempt in range(3):  # another writer's delete may take an emptied directory away meanwhile
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self._place(key, staged, target, create=create, if_version=if_version)
                    break
                except FileNotFoundError:
                    if attempt == 2 or not staged.exists():
                        raise
        finally:
            staged.unlink(missing_ok=True)
        info = target.stat()
        version = _version(source) if isinstance(source, bytes) else None
        return StoredFile(key, info.st_size, info.st_mtime, version)

    def _place(
        self, key: StoreKey, staged: Path, target: Path, *, create: bool, if_version: str | None
    ) -> None:
        if create:
            try:
                os.link(staged, target)
            except FileExistsError:
                raise AlreadyExists(key) from None
        elif if_version is not None:
            with self._locked(key):
                if _content_version(target) != if_version:
                    raise VersionMismatch(key)
                staged.replace(target)
        else:
            staged.replace(target)

    def _stage(self, source: Path | bytes) -> Path:
        if not isinstance(source, bytes):
            return source
        fd, name = tempfile.mkstemp(dir=self.spool_directory())
        with os.fdopen(fd, "wb") as stream:
            stream.write(source)
        return Path(name)

    @contextlib.contextmanager
    def _locked(self, key: StoreKey) -> Iterator[None]:
        stripe = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % _STRIPES
        self._locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._locks / str(stripe), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    async def delete(self, key: StoreKey) -> None:
        """Remove ``key``; empty project directories go with it."""
        path = self._path(key)
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    async def list(self, prefix: str) -> AsyncIterator[StoreKey]:
        """Keys directly and indirectly under ``prefix``."""
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return
        for directory, _, files in os.walk(base):
            for name in files:
                yield StoreKey(str(Path(directory, name).relative_to(self.root)))

    async def count(self, prefix: str, *, excluding: str | tuple[str, ...] = "") -> int:
        """Files under ``prefix``, counted by a walk in a thread."""
        return await asyncio.to_thread(_count, self.root / prefix if prefix else self.root, excluding)

    async def children(self, prefix: str) -> tuple[str, ...]:
        """Directories directly under ``prefix`` (the mirror's own, dot-named, left out)."""
        return await asyncio.to_thread(_children, self.root / prefix if prefix else self.root)

    async def sweep(self) -> None:
        """Nothing: a write is staged in the writer's spool, which the next writer clears if it died."""

    def local_path(self, key: StoreKey) -> Path | None:
        """The file's own path: the OS can send it without copying."""
        return self._path(key)

    def spool_directory(self) -> Path:
        """The process's own spool, inside the mirror: finishing a download is a rename."""
        return self._spool.path

    async def close(self) -> None:
        """Remove this process's spool."""
        self._spool.close()


def _content_version(path: Path) -> str | None:
    try:
        return _version(path.read_bytes())
    except (FileNotFoundError, NotADirectoryError):
        return None


def _version(data: bytes) -> str:
    """A small file's version: its content's digest.

    An inode and a time can repeat; content cannot change without its digest (and the same
    content again is the same record, so a change and its undoing between two reads is harmless).
    """
    return hashlib.sha256(data).hexdigest()[:32]


def _read_versioned(path: Path) -> Versioned:
    data = path.read_bytes()
    return Versioned(data, _version(data))


def _read_start(path: Path, size: int) -> bytes:
    with path.open("rb") as stream:
        return stream.read(size)


def _count(base: Path, excluding: str | tuple[str, ...]) -> int:
    found = 0
    for _, _, files in os.walk(base):
        found += sum(1 for name in files if not (excluding and name.endswith(excluding)))
    return found


def _children(base: Path) -> tuple[str, ...]:
    try:
        entries = list(os.scandir(base))
    except (FileNotFoundError, NotADirectoryError):
        return ()
    return tuple(
        sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))
    )
