"""Upstream's project pages fetched anew, for the page cache to decide what to serve.

- One refresh per project at a time, however many clients ask; a conditional request when
  the page came from that upstream before.
- An upstream that just failed is not asked again for a while: during an outage every page is
  served stale at once instead of after a failed attempt each.
- A new page is adopted with what is local now (the record's, committed anew), not with what
  was local when the request left.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from pipdepot.core.project import ProjectState, UnusablePage, parse_upstream_page, read_upstream_page
from pipdepot.core.urls import redact_url
from pipdepot.errors import UpstreamError
from pipdepot.server.upstream import NotFound, NotModified

if TYPE_CHECKING:
    from pipdepot.core.names import NormalizedName
    from pipdepot.server.projectstates import ProjectStates
    from pipdepot.server.records import Records
    from pipdepot.server.tree import Tree
    from pipdepot.server.upstream import UpstreamClient
    from pipdepot.storage.store import Store

__all__ = ["PageRefresher"]

logger = logging.getLogger(__name__)

_BACKOFF = 15.0


def __dir__() -> list[str]:
    return __all__


class PageRefresher:
    """Upstream's pages fetched, revalidated or adopted into the store (online only)."""

    def __init__(  # noqa: PLR0913 (a refresh's wiring: each collaborator, by keyword)
        self,
        store: Store,
        client: UpstreamClient,
        upstreams: tuple[str, ...],
        *,
        records: Records,
        tree: Tree,
        states: ProjectStates,
        digesting: asyncio.Lock,
    ) -> None:
        self.store = store
        self.client = client
        self.upstreams = upstreams
        self.records = records
        self.tree = tree
        self.states = states
        #: Shared with the rendering of stored pages: one page parsed at a time.
        self._digesting = digesting
        self._refreshes: dict[NormalizedName, asyncio.Task[ProjectState | None]] = {}
        self._down_until: dict[str, tuple[float, str]] = {}

    async def refresh(self, name: NormalizedName) -> ProjectState | None:
        """Upstream's page for ``name``, adopted; ``None``: no upstream has it.

        :raises UpstreamError: an upstream failed (now, or less than ``_BACKOFF`` seconds ago).
        """
        task = self._refreshes.get(name)
        if task is None:
            task = asyncio.create_task(self._fetch(name))
            self._refreshes[name] = task
            task.add_done_callback(lambda _: self._refreshes.pop(name, None))
        return await asyncio.shield(task)

    async def _fetch(self, name: NormalizedName) -> ProjectState | None:
        if self.upstreams:
            self._check_down(self.upstreams[0])
        old = await self.states.load(name)
        for index in self.upstreams:
            etag = old.etag if old is not None and old.upstream == index else None
            started = time.monotonic()
            self._check_down(index)
            try:
                answer = await self.client.fetch_project(
                    index, name, etag, spool=self.store.spool_directory()
                )
            except UpstreamError as exc:
                self._down_until[index] = (time.monotonic() + _BACKOFF, str(exc))
                raise
            self._down_until.pop(index, None)
            elapsed = (time.monotonic() - started) * 1000
            logger.info("upstream %s%s/: %s (%.0f ms)", redact_url(index), name, _outcome(answer), elapsed)
            if isinstance(answer, NotFound):
                continue
            if isinstance(answer, NotModified):
                assert old is not None  # noqa: S101 (no etag was sent without a state)
                old.fetched_at = time.time()
                self.states.note_head(name, old.generation, old.fetched_at)
                return old
            try:
                async with self._digesting:
                    try:
                        body = await asyncio.to_thread(read_upstream_page, answer.path, answer.content_type)
                        new = parse_upstream_page(name, body, answer.content_type, answer.url, index)
                    except UnusablePage as exc:
                        raise UpstreamError(f"{redact_url(answer.url)}: {exc}") from exc
                    new.etag = answer.etag
                    del body  # parsed: not kept while the page is saved
                    return await self._adopt(name, new)
            finally:
                answer.path.unlink(missing_ok=True)
        if old is not None and old.added:  # a private project: upstream has none of it, which is right
            return await self._adopt(name, ProjectState(name, "", [], fetched_at=time.time()))
        return None

    def _check_down(self, index: str) -> None:
        """:raises UpstreamError: ``index`` failed less than ``_BACKOFF`` seconds ago (with why)."""
        until, cause = self._down_until.get(index, (0.0, ""))
        if time.monotonic() < until:
            raise UpstreamError(f"failed less than {_BACKOFF:.0f} s ago: {cause}")

    async def _adopt(self, name: NormalizedName, new: ProjectState) -> ProjectState:
        """Take a fresh upstream page, keeping what is local (the record's, committed anew)."""
        async with self.records.lock(name):
            await self.states.save_page(new)  # first: a record never names files the page on disk lacks

            def renew(record: ProjectState) -> None:
                record.extra = dict(new.extra)

            # not `old`: files may have landed while upstream answered; the record knows them all
            record = await self.records.update(name, renew)
            assert record is not None  # noqa: S101 (a change was made)
            new.local, new.generation, new.added = dict(record.local), record.generation, list(record.added)
            new.merge_added()
            self.states.remember(new)
            if new.local:
                await self.tree.write_project(name)
        return new


def _outcome(answer: object) -> str:
    """What upstream's answer to a page request was, in the log's words."""
    if isinstance(answer, NotFound):
        return "no such project"
    if isinstance(answer, NotModified):
        return "not modified"
    return "new page"
