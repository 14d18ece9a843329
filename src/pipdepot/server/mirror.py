"""The caching mirror: one object the web layer and the commands talk to, made of small parts.

- :mod:`pagecache`: upstream's project pages, fresh, stale or offline, rendered once.
- :mod:`filecache`: the files served, downloaded once (across processes) and followed.
- :mod:`localfiles`: the files as recorded: added, imported, recorded after a download, removed.
- :mod:`siblings`: beside each file, its core metadata and provenance.
- :mod:`recovery`: what a killed writer left, settled; :mod:`copies`: local paths for builds, exports.
- :mod:`records`: each project's local record, changed by compare-and-swap.
- :mod:`tree`: the static PEP 503 tree derived from the records.
- :mod:`releases`: yanks, and whether a private project shows upstream's releases.

Policy lives in those parts; I/O goes through :class:`Store` and :class:`UpstreamClient`.
Any number of processes write one mirror at once, and what another process committed is
seen within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from pipdepot.core.project import project_of_path
from pipdepot.errors import UpstreamError
from pipdepot.server.copies import LocalCopies
from pipdepot.server.filecache import FileCache, FileHit
from pipdepot.server.localfiles import ImportedFile, LocalFiles, Origin
from pipdepot.server.pagecache import CacheStatus, PageCache, PageResult, View
from pipdepot.server.records import Records
from pipdepot.server.recovery import Recovery
from pipdepot.server.releases import Releases
from pipdepot.server.siblings import Siblings
from pipdepot.server.tree import Tree

if TYPE_CHECKING:
    from pathlib import Path

    from pipdepot.core.distribution import LocalDistribution
    from pipdepot.core.names import NormalizedName
    from pipdepot.core.project import FileEntry, ProjectState
    from pipdepot.server.download import Download
    from pipdepot.server.metrics import Metrics
    from pipdepot.server.pages import Encoding, Format, RenderedPage
    from pipdepot.server.upstream import Partial, UpstreamClient
    from pipdepot.server.views import TargetView
    from pipdepot.storage.store import Store, StoreKey

__all__ = ["CacheStatus", "FileHit", "ImportedFile", "Mirror", "Origin", "PageResult", "View"]

logger = logging.getLogger(__name__)


def __dir__() -> list[str]:
    return __all__


class Mirror:
    """Pages and files for the web layer and the commands; one instance per process."""

    def __init__(  # noqa: PLR0913 (the server's wiring: each collaborator and policy, by keyword)
        self,
        store: Store,
        client: UpstreamClient | None,
        upstreams: tuple[str, ...],
        *,
        ttl: float,
        metrics: Metrics,
        fresh_after: float = 0.0,
        view: View | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.upstreams = upstreams
        self.metrics = metrics
        #: The local records (local files only): shared with every other writer of the store.
        self.records = Records(store)
        self.tree = Tree(store, self.records, metrics)
        self.pages = PageCache(
            store,
            client,
            upstreams,
            records=self.records,
            tree=self.tree,
            ttl=ttl,
            metrics=metrics,
            fresh_after=fresh_after,
            view=view,
        )
        self.siblings = Siblings(store, client, metrics=metrics)
        self.local_files = LocalFiles(store, pages=self.pages, records=self.records, tree=self.tree)
        self.files = FileCache(
            store,
            client,
            pages=self.pages,
            records=self.records,
            metrics=metrics,
            siblings=self.siblings,
            local_files=self.local_files,
        )
        self.copies = LocalCopies(store)
        self.recovery = Recovery(
            store,
            records=self.records,
            tree=self.tree,
            local_files=self.local_files,
            siblings=self.siblings,
            copies=self.copies,
        )
        #: Yanks and the upstream switch of the project's own releases.
        self.releases = Releases(self.records, self.tree, self.pages)
        self._census: asyncio.Task[None] | None = None

    @property
    def offline(self) -> bool:
        """Whether upstream is never contacted."""
        return self.client is None

    @property
    def downloaded(self) -> dict[str, NormalizedName]:
        """Files this process downloaded, by filename, whoever asked (``sync`` reports and prunes them)."""
        return self.local_files.downloaded

    def start(self) -> None:
        """Count what the tree holds for the metrics, in the background.

        A server's start-up reads nothing that grows with the mirror.
        """
        self._census = asyncio.create_task(self._first_census())

    async def _first_census(self) -> None:
        try:
            await self.tree.census(max_age=0)
        except OSError as exc:  # counted again when asked (/+metrics); the store's failure is said once here
            logger.warning("could not count the mirror's files: %s", exc)

    async def census(self) -> None:
        """Bring the metrics' counts up to date (the first count, then at most once a minute)."""
        if self._census is not None:
            await asyncio.shield(self._census)
        await self.tree.census()

    async def recover(self) -> None:
        """Settle what killed writers left (see :meth:`Recovery.recover` and ``Store.sweep``)."""
        await self.store.sweep()
        await self.recovery.recover()

    async def aclose(self) -> None:
        """Wait for downloads in flight and the root index, so all is committed before the process ends."""
        await self.files.aclose()
        self.copies.close()
        await self.tree.flush()
        if self._census is not None and not self._census.done():
            self._census.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._census

    async def local_projects(self) -> tuple[str, ...]:
        """The projects with files in the store, sorted."""
        return await self.tree.projects(max_age=0)

    # -- pages ---------------------------------------------------------------------

    async def state(self, name: NormalizedName) -> ProjectState | None:
        """What is known of ``name``, without asking upstream."""
        return await self.pages.state(name)

    async def page(
        self, name: NormalizedName, fmt: Format, encoding: Encoding | None, view: TargetView | None = None
    ) -> tuple[RenderedPage, CacheStatus] | None:
        """See :meth:`PageCache.page`."""
        return await self.pages.page(name, fmt, encoding, view)

    async def project(self, name: NormalizedName) -> PageResult | None:
        """See :meth:`PageCache.project`."""
        return await self.pages.project(name)

    async def root_page(self, fmt: Format, encoding: Encoding | None) -> RenderedPage:
        """See :meth:`PageCache.root_page`."""
        return await self.pages.root_page(fmt, encoding)

    # -- files ---------------------------------------------------------------------

    async def find(self, path: str) -> tuple[NormalizedName, FileEntry] | None:
        """The project and upstream entry of a served file path, refreshing a stale page once.

        Callers get the project's name, not its state: a download or a stream that lasts holds
        one entry, never a whole page of upstream data.
        """
        name = project_of_path(path)
        if name is None:
            return None
        await self.pages.revalidate(name)
        record = await self.pages.load_local(name)  # a cached file: the local record knows it
        entry = record.file_by_path(path) if record is not None else None
        if entry is None:  # perhaps committed by another process just now
            record = await self.records.get(name, recheck=True)
            entry = record.file_by_path(path) if record is not None else None
        if record is not None and record.private:  # its stored files only: upstream's are not offered
            return None if entry is None else (name, entry)
        if entry is None and not (self.offline and self.pages.view is None):  # only local files offline
            entry = await self.pages.page_entry(name, path, record)
        if entry is None and not self.offline:
            with contextlib.suppress(UpstreamError):
                result = await self.pages.project(name)
                entry = result.state.file_by_path(path) if result is not None else None
        return None if entry is None else (name, entry)

    async def local_file(self, name: NormalizedName, entry: FileEntry) -> FileHit | None:
        """See :meth:`FileCache.local_file`."""
        return await self.files.local_file(name, entry)

    def download(self, name: NormalizedName, entry: FileEntry) -> Download | None:
        """See :meth:`FileCache.download`."""
        return self.files.download(name, entry)

    def downloading(self, entry: FileEntry) -> bool:
        """Whether the file is being downloaded by this process now."""
        return self.files.downloading(entry)

    async def fetch(self, name: NormalizedName, entry: FileEntry) -> tuple[int, bool]:
        """See :meth:`FileCache.fetch`."""
        return await self.files.fetch(name, entry)

    async def partial(self, entry: FileEntry, byte_range: str) -> Partial | None:
        """See :meth:`FileCache.partial`."""
        return await self.files.partial(entry, byte_range)

    async def metadata_cached(self, entry: FileEntry) -> bool:
        """See :meth:`Siblings.metadata_cached`."""
        return await self.siblings.metadata_cached(entry)

    async def metadata(self, name: NormalizedName, entry: FileEntry) -> bytes | None:
        """See :meth:`FileCache.metadata`."""
        return await self.files.metadata(name, entry)

    async def provenance(self, entry: FileEntry) -> tuple[bytes, bool] | None:
        """See :meth:`Siblings.provenance`."""
        return await self.siblings.provenance(entry)

    async def add(self, dist: LocalDistribution) -> bool:
        """See :meth:`LocalFiles.add`."""
        return await self.local_files.add(dist)

    async def import_file(self, item: ImportedFile) -> None:
        """See :meth:`LocalFiles.import_file`."""
        await self.local_files.import_file(item)

    async def forget(self, name: NormalizedName, filename: str) -> int:
        """See :meth:`LocalFiles.forget`."""
        return await self.local_files.forget(name, filename)

    async def local_copy(self, key: StoreKey) -> Path | None:
        """See :meth:`LocalCopies.local_copy`."""
        return await self.copies.local_copy(key)
