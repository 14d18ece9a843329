"""The S3 store: the mirror's tree as objects under ``s3://bucket/prefix/``, through obstore.

The bucket holds exactly the files a filesystem mirror's directory holds, under the same keys,
so any static web server in front of it serves a PEP 503 tree. The conditional writes are
S3's own: create-only is ``If-None-Match: *`` (obstore ``mode="create"``), compare-and-swap
is ``If-Match`` on the ETag that :meth:`S3Store.read_versioned` returned (a large file is
written create-only in parts: :mod:`s3uploads`). Reads of large objects are ranged GETs, each
read whole within the request deadline, so a slow consumer never holds a request open and memory
stays at one range per stream.

Every request has a deadline and every failure surfaces as one :class:`StoreError` whose
one-line message names the key and the cause (:mod:`s3calls`).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

import obstore

from pipdepot.storage.s3calls import S3Calls
from pipdepot.storage.s3uploads import S3Uploads
from pipdepot.storage.spool import Spool
from pipdepot.storage.store import StoredFile, StoreError, StoreKey, Versioned, VersionMismatch

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from obstore import GetOptions

    from pipdepot.storage.aws import AwsSettings

__all__ = ["S3Store"]

#: A stream's first range is small (a small file in one request, a quick first byte); later
#: ranges double up to the largest, so a large file costs few requests and bounded memory.
_FIRST_RANGE = 256 * 1024
_LARGEST_RANGE = 8 * 1024 * 1024


def __dir__() -> list[str]:
    return __all__


class S3Store:
    """Keys are objects under ``prefix`` in ``bucket``; downloads spool in the local ``scratch``."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        settings: AwsSettings,
        *,
        scratch: Path,
        timeout: float = 30.0,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._calls = S3Calls(bucket, self.prefix, settings, timeout=timeout)
        self._uploads = S3Uploads(self._calls)
        self._client = self._calls.client
        self.location = self._calls.location
        self._spool = Spool(scratch)

    def _path(self, key: StoreKey) -> str:
        """The key, checked as the filesystem store checks it (a relative POSIX path, no dot parts)."""
        parts = key.split("/")
        if key.startswith("/") or any(p in {"", ".", ".."} for p in parts) or "\0" in key:
            raise ValueError(f"invalid store key {key!r}")
        return key

    async def stat(self, key: StoreKey) -> StoredFile | None:
        """The object's size and time, or ``None`` (one HEAD)."""
        path = self._path(key)
        try:
            meta = await self._calls.call(path, "HEAD", obstore.head_async(self._client, path))
        except FileNotFoundError:
            return None
        return StoredFile(key, meta["size"], meta["last_modified"].timestamp())

    async def read(self, key: StoreKey) -> bytes | None:
        """The whole object, or ``None`` (one GET)."""
        found = await self.read_versioned(key)
        return None if found is None else found.data

    async def read_versioned(self, key: StoreKey) -> Versioned | None:
        """The whole object and its ETag, or ``None`` (one GET)."""
        path = self._path(key)
        try:
            data, etag = await self._calls.call(path, "GET", self._get(path, None))
        except FileNotFoundError:
            return None
        return Versioned(data, etag)

    async def _get(self, path: str, options: GetOptions | None) -> tuple[bytes, str]:
        result = await obstore.get_async(self._client, path, options=options)
        data = await result.bytes_async()
        return bytes(data), result.meta["e_tag"] or ""

    async def read_start(self, key: StoreKey, size: int) -> bytes | None:
        """The first ``size`` bytes (one ranged GET), or ``None``."""
        path = self._path(key)
        if size <= 0:
            return None if await self.stat(key) is None else b""
        try:
            data, _ = await self._calls.call(path, "GET", self._get(path, {"range": (0, size)}))
        except FileNotFoundError:
            return None
        except StoreError:  # S3 refuses any range of an empty object
            found = await self.stat(key)
            if found is None:
                return None
            if found.size == 0:
                return b""
            raise
        return data

    async def stream(self, key: StoreKey, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes from ``start`` to ``end``, by ranged GETs of one version of the object.

        Every range after the first is asked ``If-Match`` the first one's ETag: an object
        replaced while it is read is an error, never a mix of two versions.

        :raises FileNotFoundError: no such key (before the first chunk).
        :raises StoreError: the object changed while read, or the store failed.
        """
        path = self._path(key)
        if end is not None and end <= start:
            if await self.stat(key) is None:
                raise FileNotFoundError(f"{self._calls.where(path)}: no such object")
            return
        position, length, etag = start, _FIRST_RANGE, None
        while end is None or position < end:
            stop = position + length if end is None else min(position + length, end)
            if etag is None:
                first = await self._first_range(key, position, stop)
                if first is None:
                    return
                data, etag, size = first
            else:
                data, size = await self._next_range(path, position, stop, etag)
            if data:
                yield data
            position += len(data)
            if not data or position >= size:
                return
            length = min(length * 2, _LARGEST_RANGE)

    async def _first_range(self, key: StoreKey, start: int, stop: int) -> tuple[bytes, str, int] | None:
        """The range's bytes, the object's ETag and size; ``None``: ``start`` is at or past the end."""
        path = self._path(key)
        try:
            result = await self._calls.call(
                path, "GET", obstore.get_async(self._client, path, options={"range": (start, stop)})
            )
            data = await self._calls.call(path, "GET", result.bytes_async())
        except FileNotFoundError:
            raise FileNotFoundError(f"{self._calls.where(path)}: no such object") from None
        except StoreError:
            found = await self.stat(key)  # S3 refuses a range that starts at or past the end
            if found is None:
                raise FileNotFoundError(f"{self._calls.where(path)}: no such object") from None
            if found.size <= start:
                return None
            raise
        return bytes(data), result.meta["e_tag"] or "", result.meta["size"]

    async def _next_range(self, path: str, start: int, stop: int, etag: str) -> tuple[bytes, int]:
        options: GetOptions = {"range": (start, stop), "if_match": etag}
        try:
            result = await self._calls.call(
                path, "GET", obstore.get_async(self._client, path, options=options)
            )
            data = await self._calls.call(path, "GET", result.bytes_async())
        except (FileNotFoundError, VersionMismatch):
            raise StoreError(
                f"{self._calls.where(path)}: GET: the object changed while it was read"
            ) from None
        return bytes(data), result.meta["size"]

    async def put(
        self,
        key: StoreKey,
        source: Path | bytes,
        *,
        sha256: str | None = None,
        create: bool = False,
        if_version: str | None = None,
    ) -> StoredFile:
        """Upload atomically after checking ``sha256``; a ``Path`` source is removed whatever happens.

        :raises IntegrityError: the digest does not match; nothing is stored.
        :raises AlreadyExists: ``create`` and the key is present; nothing is stored.
        :raises VersionMismatch: ``if_version`` is not the key's ETag (or the key is gone).
        :raises StoreError: the store failed; nothing new is visible under ``key``.
        """
        try:
            path = self._path(key)
            size, version = await self._uploads.put(
                path, source, sha256, create=create, if_version=if_version
            )
        finally:
            if isinstance(source, Path):
                await asyncio.to_thread(source.unlink, missing_ok=True)
        return StoredFile(key, size, time.time(), version)

    async def delete(self, key: StoreKey) -> None:
        """Remove ``key`` if present (S3 answers a DELETE of a missing key with success)."""
        path = self._path(key)
        await self._calls.call(path, "DELETE", obstore.delete_async(self._client, path))

    async def list(self, prefix: str) -> AsyncIterator[StoreKey]:
        """Every key under ``prefix``, page by page."""
        async for meta in self._calls.objects(prefix):
            yield StoreKey(meta["path"])

    async def count(self, prefix: str, *, excluding: str | tuple[str, ...] = "") -> int:
        """Keys under ``prefix``, counted page by page (the listing is I/O: the loop goes on meanwhile)."""
        found = 0
        async for key in self.list(prefix):
            found += not (excluding and key.endswith(excluding))
        return found

    async def children(self, prefix: str) -> tuple[str, ...]:
        """The names directly under ``prefix`` that hold keys (common prefixes), dot-named left out."""
        listing = obstore.list_with_delimiter_async(self._client, prefix.rstrip("/") or None)
        result = await self._calls.call(prefix, "LIST", listing)
        names = (p.rstrip("/").rsplit("/", 1)[-1] for p in result["common_prefixes"])
        return tuple(sorted(n for n in names if n and not n.startswith(".")))

    async def sweep(self) -> None:
        """Remove what writers killed mid-upload staged in the bucket (see :mod:`s3uploads`)."""
        await self._uploads.sweep()

    def local_path(self, key: StoreKey) -> Path | None:  # noqa: ARG002 (the protocol's signature)
        """No local path: objects are sent from their GETs."""
        return None

    def spool_directory(self) -> Path:
        """The process's own directory in the local scratch (downloads, before their upload)."""
        return self._spool.path

    async def close(self) -> None:
        """Remove this process's spool (obstore's connections close with the client)."""
        self._spool.close()
