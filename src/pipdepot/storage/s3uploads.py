"""Writes to S3: one conditional PUT for a small file, parts and a create-only copy for a large one.

obstore sends a conditional PUT as one request holding the whole body in memory, so a large
file is uploaded in parts to a staging key and copied to its final key by a multipart copy
whose completion carries ``If-None-Match: *``: memory stays bounded and create-only still holds.

A writer killed between the parts and the staging key's removal leaves that key behind. Its
name carries the time by which its writer would have removed it; past that (and a margin for
clocks that differ), :meth:`S3Uploads.sweep` removes it. A writer killed during the parts leaves
an incomplete multipart upload, which S3 lists nowhere a client sees: a bucket lifecycle rule
(AbortIncompleteMultipartUpload) removes those (docs/SCALE.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from typing import TYPE_CHECKING

import obstore

from pipdepot.storage.digests import file_sha256
from pipdepot.storage.store import STATE_DIR, AlreadyExists, IntegrityError, StoreError

if TYPE_CHECKING:
    from pathlib import Path

    from obstore import PutMode

    from pipdepot.storage.s3calls import S3Calls

__all__ = ["S3Uploads"]

logger = logging.getLogger(__name__)

#: Up to this size a file goes in one PUT (held in memory); above it, in parts.
SINGLE_PUT_LIMIT = 16 * 1024 * 1024
_PART_SIZE = 8 * 1024 * 1024
#: Large uploads are staged here (dot-named: never a project) and copied create-only.
UPLOADS = f"{STATE_DIR}/uploads"
#: The rate below which a large upload counts as hung, for its overall deadline.
_MIN_RATE = 1024 * 1024
#: Clocks of the nodes may differ by this much: a staging key is swept only this long after its time.
_CLOCK_MARGIN = 300.0
#: A staging key whose name carries no time (an older pipdepot's) is swept a day after it was written.
_UNTIMED_AGE = 86400.0


def __dir__() -> list[str]:
    return __all__


class S3Uploads:
    """The put paths of one S3 store, and the sweep of what killed writers staged."""

    def __init__(self, calls: S3Calls) -> None:
        self._calls = calls

    async def put(
        self, path: str, source: Path | bytes, sha256: str | None, *, create: bool, if_version: str | None
    ) -> tuple[int, str | None]:
        """Upload ``source`` (checked against ``sha256`` first) to ``path``: its size and new ETag, if known.

        :raises IntegrityError, AlreadyExists, VersionMismatch, StoreError: as ``Store.put``.
        """
        if isinstance(source, bytes):
            digest, size = (hashlib.sha256(source).hexdigest() if sha256 else ""), len(source)
        else:
            digest, size = await asyncio.to_thread(file_sha256, source)
        if sha256 is not None and digest != sha256:
            raise IntegrityError(f"{path}: sha256 mismatch")
        compare = if_version is not None and not create
        mode: PutMode = {"e_tag": if_version} if compare else ("create" if create else "overwrite")
        if size <= SINGLE_PUT_LIMIT or compare:
            upload = obstore.put_async(self._calls.client, path, source, mode=mode, use_multipart=False)
            return size, (await self._calls.call(path, "PUT", upload))["e_tag"]
        if create:
            await self._put_large_create(path, source, size)
        else:
            await self._put_parts(path, path, source, size)
        return size, None

    async def _put_parts(self, path: str, target: str, source: Path | bytes, size: int) -> None:
        upload = obstore.put_async(
            self._calls.client, target, source, use_multipart=True, chunk_size=_PART_SIZE, max_concurrency=4
        )
        await self._calls.call(path, "PUT", upload, extra=size / _MIN_RATE)

    async def _put_large_create(self, path: str, source: Path | bytes, size: int) -> None:
        """Parts to a staging key, then a create-only multipart copy to ``path``; the staging key goes.

        A HEAD first spares the upload when the key is already there (the usual loser of a race
        comes late); the copy's condition still decides a true race.
        """
        client = self._calls.client
        try:
            await self._calls.call(path, "HEAD", obstore.head_async(client, path))
        except FileNotFoundError:
            pass
        else:
            raise AlreadyExists(path)
        # the parts, the copy and the removal each have their deadline: by then the key is gone
        removed_by = time.time() + 3 * self._calls.deadline + 2 * size / _MIN_RATE
        staging = f"{UPLOADS}/{removed_by:.0f}-{uuid.uuid4().hex}"
        try:
            await self._put_parts(path, staging, source, size)
            copy = obstore.copy_async(client, staging, path, overwrite=False)
            await self._calls.call(path, "PUT (copy)", copy, extra=size / _MIN_RATE)
        finally:
            await self._calls.call(staging, "DELETE", obstore.delete_async(client, staging))

    async def sweep(self) -> int:
        """Remove the staging keys of writers killed mid-upload (past their time): how many.

        Housekeeping: a store that refuses it is said in a line, and the writer goes on.
        """
        now, removed = time.time(), 0
        try:
            async for meta in self._calls.objects(UPLOADS):
                key = meta["path"]
                if _removed_by(key, meta["last_modified"].timestamp()) + _CLOCK_MARGIN < now:
                    await self._calls.call(key, "DELETE", obstore.delete_async(self._calls.client, key))
                    removed += 1
        except StoreError as exc:
            logger.warning("upload staging objects not swept: %s", exc)
        if removed:
            logger.warning("removed %d upload staging object(s) left by writers killed mid-upload", removed)
        return removed


def _removed_by(key: str, written: float) -> float:
    """When the staging key's writer would have removed it: the time its name starts with, else a day on."""
    stamp, dash, _ = key.rsplit("/", 1)[-1].partition("-")
    try:
        return float(stamp) if dash else written + _UNTIMED_AGE
    except ValueError:
        return written + _UNTIMED_AGE
