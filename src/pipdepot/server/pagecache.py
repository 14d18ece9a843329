"""Project pages: upstream's, kept fresh, stored beside the tree, rendered once per generation.

- A page older than the TTL is refreshed with a conditional request; one refresh per project
  at a time, however many clients ask.
- When no upstream answers, the last page is served listing only the files present locally
  ("stale"); offline, the same without asking.
- What memory holds of a project (its parsed page, its rendered forms) is dropped when
  another process changed the project's record (asked at most once a second).

This module decides what to serve; its parts do the work: :mod:`projectstates` (what is stored
and parsed), :mod:`pagerefresh` (asking upstream) and :mod:`renderedpages` (rendered forms).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

from pipdepot.core.project import ProjectState
from pipdepot.errors import UpstreamError
from pipdepot.server.pagerefresh import PageRefresher
from pipdepot.server.pages import listed_entry
from pipdepot.server.projectstates import ProjectStates
from pipdepot.server.renderedpages import RenderedPages

if TYPE_CHECKING:
    from pipdepot.core.names import NormalizedName
    from pipdepot.core.project import FileEntry, LocalFile
    from pipdepot.server.metrics import Metrics
    from pipdepot.server.pages import Encoding, Format, RenderedPage
    from pipdepot.server.records import Records
    from pipdepot.server.tree import Tree
    from pipdepot.server.upstream import UpstreamClient
    from pipdepot.server.views import TargetView
    from pipdepot.storage.store import Store

__all__ = ["CacheStatus", "PageCache", "PageResult", "View"]

logger = logging.getLogger(__name__)

CacheStatus = Literal["hit", "miss", "stale", "offline"]
#: A state as an offline mirror shows it, and whether its page lists only ``local`` files.
View: TypeAlias = Callable[[ProjectState], Awaitable[tuple[ProjectState, bool]]]


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class PageResult:
    """A project page to serve and how it was obtained."""

    state: ProjectState
    local_only: bool
    cache: CacheStatus


class PageCache:
    """Upstream's project pages with what is local, for the web layer and the file cache."""

    def __init__(  # noqa: PLR0913 (the pages' wiring: each collaborator and policy, by keyword)
        self,
        store: Store,
        client: UpstreamClient | None,
        upstreams: tuple[str, ...],
        *,
        records: Records,
        tree: Tree,
        ttl: float,
        metrics: Metrics,
        fresh_after: float = 0.0,
        view: View | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.upstreams = upstreams
        self.records = records
        self.tree = tree
        self.ttl = ttl
        self.metrics = metrics
        #: Pages fetched before this time are refreshed at first use (``sync`` wants upstream's latest).
        self.fresh_after = fresh_after
        #: Offline only: what the pages show, in place of the local files (``check``'s verified views).
        self.view = view
        self._states = ProjectStates(store, records, metrics)
        #: One page parsed (or rendered from its stored lines) at a time: a burst of pages waits on disk.
        digesting = asyncio.Lock()
        self._rendered = RenderedPages(self._states, metrics, digesting=digesting)
        self._refresher = (
            None
            if client is None
            else PageRefresher(
                store, client, upstreams, records=records, tree=tree, states=self._states, digesting=digesting
            )
        )

    @property
    def offline(self) -> bool:
        """Whether upstream is never contacted."""
        return self.client is None

    async def state(self, name: NormalizedName) -> ProjectState | None:
        """What is known of ``name``, without asking upstream."""
        return await self.load(name)

    async def page(
        self, name: NormalizedName, fmt: Format, encoding: Encoding | None, view: TargetView | None = None
    ) -> tuple[RenderedPage, CacheStatus] | None:
        """The page for ``name`` as ``fmt`` (first compressed with ``encoding``), and how it was obtained.

        ``None``: no such project. With ``view``, the page lists what that target can install.

        A fresh page already rendered is answered from what is known of it (generation and fetch
        time), without its state: a warm install never parses a large project's page again.

        :raises UpstreamError: no upstream answered and nothing is cached.
        """
        await self.revalidate(name)
        private = await self._private(name)
        if private is not None:
            return self.rendered(private, fmt, encoding, view), "hit"
        head = self._states.known_head(name)
        if head is not None and not self.offline and self._is_fresh(head[1]):
            page = self._rendered.whole_page(name, head[0], fmt, view)
            if page is not None:
                return page, "hit"
        if not self.offline and self._states.held(name) is None and view is None:
            stored = await self._render_stored(name, fmt, encoding)
            if stored is not None:
                return stored, "hit"
        result = await self.project(name)
        return None if result is None else (self.rendered(result, fmt, encoding, view), result.cache)

    async def _render_stored(
        self, name: NormalizedName, fmt: Format, encoding: Encoding | None
    ) -> RenderedPage | None:
        """Upstream's whole page, if fresh on disk, rendered from its stored lines (or ``None``)."""
        head = await self._states.head(name)
        if head is None or not self._is_fresh(head[1]):
            return None
        return await self._rendered.render_stored(name, head[0], fmt, encoding)

    def _is_fresh(self, fetched_at: float) -> bool:
        return time.time() - fetched_at < self.ttl and fetched_at >= self.fresh_after

    async def project(self, name: NormalizedName) -> PageResult | None:
        """The page for ``name``, or ``None`` when no upstream (or, offline, no local file) has it.

        :raises UpstreamError: no upstream answered and nothing is cached.
        """
        if self._refresher is None:  # offline
            return await self._offline_page(await (self.load(name) if self.view else self.load_local(name)))
        private = await self._private(name)
        if private is not None:
            return private
        head = await self._states.head(name)
        if head is not None and self._is_fresh(head[1]):
            state = await self.load(name)
            if state is not None:
                return PageResult(state, local_only=False, cache="hit")
        try:
            fresh = await self._refresher.refresh(name)
        except UpstreamError as exc:
            self.metrics.upstream_errors += 1
            record = await self.load_local(name)  # a stale page lists local files only: no need to parse it
            if record is None or not record.local:
                raise  # nothing installable to offer: a 502, so clients do not take it as "no such project"
            logger.warning("serving %s stale: %s", name, exc)
            return PageResult(record, local_only=True, cache="stale")
        if fresh is None:
            return None
        cache: CacheStatus = "hit" if head is not None and fresh.generation == head[0] else "miss"
        return PageResult(fresh, local_only=False, cache=cache)

    async def _private(self, name: NormalizedName) -> PageResult | None:
        """A private project's page, online: its own files, upstream not even asked.

        Offline, pages list local files anyway (:func:`page_files` keeps a private project's own).
        """
        if self.offline:
            return None
        record = await self.load_local(name)
        if record is None or not record.private:
            return None
        return PageResult(record, local_only=True, cache="hit")

    async def _offline_page(self, state: ProjectState | None) -> PageResult | None:
        if state is None:
            return None
        local_only = True
        if self.view is not None:
            state, local_only = await self.view(state)
        if not (state.local if local_only else state.files):
            return None
        return PageResult(state, local_only=local_only, cache="offline")

    def rendered(
        self, result: PageResult, fmt: Format, encoding: Encoding | None, view: TargetView | None = None
    ) -> RenderedPage:
        """``result`` as ``fmt`` (trimmed to ``view``), rendered and compressed once per state generation."""
        return self._rendered.render(result.state, fmt, encoding, view, local_only=result.local_only)

    async def root_page(self, fmt: Format, encoding: Encoding | None) -> RenderedPage:
        """The root page (projects with local files: a proxy does not list all of upstream)."""
        return self._rendered.root_page(await self.tree.projects(), fmt, encoding)

    async def revalidate(self, name: NormalizedName) -> None:
        """Forget what memory holds of ``name`` if another process changed its record (asked each second)."""
        if await self.records.changed(name):
            self.drop(name)

    # -- what is known of a project: see :class:`ProjectStates` --------------------

    def drop(self, name: NormalizedName) -> None:
        """Read ``name`` from the store again at the next question (its rendered pages go by generation)."""
        self._states.drop(name)

    async def load(self, name: NormalizedName) -> ProjectState | None:
        """See :meth:`ProjectStates.load`."""
        return await self._states.load(name)

    async def load_local(self, name: NormalizedName) -> ProjectState | None:
        """See :meth:`ProjectStates.load_local`."""
        return await self._states.load_local(name)

    async def page_entry(
        self, name: NormalizedName, path: str, record: ProjectState | None
    ) -> FileEntry | None:
        """See :meth:`ProjectStates.page_entry`."""
        return await self._states.page_entry(name, path, record)

    async def save_page(self, state: ProjectState) -> None:
        """See :meth:`ProjectStates.save_page`."""
        await self._states.save_page(state)

    def file_recorded(
        self, name: NormalizedName, entry: FileEntry, local: LocalFile, record: ProjectState
    ) -> None:
        """Keep the parsed page in memory in step with a file just recorded (``record``: the commit).

        A file that leaves upstream's listing as it read keeps that page's rendered forms.
        """
        old = self._states.file_recorded(name, entry, local, record)
        if old is not None and listed_entry(entry, local) == entry and old + 1 == record.generation:
            self._rendered.carry(name, old, record.generation)  # upstream's whole page reads the same
