"""Download leases on a real filesystem store: one download per file, whatever the interleaving."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING

from pipdepot.server.leases import Lease, Leases
from pipdepot.storage.filesystem import FilesystemStore
from pipdepot.storage.store import StoredFile, StoreKey

if TYPE_CHECKING:
    from pathlib import Path

KEY = StoreKey("packages/ab/cd/demo-1.0-py3-none-any.whl")


class _CommitBeforeCreate(FilesystemStore):
    """Lets the holder commit and release just before the waiter's create-only lease write.

    The interleaving that fetched one file twice: the waiter looked (no file), the holder
    committed and released, then the waiter's create succeeded.
    """

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.holder: Lease | None = None

    async def put(
        self,
        key: StoreKey,
        source: Path | bytes,
        *,
        sha256: str | None = None,
        create: bool = False,
        if_version: str | None = None,
    ) -> StoredFile:
        if create and self.holder is not None and key != KEY:
            holder, self.holder = self.holder, None
            await super().put(KEY, b"the wheel")
            await holder.release()
        return await super().put(key, source, sha256=sha256, create=create, if_version=if_version)


class _Killed(Leases):
    """A holder that was killed: its lease says it expired, and nothing renews it."""

    def document(self) -> bytes:
        return json.dumps({"owner": "killed", "expires": time.time() - 1}).encode()


def test_a_lease_taken_after_the_holders_commit_is_given_back(tmp_path: Path) -> None:
    async def run() -> tuple[Lease | None, bool]:
        store = _CommitBeforeCreate(tmp_path)
        holder = await Leases(store).acquire(KEY, deadline=time.monotonic() + 5)
        assert holder is not None
        store.holder = holder
        waiter = await Leases(store, poll=0.01).acquire(KEY, deadline=time.monotonic() + 5)
        left = list((tmp_path / ".pipdepot").glob("leases/*"))
        return waiter, left == []

    waiter, released = asyncio.run(run())
    assert waiter is None  # the file is there: the waiter sends it, and does not fetch it again
    assert released  # and the lease it created is gone


def test_a_waiter_gets_the_file_once_the_holder_commits(tmp_path: Path) -> None:
    async def run() -> tuple[Lease | None, float]:
        store = FilesystemStore(tmp_path)
        holder = await Leases(store).acquire(KEY, deadline=time.monotonic() + 5)
        assert holder is not None

        async def commit() -> None:
            await asyncio.sleep(0.2)
            await store.put(KEY, b"the wheel")
            await holder.release()

        started = time.monotonic()
        committing = asyncio.create_task(commit())
        waiter = await Leases(store, poll=0.01).acquire(KEY, deadline=time.monotonic() + 5)
        await committing
        return waiter, time.monotonic() - started

    waiter, waited = asyncio.run(run())
    assert waiter is None
    assert waited >= 0.2  # it waited for the holder rather than downloading beside it


def test_a_lease_its_holder_stopped_renewing_is_taken_over(tmp_path: Path) -> None:
    async def run() -> Lease | None:
        store = FilesystemStore(tmp_path)
        held = await _Killed(store, ttl=60).acquire(KEY, deadline=time.monotonic() + 5)
        assert held is not None
        taken = await Leases(store, poll=0.01).acquire(KEY, deadline=time.monotonic() + 5)
        assert taken is not None
        await taken.release()
        return taken

    assert asyncio.run(run()) is not None
