"""One upstream download, streamed to every client that asks while it runs.

The bytes go to a spool file while they are hashed; any number of clients
follow that file as it grows. The last bytes are held back until the size and
sha256 match upstream's, so no client ever receives a complete wrong file; on a
mismatch every client's transfer is cut short and nothing is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pipdepot.storage.store import COMMIT_MARKER, AlreadyExists, IntegrityError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from typing import Any

    from pipdepot.server.leases import Leases
    from pipdepot.server.upstream import UpstreamClient
    from pipdepot.storage.store import Store, StoredFile, StoreKey

__all__ = ["LEASE_WAIT", "Download"]

logger = logging.getLogger(__name__)

#: Seconds a client waits at most for another process's download of the file it asked for.
LEASE_WAIT = 900.0
#: Bytes a follower may not have until the file is verified.
HOLDBACK = 64 * 1024
_READ = 256 * 1024


def __dir__() -> list[str]:
    return __all__


class Download:
    """Fetch ``url`` into the store at ``key``, verifying ``size`` and ``sha256`` when known."""

    def __init__(  # noqa: PLR0913 (what is fetched, where it goes, and what it must be)
        self,
        url: str,
        key: StoreKey,
        store: Store,
        *,
        size: int | None,
        sha256: str | None,
        entry: dict[str, Any] | None = None,
        leases: Leases | None = None,
    ) -> None:
        self.url = url
        #: Upstream's entry for the file, written into the commit marker so a killed writer's file is kept.
        self.entry = entry
        self.key = key
        self.size = size
        self.sha256 = sha256
        self.written = 0
        self.digest: str | None = None
        self.stored: StoredFile | None = None
        self.error: BaseException | None = None
        self.done = asyncio.Event()
        #: Bytes are coming from upstream into the spool (this process holds the file's lease).
        self.started = False
        #: Another process committed the file while this one waited for its lease: read it from the store.
        self.adopted = False
        self._leases = leases
        self._progress = asyncio.Event()
        fd, name = tempfile.mkstemp(dir=store.spool_directory(), prefix="download-")
        os.close(fd)
        self._spool = Path(name)
        self._store = store

    async def run(
        self,
        client: UpstreamClient,
        store: Store,
        on_stored: Callable[[StoredFile, str], Awaitable[None]],
        *,
        prepare: Callable[[Path], Awaitable[None]] | None = None,
    ) -> StoredFile:
        """Download, verify, prepare, commit, record, then release the last bytes.

        ``prepare(spool)`` sees the verified local file before it is committed; ``on_stored(file,
        sha256)`` records it.

        Releasing last means that once any client has the whole file, every later
        request finds it recorded as local.

        :raises UpstreamError, IntegrityError: to whoever awaits this; followers see ``error``.
        """
        digest = hashlib.sha256()
        lease = None
        try:
            if self._leases is not None:
                lease = await self._leases.acquire(self.key, deadline=time.monotonic() + LEASE_WAIT)
                if lease is None:
                    return await self._adopt(store)
            self.started = True
            self._notify()
            with self._spool.open("wb") as spool:
                async for chunk in client.stream(self.url):
                    spool.write(chunk)
                    spool.flush()
                    digest.update(chunk)
                    self.written += len(chunk)
                    self._check(final=False)
                    self._notify()
            self.digest = digest.hexdigest()
            self._check(final=True)
            marker = self._mark(store)  # first: what prepare stores beside the file is settled with it
            if prepare is not None:
                await prepare(self._spool)
            self.stored = await self._commit(store)
            await on_stored(self.stored, self.digest)
            marker.unlink()  # recorded: the file is the mirror's
        except BaseException as exc:
            self.error = exc
            with contextlib.suppress(OSError):
                self._spool.unlink()
            raise
        finally:
            if lease is not None:
                await lease.release()
            self.done.set()
            self._notify()
        return self.stored

    async def _adopt(self, store: Store) -> StoredFile:
        """The file another process committed while this one waited: sent from the store."""
        self._spool.unlink(missing_ok=True)
        stored = await store.stat(self.key)
        if stored is None:
            raise IntegrityError(f"{self.key}: committed by another process, then gone")
        self.stored, self.adopted, self.written = stored, True, stored.size
        return stored

    async def _commit(self, store: Store) -> StoredFile:
        """Move the verified spool to its key, create-only: another writer's copy, if first, is kept.

        That copy was verified against the same upstream entry by the writer that committed it.
        """
        try:
            return await store.put(self.key, self._spool, create=True)
        except AlreadyExists:
            existing = await store.stat(self.key)
            if existing is None or existing.size != self.written:
                raise IntegrityError(f"{self.key}: another writer's copy differs from upstream's") from None
            logger.info("%s: committed by another writer first; using that copy", self.key)
            return existing

    def _mark(self, store: Store) -> Path:
        """A commit marker naming the key and its entry, left behind if the process dies before the record.

        Between the move into the tree and the record, a SIGKILL would leave a file no record
        names (seen: 3 in 16 kills); the next writer records such a file (``Mirror.recover``).
        Written before ``prepare`` stores the file's siblings (``.metadata``, ``.provenance``): killed
        before the commit, the next writer finds no file and removes them (seen: 7 orphans in 16 kills).
        """
        fd, name = tempfile.mkstemp(dir=store.spool_directory(), prefix=COMMIT_MARKER)
        with os.fdopen(fd, "w") as marker:
            json.dump({"key": self.key, "entry": self.entry, "sha256": self.digest}, marker)
        return Path(name)

    def _check(self, *, final: bool) -> None:
        """:raises IntegrityError: the bytes so far (or in all) are not what upstream announced."""
        if self.size is not None and (self.written > self.size or (final and self.written != self.size)):
            raise IntegrityError(f"{self.key}: {self.written} bytes, upstream announced {self.size}")
        if final and self.sha256 is not None and self.digest != self.sha256:
            raise IntegrityError(f"{self.key}: sha256 {self.digest}, upstream announced {self.sha256}")

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    async def follow(self) -> AsyncIterator[bytes]:
        """The file's bytes from the start, as they arrive; verified before the last ones.

        :raises UpstreamError, IntegrityError: the download failed; stop sending.
        """
        while not (self.started or self.done.is_set()):  # waiting for the lease
            await self._progress.wait()
        if self.error is not None:
            raise self.error
        try:
            stream = None if self.adopted else self._spool.open("rb")
        except FileNotFoundError:  # committed already, and the spool moved (or uploaded and removed)
            stream = None
        if stream is None:
            async for chunk in self._store.stream(self.key):
                yield chunk
            return
        try:
            offset = 0
            while True:
                verified = self.done.is_set() and self.error is None
                limit = self.written if verified else max(0, self.written - HOLDBACK)
                if self.error is not None:
                    raise self.error
                if offset < limit:
                    stream.seek(offset)
                    chunk = stream.read(min(_READ, limit - offset))
                    offset += len(chunk)
                    yield chunk
                    continue
                if verified:
                    return
                await self._progress.wait()
        finally:
            stream.close()
