"""The local filesystem store: the mirror directory itself, a static PEP 503 tree."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pipdepot.core.digests import file_sha256
from pipdepot.core.store import COMMIT_MARKER, STATE_DIR, IntegrityError, StoredFile, StoreKey

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["FilesystemStore"]


def __dir__() -> list[str]:
    return __all__


class FilesystemStore:
    """Keys are paths under ``root``; writes go through a temporary file and a rename."""

    def __init__(self, root: Path, *, writer: bool = True) -> None:
        """Open the mirror at ``root``; a ``writer`` (who holds the mirror's lock) clears the spool."""
        self.root = root
        self._spool = root / STATE_DIR / "tmp"
        if writer:
            self._spool.mkdir(parents=True, exist_ok=True)
            for leftover in self._spool.iterdir():  # a killed download never becomes a file
                if not leftover.name.startswith(COMMIT_MARKER):  # the mirror reads those first
                    leftover.unlink(missing_ok=True)

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

    async def read_start(self, key: StoreKey, size: int) -> bytes | None:
        """The first ``size`` bytes of the file at ``key``, or ``None``."""
        try:
            return await asyncio.to_thread(_read_start, self._path(key), size)
        except (FileNotFoundError, NotADirectoryError):
            return None

    async def put(self, key: StoreKey, source: Path | bytes, *, sha256: str | None = None) -> StoredFile:
        """Store atomically; verify ``sha256`` first when given."""
        return await asyncio.to_thread(self._put, key, source, sha256)

    def _put(self, key: StoreKey, source: Path | bytes, sha256: str | None) -> StoredFile:
        target = self._path(key)
        if isinstance(source, bytes):
            if sha256 is not None and hashlib.sha256(source).hexdigest() != sha256:
                raise IntegrityError(f"{key}: sha256 mismatch")
            fd, name = tempfile.mkstemp(dir=self._spool)
            with os.fdopen(fd, "wb") as stream:
                stream.write(source)
            staged = Path(name)
        else:
            staged = source
            if sha256 is not None and file_sha256(staged)[0] != sha256:
                staged.unlink(missing_ok=True)
                raise IntegrityError(f"{key}: sha256 mismatch")
        staged.chmod(0o644)
        target.parent.mkdir(parents=True, exist_ok=True)
        staged.replace(target)
        info = target.stat()
        return StoredFile(key, info.st_size, info.st_mtime)

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

    def local_path(self, key: StoreKey) -> Path | None:
        """The file's own path: the OS can send it without copying."""
        return self._path(key)

    def spool_directory(self) -> Path:
        """Temporary files live inside the mirror, so finishing a download is a rename."""
        return self._spool


def _read_start(path: Path, size: int) -> bytes:
    with path.open("rb") as stream:
        return stream.read(size)
