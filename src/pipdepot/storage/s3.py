"""The S3 store: the mirror's tree as objects under ``s3://bucket/prefix/``, through obstore.

The bucket holds exactly the files a filesystem mirror's directory holds, under the same keys,
so any static web server in front of it serves a PEP 503 tree. The conditional writes are
S3's own: create-only is ``If-None-Match: *`` (obstore ``mode="create"``), compare-and-swap
is ``If-Match`` on the ETag that :meth:`S3Store.read_versioned` returned.

obstore sends a conditional PUT as one request holding the whole body in memory, so a large
file is uploaded in parts to a staging key and copied to its final key by a multipart copy
whose completion carries ``If-None-Match: *``: memory stays bounded and create-only still
holds. Reads of large objects are ranged GETs, each read whole within the request deadline, so
a slow consumer never holds a request open and memory stays at one range per stream.

Every request has a deadline (obstore's per-request timeout, a few retries, and an asyncio
deadline over the whole call), and every failure surfaces as one :class:`StoreError` whose
one-line message names the key and the cause.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import S3Store as _ObstoreS3

from pipdepot.storage.digests import file_sha256
from pipdepot.storage.spool import Spool
from pipdepot.storage.store import (
    STATE_DIR,
    AlreadyExists,
    IntegrityError,
    StoredFile,
    StoreError,
    StoreKey,
    Versioned,
    VersionMismatch,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from obstore import GetOptions, PutMode
    from obstore.store import S3Config

    from pipdepot.storage.aws import AwsSettings

__all__ = ["S3Store", "runtime_started"]

#: Whether this process has opened an S3 store (and with it obstore's native runtime).
_STARTED: list[bool] = []


def runtime_started() -> bool:
    """Whether this process started obstore's native runtime.

    Its threads can outlive the last request; tearing the interpreter down around them aborted
    the process (SIGABRT, exit -6) in about one run in five under load, whatever the command's
    outcome. A process that used it ends without that teardown (see ``cli.main``).
    """
    return bool(_STARTED)


_T = TypeVar("_T")

#: Up to this size a file goes in one PUT (held in memory); above it, in parts.
_SINGLE_PUT_LIMIT = 16 * 1024 * 1024
_PART_SIZE = 8 * 1024 * 1024
#: A stream's first range is small (a small file in one request, a quick first byte); later
#: ranges double up to the largest, so a large file costs few requests and bounded memory.
_FIRST_RANGE = 256 * 1024
_LARGEST_RANGE = 8 * 1024 * 1024
#: Large uploads are staged here (dot-named: never a project) and copied create-only.
_UPLOADS = f"{STATE_DIR}/uploads"
#: Retries of a failed request (5xx, connection errors; timeouts of reads), each with the full timeout.
_RETRIES = 2
#: The rate below which a large upload counts as hung, for its overall deadline.
_MIN_RATE = 1024 * 1024


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
        _STARTED.append(True)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._spool = Spool(scratch)
        #: One HTTP request (connect to last body byte) may take this long.
        self._timeout = timeout
        #: One call, with its retries and their back-off, may take this long.
        self._deadline = timeout * (_RETRIES + 1) + 5.0
        config: S3Config = {
            "region": settings.region,
            # With an endpoint (SeaweedFS, MinIO...) the bucket goes in the path, as every S3 tool
            # does for a custom endpoint; AWS itself takes the bucket's host name.
            "virtual_hosted_style_request": settings.endpoint is None,
            # Complete a multipart copy only if the key is absent: create-only for large files.
            "copy_if_not_exists": "multipart",
        }
        if settings.endpoint is not None:
            config["endpoint"] = settings.endpoint
        if settings.access_key_id and settings.secret_access_key:
            config["access_key_id"] = settings.access_key_id
            config["secret_access_key"] = settings.secret_access_key
            if settings.session_token:
                config["session_token"] = settings.session_token
        self._client = _ObstoreS3(
            bucket,
            prefix=self.prefix or None,
            config=config,
            client_options={
                "allow_http": (settings.endpoint or "").startswith("http://"),
                "timeout": timedelta(seconds=timeout),
                "connect_timeout": timedelta(seconds=min(timeout, 5.0)),
            },
            retry_config={
                "max_retries": _RETRIES,
                "retry_timeout": timedelta(seconds=timeout * (_RETRIES + 1)),
                "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2)},
            },
        )

    def _path(self, key: StoreKey) -> str:
        """The key, checked as the filesystem store checks it (a relative POSIX path, no dot parts)."""
        parts = key.split("/")
        if key.startswith("/") or any(p in {"", ".", ".."} for p in parts) or "\0" in key:
            raise ValueError(f"invalid store key {key!r}")
        return key

    def _where(self, key: str) -> str:
        return f"{self.location}/{key}"

    async def _call(self, key: str, action: str, call: Awaitable[_T], *, extra: float = 0.0) -> _T:
        """Await ``call`` within the deadline; obstore's and the deadline's failures made one StoreError.

        AlreadyExists, VersionMismatch and FileNotFoundError pass through (the caller decides).
        """
        try:
            async with asyncio.timeout(self._deadline + extra):
                return await call
        except TimeoutError:
            raise StoreError(
                f"{self._where(key)}: {action}: no answer within {self._deadline + extra:.0f} s"
            ) from None
        except FileNotFoundError:
            raise
        except (PermissionDeniedError, UnauthenticatedError) as exc:
            raise StoreError(f"{self._where(key)}: {action}: access denied ({_first_line(exc)})") from exc
        except AlreadyExistsError:
            raise AlreadyExists(key) from None
        except PreconditionError:
            raise VersionMismatch(key) from None
        except (BaseError, OSError) as exc:
            raise StoreError(f"{self._where(key)}: {action}: {self._cause(exc)}") from exc

    def _cause(self, exc: BaseException) -> str:
        """What went wrong, in words: obstore names a timeout or a refused connection only in its dump."""
        text = str(exc)
        if "kind: Timeout" in text or "TimedOut" in text:
            return f"no answer within {self._timeout:g} s ({_RETRIES + 1} attempts)"
        if "ConnectionRefused" in text:
            return "connection refused"
        return _first_line(exc)

    async def stat(self, key: StoreKey) -> StoredFile | None:
        """The object's size and time, or ``None`` (one HEAD)."""
        path = self._path(key)
        try:
            meta = await self._call(path, "HEAD", obstore.head_async(self._client, path))
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
            data, etag = await self._call(path, "GET", self._get(path, None))
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
            data, _ = await self._call(path, "GET", self._get(path, {"range": (0, size)}))
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
                raise FileNotFoundError(f"{self._where(path)}: no such object")
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
            result = await self._call(
                path, "GET", obstore.get_async(self._client, path, options={"range": (start, stop)})
            )
            data = await self._call(path, "GET", result.bytes_async())
        except FileNotFoundError:
            raise FileNotFoundError(f"{self._where(path)}: no such object") from None
        except StoreError:
            found = await self.stat(key)  # S3 refuses a range that starts at or past the end
            if found is None:
                raise FileNotFoundError(f"{self._where(path)}: no such object") from None
            if found.size <= start:
                return None
            raise
        return bytes(data), result.meta["e_tag"] or "", result.meta["size"]

    async def _next_range(self, path: str, start: int, stop: int, etag: str) -> tuple[bytes, int]:
        options: GetOptions = {"range": (start, stop), "if_match": etag}
        try:
            result = await self._call(path, "GET", obstore.get_async(self._client, path, options=options))
            data = await self._call(path, "GET", result.bytes_async())
        except (FileNotFoundError, VersionMismatch):
            raise StoreError(f"{self._where(path)}: GET: the object changed while it was read") from None
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
            if isinstance(source, bytes):
                digest, size = (hashlib.sha256(source).hexdigest() if sha256 else ""), len(source)
            else:
                digest, size = await asyncio.to_thread(file_sha256, source)
            if sha256 is not None and digest != sha256:
                raise IntegrityError(f"{key}: sha256 mismatch")
            compare = if_version is not None and not create
            mode: PutMode = {"e_tag": if_version} if compare else ("create" if create else "overwrite")
            version = None
            if size <= _SINGLE_PUT_LIMIT or compare:
                upload = obstore.put_async(self._client, path, source, mode=mode, use_multipart=False)
                version = (await self._call(path, "PUT", upload))["e_tag"]
            elif create:
                await self._put_large_create(path, source, size)
            else:
                await self._put_parts(path, path, source, size)
        finally:
            if isinstance(source, Path):
                await asyncio.to_thread(source.unlink, missing_ok=True)
        return StoredFile(key, size, time.time(), version)

    async def _put_parts(self, path: str, target: str, source: Path | bytes, size: int) -> None:
        upload = obstore.put_async(
            self._client, target, source, use_multipart=True, chunk_size=_PART_SIZE, max_concurrency=4
        )
        await self._call(path, "PUT", upload, extra=size / _MIN_RATE)

    async def _put_large_create(self, path: str, source: Path | bytes, size: int) -> None:
        """Parts to a staging key, then a create-only multipart copy to ``path``; the staging key goes.

        A HEAD first spares the upload when the key is already there (the usual loser of a race
        comes late); the copy's condition still decides a true race.
        """
        try:
            await self._call(path, "HEAD", obstore.head_async(self._client, path))
        except FileNotFoundError:
            pass
        else:
            raise AlreadyExists(path)
        staging = f"{_UPLOADS}/{uuid.uuid4().hex}"
        try:
            await self._put_parts(path, staging, source, size)
            copy = obstore.copy_async(self._client, staging, path, overwrite=False)
            await self._call(path, "PUT (copy)", copy, extra=size / _MIN_RATE)
        finally:
            await self._call(staging, "DELETE", obstore.delete_async(self._client, staging))

    async def delete(self, key: StoreKey) -> None:
        """Remove ``key`` if present (S3 answers a DELETE of a missing key with success)."""
        path = self._path(key)
        await self._call(path, "DELETE", obstore.delete_async(self._client, path))

    async def list(self, prefix: str) -> AsyncIterator[StoreKey]:
        """Every key under ``prefix``, page by page."""
        pages = obstore.list(self._client, prefix.rstrip("/") or None, chunk_size=1000)
        while True:
            try:
                page = await self._call(prefix, "LIST", anext(pages))
            except StopAsyncIteration:
                return
            for meta in page:
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
        result = await self._call(prefix, "LIST", listing)
        names = (p.rstrip("/").rsplit("/", 1)[-1] for p in result["common_prefixes"])
        return tuple(sorted(n for n in names if n and not n.startswith(".")))

    def local_path(self, key: StoreKey) -> Path | None:  # noqa: ARG002 (the protocol's signature)
        """No local path: objects are sent from their GETs."""
        return None

    def spool_directory(self) -> Path:
        """The process's own directory in the local scratch (downloads, before their upload)."""
        return self._spool.path

    async def close(self) -> None:
        """Remove this process's spool (obstore's connections close with the client)."""
        self._spool.close()


def _first_line(exc: BaseException) -> str:
    """The first line of obstore's message (the rest is a debug dump): what happened."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 300 else f"{line[:297]}..."
