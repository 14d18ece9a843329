"""Files served from the store, or downloaded once (across processes: leases) and followed.

- A file not yet cached is downloaded once and streamed to every client; any number of
  processes serving one store fetch it once between them (:mod:`leases`).
- Its siblings are kept before its commit (:mod:`siblings`), and it is recorded after
  (:mod:`localfiles`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipdepot.core.project import ADDED_SCHEME, LocalFile
from pipdepot.errors import UpstreamError
from pipdepot.server.download import Download
from pipdepot.server.leases import Leases
from pipdepot.server.provenance import upstream_provenance
from pipdepot.server.siblings import file_key
from pipdepot.storage.store import IntegrityError

if TYPE_CHECKING:
    from pathlib import Path

    from pipdepot.core.names import NormalizedName
    from pipdepot.core.project import FileEntry
    from pipdepot.server.localfiles import LocalFiles
    from pipdepot.server.metrics import Metrics
    from pipdepot.server.pagecache import PageCache
    from pipdepot.server.records import Records
    from pipdepot.server.siblings import Siblings
    from pipdepot.server.upstream import Partial, UpstreamClient
    from pipdepot.storage.store import Store, StoredFile, StoreKey

__all__ = ["FileCache", "FileHit"]

logger = logging.getLogger(__name__)

#: Larger ranges fetch (and keep) the whole file: a client reading that much will want the rest.
_PARTIAL_LIMIT = 1024 * 1024


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class FileHit:
    """A file present in the store (``path``: where the OS can send it from, if the store is local)."""

    key: StoreKey
    path: Path | None
    size: int


class FileCache:
    """The files the mirror serves: a hit in the store, or one download every client follows."""

    def __init__(  # noqa: PLR0913 (the files' wiring, by keyword)
        self,
        store: Store,
        client: UpstreamClient | None,
        *,
        pages: PageCache,
        records: Records,
        metrics: Metrics,
        siblings: Siblings,
        local_files: LocalFiles,
    ) -> None:
        self.store = store
        self.client = client
        self.pages = pages
        self.records = records
        self.metrics = metrics
        self.siblings = siblings
        self.local_files = local_files
        #: One upstream fetch per file across every process serving this store.
        self.leases = Leases(store)
        self._downloads: dict[StoreKey, Download] = {}
        self._tasks: set[asyncio.Task[object]] = set()

    async def aclose(self) -> None:
        """Wait for downloads in flight, so files are committed before the process ends."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)

    async def local_file(self, name: NormalizedName, entry: FileEntry) -> FileHit | None:
        """The file from the store, when it is there (committed by this process or another)."""
        state = await self.pages.load_local(name)
        if state is None or entry["filename"] not in state.local:
            state = await self.records.get(name, recheck=True)
            if state is None or entry["filename"] not in state.local:
                return None
            self.pages.drop(name)  # the parsed page in memory predates that file
        key = file_key(entry)
        stored = await self.store.stat(key)
        path = self.store.local_path(key)
        if stored is None or stored.size != state.local[entry["filename"]].size:
            return None  # gone or cut short behind the mirror's back: fetched again
        return FileHit(key, path, stored.size)

    def download(self, name: NormalizedName, entry: FileEntry) -> Download | None:
        """The download of a file not in the store, started if no one started it; ``None`` offline."""
        if self.client is None or entry["url"].startswith(ADDED_SCHEME):
            return None
        key = file_key(entry)
        running = self._downloads.get(key)
        if running is not None:
            return running
        size = entry.get("size")
        download = Download(
            entry["url"],
            key,
            self.store,
            size=size if isinstance(size, int) else None,
            sha256=(entry.get("hashes") or {}).get("sha256"),
            entry=dict(entry),
            leases=self.leases,
        )
        self._downloads[key] = download
        task: asyncio.Task[object] = asyncio.create_task(self._run_download(name, entry, download))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return download

    async def fetch(self, name: NormalizedName, entry: FileEntry) -> tuple[int, bool]:
        """Make sure the file is in the store: its size, and whether it was downloaded just now.

        :raises UpstreamError, IntegrityError: it could not be fetched or verified; nothing is kept.
        """
        hit = await self.local_file(name, entry)
        if hit is not None:
            return hit.size, False
        download = self.download(name, entry)
        if download is None:
            raise UpstreamError(f"{entry['filename']} is not in the mirror, and the mirror is offline")
        await download.done.wait()
        if download.error is not None:
            raise download.error
        assert download.stored is not None  # noqa: S101 (no error means it was stored)
        return download.stored.size, True

    def downloading(self, entry: FileEntry) -> bool:
        """Whether the file is being downloaded now."""
        return file_key(entry) in self._downloads

    async def partial(self, entry: FileEntry, byte_range: str) -> Partial | None:
        """A small part of a file not in the store, straight from upstream, not kept.

        uv reads a wheel's metadata from its last bytes when the index offers no
        PEP 658 file; fetching the whole wheel for that would turn a resolver's
        look at 400 old versions into gigabytes. ``None``: fetch the file instead.

        :raises UpstreamError: upstream did not answer.
        """
        if self.client is None or entry["url"].startswith(ADDED_SCHEME):
            return None
        answer = await self.client.fetch_range(entry["url"], byte_range, limit=_PARTIAL_LIMIT)
        if answer is not None:
            self.metrics.bytes_fetched += len(answer.body)
        return answer

    async def metadata(self, name: NormalizedName, entry: FileEntry) -> bytes | None:
        """The core metadata of a distribution: upstream's, or extracted from the cached wheel.

        A wheel not in the store is downloaded for it (its METADATA is stored as it commits).

        :raises UpstreamError, IntegrityError: it could not be fetched or verified.
        """
        found = await self.siblings.metadata(entry)
        if found is not None or not entry["filename"].endswith(".whl"):
            return found
        state = await self.pages.load_local(name)
        if state is None or entry["filename"] not in state.local:
            del state
            download = self.download(name, entry)
            if download is None:
                return None
            await download.done.wait()
            if download.error is not None:
                raise download.error
        return await self.siblings.kept_metadata(entry)

    async def _run_download(self, name: NormalizedName, entry: FileEntry, download: Download) -> None:
        assert self.client is not None  # noqa: S101
        started = time.monotonic()

        metadata: list[str | None] = [None]
        # fetched while the file downloads, kept before its commit: a recorded file has its provenance
        url = upstream_provenance(entry)
        provenance = (
            asyncio.create_task(self.siblings.fetch_provenance_or_none(entry, url))
            if url is not None
            else None
        )

        async def prepare(spool: Path) -> None:  # before the commit: the spool is a local file on any store
            metadata[0] = await self.siblings.store_metadata(entry, spool)
            if provenance is not None and (data := await provenance) is not None:
                await self.siblings.keep_provenance(entry, data)

        async def record(stored: StoredFile, sha256: str) -> None:
            local = LocalFile(sha256, stored.size, metadata[0])
            await self.local_files.record(name, entry, local, downloaded=True)
            elapsed = (time.monotonic() - started) * 1000
            logger.info("cached %s (%d bytes, %.0f ms)", download.key, stored.size, elapsed)

        try:
            await download.run(self.client, self.store, record, prepare=prepare)
            if download.adopted:  # another process downloaded it: its record follows its commit
                await self._recorded_elsewhere(name, entry["filename"])
        except (UpstreamError, IntegrityError, OSError) as exc:
            self.metrics.upstream_errors += isinstance(exc, UpstreamError)
            logger.warning("download of %s failed: %s", download.url, exc)
        finally:
            if provenance is not None:
                provenance.cancel()  # the file failed, or another process committed it (and its provenance)
            self._downloads.pop(download.key, None)
            self.metrics.bytes_fetched += download.written

    async def _recorded_elsewhere(self, name: NormalizedName, filename: str) -> None:
        """Wait (a few seconds at most) for the process that committed ``filename`` to record it."""
        for _ in range(50):
            record = await self.records.get(name, recheck=True)
            if record is not None and filename in record.local:
                self.pages.drop(name)
                return
            await asyncio.sleep(0.1)
