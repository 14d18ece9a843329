"""Download leases: one upstream fetch per file across every process that serves one store.

Before a process downloads a file, it writes a lease for it, create-only: of any number of
nodes asked for one uncached file at once, one wins and downloads; the others wait for the
file to appear in the store and send it from there. The winner renews its lease while it
downloads; a lease not renewed expires after ``ttl`` seconds (its holder was killed, or hangs),
and a waiting process takes it over, compare-and-swap on the version it read, so a dead node's
download is taken over within seconds and never by two at once.

Expiry is wall-clock time written by the holder: nodes must agree on the time to within a
fraction of ``ttl`` (NTP does).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING

from pipdepot.storage.store import STATE_DIR, AlreadyExists, StoreKey, VersionMismatch

if TYPE_CHECKING:
    from pipdepot.storage.store import Store

__all__ = ["Lease", "Leases"]

logger = logging.getLogger(__name__)

_LEASES = f"{STATE_DIR}/leases"


def __dir__() -> list[str]:
    return __all__


class Lease:
    """A held lease, renewed in the background until released."""

    def __init__(self, leases: Leases, key: StoreKey, version: str | None) -> None:
        self._leases = leases
        self._key = key
        self._version = version
        #: Another process took the lease over (this one stalled past its expiry): not ours to remove.
        self._lost = False
        self._renewing = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._leases.ttl / 3)
            try:
                stored = await self._leases.store.put(
                    self._key, self._leases.document(), if_version=self._version or ""
                )
            except VersionMismatch:
                logger.warning("lease %s was taken over: this download goes on, unprotected", self._key)
                self._lost = True
                return
            except OSError as exc:
                logger.warning("lease %s not renewed: %s", self._key, exc)
                continue
            self._version = stored.version

    async def release(self) -> None:
        """Stop renewing and remove the lease (the file is committed, or the download failed)."""
        self._renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewing
        if not self._lost:
            with contextlib.suppress(OSError):
                await self._leases.store.delete(self._key)


class Leases:
    """Leases on files of one store, for this process (``owner``)."""

    def __init__(self, store: Store, *, ttl: float = 10.0, poll: float = 0.25) -> None:
        self.store = store
        self.ttl = ttl
        self.poll = poll
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def document(self) -> bytes:
        """A lease's content: who holds it, until when (renewing gives a new version each time)."""
        return json.dumps(
            {"owner": self.owner, "expires": time.time() + self.ttl, "at": time.time()}
        ).encode()

    def _key(self, key: StoreKey) -> StoreKey:
        return StoreKey(f"{_LEASES}/{hashlib.sha256(key.encode()).hexdigest()[:40]}")

    async def acquire(self, key: StoreKey, *, deadline: float) -> Lease | None:
        """Hold the lease on ``key``; ``None``: the file was committed meanwhile (by another process).

        Waits while a live holder downloads, at most until ``deadline`` (monotonic time).

        :raises TimeoutError: the deadline passed with the lease still held elsewhere.
        """
        lease_key = self._key(key)
        announced = False
        while True:
            if await self.store.stat(key) is not None:
                return None
            try:
                stored = await self.store.put(lease_key, self.document(), create=True)
            except AlreadyExists:
                pass
            else:
                return await self._held(key, Lease(self, lease_key, stored.version))
            current = await self.store.read_versioned(lease_key)
            if current is not None and _expired(current.data):
                try:
                    stored = await self.store.put(lease_key, self.document(), if_version=current.version)
                except VersionMismatch:
                    continue
                logger.warning("took over the download of %s from a holder that stopped renewing", key)
                return await self._held(key, Lease(self, lease_key, stored.version))
            if current is not None and not announced:
                logger.info("%s is being downloaded by another process: waiting for it", key)
                announced = True
            if time.monotonic() > deadline:
                raise TimeoutError(f"{key}: another process holds its download")
            await asyncio.sleep(self.poll)

    async def _held(self, key: StoreKey, lease: Lease) -> Lease | None:
        """``lease``, unless its last holder committed ``key`` after this process looked.

        A holder commits, then releases: a lease created after that release must find the file
        (seen: two fetches of one file when the release fell between the look and the create).
        """
        if await self.store.stat(key) is None:
            return lease
        await lease.release()
        return None


def _expired(data: bytes) -> bool:
    try:
        expires = float(json.loads(data)["expires"])
    except (ValueError, KeyError, TypeError):
        return True  # unreadable: not a live holder's
    return expires < time.time()
