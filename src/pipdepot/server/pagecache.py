"""Project pages: upstream's, kept fresh, stored beside the tree, rendered once per generation.

- A page older than the TTL is refreshed with a conditional request; one refresh per project
  at a time, however many clients ask.
- When no upstream answers, the last page is served listing only the files present locally
  ("stale"); offline, the same without asking.
- What memory holds of a project (its parsed page, its rendered forms) is dropped when
  another process changed the project's record (asked at most once a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import tempfile
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pipdepot.core.project import (
    ProjectState,
    UnusablePage,
    entry_in_page,
    fetched_at_of,
    local_path_of,
    parse_upstream_page,
    read_upstream_page,
    stored_listing,
)
from pipdepot.core.urls import redact_url
from pipdepot.errors import UpstreamError
from pipdepot.server.pages import (
    CONTENT_TYPES,
    RenderedPage,
    listed_entry,
    listed_files,
    page_files,
    render_listing,
    render_project_html,
    render_project_json,
    render_root_html,
    render_root_json,
)
from pipdepot.server.upstream import NotFound, NotModified
from pipdepot.storage.store import STATE_DIR, StoreKey

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from typing import IO

    from pipdepot.core.names import NormalizedName
    from pipdepot.core.project import FileEntry, LocalFile
    from pipdepot.server.metrics import Metrics
    from pipdepot.server.pages import Encoding, Format
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
_STATES = f"{STATE_DIR}/projects"
#: A rendered page: project, generation, local files only, format, view ("": the whole page).
_RenderedKey: TypeAlias = tuple[str, int, bool, str, str]
_BACKOFF = 15.0
_RENDERED_BYTES = 16 * 1024 * 1024
#: Files of parsed project states kept in memory (about 1 KiB each). Warm pages, cached files and
#: uncached files' entries need no parsed state, so few are kept: they cost RSS, not time.
_STATE_FILES = 3_000
#: Bytes read, in turn, to find a stored page's first line (its head: a few KiB, more with thousands
#: of versions); a longer one is parsed with the page.
_PAGE_HEAD_READS = (16 * 1024, 256 * 1024)


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
        self._states: OrderedDict[NormalizedName, ProjectState] = OrderedDict()
        #: Generation and fetch time of every project seen, to answer a fresh rendered page without its state.
        self._heads: dict[NormalizedName, tuple[int, float]] = {}
        self._refreshes: dict[NormalizedName, asyncio.Task[ProjectState | None]] = {}
        self._rendered: OrderedDict[_RenderedKey, RenderedPage] = OrderedDict()
        self._rendered_bytes = 0
        self._loading = asyncio.Lock()
        #: One page parsed (or rendered from its stored lines) at a time: a burst of pages waits on disk.
        self._digesting = asyncio.Lock()
        #: Upstreams that just failed are not asked again for a while: during an outage,
        #: every page is served stale at once instead of after a failed attempt each.
        self._down_until: dict[str, tuple[float, str]] = {}

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
        head = self._heads.get(name)
        if head is not None and not self.offline and self._is_fresh(head[1]):
            key = (name, head[0], False, fmt, view.name if view is not None else "")
            page = self._rendered.get(key)
            if page is not None:
                self._rendered.move_to_end(key)
                return page, "hit"
        if not self.offline and name not in self._states and view is None:
            stored = await self._render_stored(name, fmt, encoding)
            if stored is not None:
                return stored, "hit"
        result = await self.project(name)
        return None if result is None else (self.rendered(result, fmt, encoding, view), result.cache)

    async def _render_stored(
        self, name: NormalizedName, fmt: Format, encoding: Encoding | None
    ) -> RenderedPage | None:
        """Upstream's whole page, fresh on disk but not in memory, rendered from its lines one at a time.

        What a warm install after a cold one asks for: pages that changed only by the files that
        became local (pipdepot adds the metadata hashes it extracted). Parsing such a page whole
        again cost 15 MB of objects for pydantic-core. ``None``: not such a page; the caller parses.
        """
        head = await self._head(name)
        if head is None or not self._is_fresh(head[1]):
            return None
        async with self._digesting:  # one page at a time: a warm install asks for 40 at once
            key = (name, head[0], False, fmt, "")
            if (rendered := self._rendered.get(key)) is not None:  # while this one waited
                return rendered
            record = await self.load_local(name)
            if record is None or record.generation != head[0]:
                return None
            async with self._stored_page(name) as page:
                listing = _renderable(page) if page is not None else None
                if listing is None:
                    return None
                extra, entries = listing
                self.metrics.pages_rendered += 1
                body = render_listing(name, extra, listed_files(entries, record), fmt)
                return self._keep(key, RenderedPage.of(body, CONTENT_TYPES[fmt], encoding))

    @contextlib.asynccontextmanager
    async def _stored_page(self, name: NormalizedName) -> AsyncIterator[IO[bytes] | None]:
        """Upstream's stored page as a stream: the open file, so its lines are read one at a time.

        ``None``: no page stored. A store without local files gives the bytes, read whole.
        """
        key = StoreKey(f"{_STATES}/{name}.json")
        path = self.store.local_path(key)
        if path is None:
            page = await self.store.read(key)
            yield io.BytesIO(page) if page is not None else None
            return
        try:
            stream = path.open("rb")
        except (FileNotFoundError, NotADirectoryError):
            stream = None
        if stream is None:
            yield None
            return
        with stream:
            yield stream

    def _is_fresh(self, fetched_at: float) -> bool:
        return time.time() - fetched_at < self.ttl and fetched_at >= self.fresh_after

    async def project(self, name: NormalizedName) -> PageResult | None:
        """The page for ``name``, or ``None`` when no upstream (or, offline, no local file) has it.

        :raises UpstreamError: no upstream answered and nothing is cached.
        """
        if self.offline:
            return await self._offline_page(await (self.load(name) if self.view else self.load_local(name)))
        private = await self._private(name)
        if private is not None:
            return private
        head = await self._head(name)
        if head is not None and self._is_fresh(head[1]):
            state = await self.load(name)
            if state is not None:
                return PageResult(state, local_only=False, cache="hit")
        try:
            fresh = await self._refresh(name)
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

    async def _head(self, name: NormalizedName) -> tuple[int, float] | None:
        """The generation of what is known of ``name`` and when upstream's page was fetched.

        Read from the first line of the stored page: whether the page is fresh is known without
        parsing it, and a stale one (upstream down) is never parsed at all.
        """
        head = self._heads.get(name)
        if head is not None:
            return head
        fetched_at = None
        for size in _PAGE_HEAD_READS:  # a warm install asks for 40 pages at once: small reads first
            start = await self.store.read_start(StoreKey(f"{_STATES}/{name}.json"), size)
            if start is None:
                return None
            with contextlib.suppress(ValueError):
                fetched_at = fetched_at_of(start)
            if fetched_at is not None or len(start) < size:
                break
        if fetched_at is None:  # a page stored before entries had a line each, or a head of a rare size
            state = await self.load(name)
            return None if state is None else (state.generation, state.fetched_at)
        record = await self.load_local(name)
        generation = record.generation if record is not None else 0
        self._heads.setdefault(name, (generation, fetched_at))
        return self._heads[name]

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
        state = result.state
        key = (state.name, state.generation, result.local_only, fmt, view.name if view is not None else "")
        page = self._rendered.get(key)
        if page is not None:
            self._rendered.move_to_end(key)
            return page
        self.metrics.pages_rendered += 1
        files = page_files(state, local_only=result.local_only)
        if view is not None:
            files = view.trim(files)
        body = render_project_json(state, files) if fmt == "json" else render_project_html(state, files)
        return self._keep(key, RenderedPage.of(body, CONTENT_TYPES[fmt], encoding))

    def _keep(self, key: _RenderedKey, page: RenderedPage) -> RenderedPage:
        self._rendered[key] = page
        self._rendered_bytes += page.size  # a later form is not counted: pip and uv each ask for one
        while self._rendered_bytes > _RENDERED_BYTES and len(self._rendered) > 1:
            _, old = self._rendered.popitem(last=False)
            self._rendered_bytes -= old.size
        return page

    async def root_page(self, fmt: Format, encoding: Encoding | None) -> RenderedPage:
        """The root page (projects with local files: a proxy does not list all of upstream)."""
        names = await self.tree.projects()
        key = ("", hash(names), False, fmt, "")
        page = self._rendered.get(key)
        if page is None:
            body = render_root_json(names) if fmt == "json" else render_root_html(names)
            page = self._keep(key, RenderedPage.of([body], CONTENT_TYPES[fmt], encoding))
        return page

    async def _refresh(self, name: NormalizedName) -> ProjectState | None:
        task = self._refreshes.get(name)
        if task is None:
            task = asyncio.create_task(self._fetch(name))
            self._refreshes[name] = task
            task.add_done_callback(lambda _: self._refreshes.pop(name, None))
        return await asyncio.shield(task)

    async def _fetch(self, name: NormalizedName) -> ProjectState | None:
        assert self.client is not None  # noqa: S101 (only called online)
        if self.upstreams:
            self._check_down(self.upstreams[0])
        old = await self.load(name)
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
                self._heads[name] = (old.generation, old.fetched_at)
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
            await self.save_page(new)  # first: a record never names files the page on disk lacks

            def renew(record: ProjectState) -> None:
                record.extra = dict(new.extra)

            # not `old`: files may have landed while upstream answered; the record knows them all
            record = await self.records.update(name, renew)
            assert record is not None  # noqa: S101 (a change was made)
            new.local, new.generation, new.added = dict(record.local), record.generation, list(record.added)
            new.merge_added()
            self._remember(new)
            if new.local:
                await self.tree.write_project(name)
        return new

    async def page_entry(
        self, name: NormalizedName, path: str, record: ProjectState | None
    ) -> FileEntry | None:
        """Upstream's entry for the file at ``path``, from the state in memory or one line of the stored page.

        A cold install asks for one file of each project it just saw: the page is not parsed again
        for it (95 ms and 15 MB of objects for a page of 15,000 files).
        """
        state = self._states.get(name)
        if state is not None:
            return state.file_by_path(path)
        filename = path.rsplit("/", 1)[-1]
        if record is not None and any(entry["filename"] == filename for entry in record.added):
            return None  # upstream's file of that name is hidden by the added one
        try:
            async with self._stored_page(name) as page:
                entry = await asyncio.to_thread(entry_in_page, page, filename) if page is not None else None
        except ValueError:  # a page stored before entries had a line each: parsed whole
            state = await self.load(name)
            return state.file_by_path(path) if state is not None else None
        if entry is None or local_path_of(entry["url"], entry["filename"]) != path:
            return None
        return entry

    def _carry_rendered(self, name: NormalizedName, old: int, new: int) -> None:
        """Keep the rendered forms of upstream's whole page for generation ``new``.

        A download that adds nothing to what upstream listed (size, sha256 and metadata hash
        known) leaves that page as it was: a warm install after a cold one then finds every page
        rendered, where it parsed and rendered each again (pydantic-core: 15 MB, 250 ms).
        """
        for fmt in CONTENT_TYPES:
            page = self._rendered.pop((name, old, False, fmt, ""), None)
            if page is not None:
                self._rendered[(name, new, False, fmt, "")] = page

    async def revalidate(self, name: NormalizedName) -> None:
        """Forget what memory holds of ``name`` if another process changed its record (asked each second)."""
        if await self.records.changed(name):
            self.drop(name)

    def drop(self, name: NormalizedName) -> None:
        """Read ``name`` from the store again at the next question (its rendered pages go by generation)."""
        self._states.pop(name, None)
        self._heads.pop(name, None)

    async def load(self, name: NormalizedName) -> ProjectState | None:
        """The full state of ``name`` (upstream's page with the record), parsed once and kept a while."""
        state = self._states.get(name)
        if state is not None:
            self._states.move_to_end(name)
            return state
        async with self._loading:  # one at a time: a burst of requests never holds every file at once
            state = self._states.get(name)
            if state is not None:
                return state
            state = await self._read(name)
            if state is not None:
                self._remember(state)
            return state

    async def load_local(self, name: NormalizedName) -> ProjectState | None:
        """The state for questions about local files: the full one if in memory, else the local record.

        A record is a few entries where upstream's page can be thousands (pydantic-core: 6 MB of
        JSON, 75 ms to parse): offline pages, file lookups and hits never need the page.
        """
        state = self._states.get(name)
        if state is not None:
            return state
        return await self.records.get(name)

    async def _read(self, name: NormalizedName) -> ProjectState | None:
        """The stored state: upstream's page with the local record (either may be missing)."""
        record = await self.records.get(name, recheck=True)
        local = record.local_json() if record is not None else None
        data = await self.store.read(StoreKey(f"{_STATES}/{name}.json"))
        if data is None and local is None:
            return None
        try:
            return ProjectState.from_json(data, local)
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring unreadable state of %s", name)
            return None

    def _remember(self, state: ProjectState) -> None:
        self._heads[state.name] = (state.generation, state.fetched_at)
        self._states[state.name] = state
        self._states.move_to_end(state.name)
        held = sum(len(s.files) for s in self._states.values())
        while held > _STATE_FILES:  # a state over the budget alone goes too: read from its lines when asked
            held -= len(self._states.popitem(last=False)[1].files)
        self.metrics.parsed_entries_held = held

    async def save_page(self, state: ProjectState) -> None:
        """Write upstream's page as stored (overwritten: of two writers, both fresh, either may win)."""
        spooled = await asyncio.to_thread(self._spooled_page, state)
        await self.store.put(StoreKey(f"{_STATES}/{state.name}.json"), spooled)

    def _spooled_page(self, state: ProjectState) -> Path:
        """Upstream's page written to the spool line by line (its lock held: nothing changes it meanwhile)."""
        fd, name = tempfile.mkstemp(dir=self.store.spool_directory(), prefix="page-")
        try:
            with open(fd, "wb", buffering=1 << 20) as target:  # noqa: PTH123 (a descriptor, not a path)
                state.write_page(target)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    def file_recorded(
        self, name: NormalizedName, entry: FileEntry, local: LocalFile, record: ProjectState
    ) -> None:
        """Keep the parsed page in memory in step with a file just recorded (``record``: the commit)."""
        filename = entry["filename"]
        full = self._states.get(name)
        if full is not None and full.local.get(filename) != local:
            old = full.generation
            if all(e["filename"] != filename for e in full.files):
                full.files.append(entry)
                full.merge_added()
            full.local, full.added, full.generation = (
                dict(record.local),
                list(record.added),
                record.generation,
            )
            if listed_entry(entry, local) == entry and old + 1 == record.generation:
                self._carry_rendered(name, old, record.generation)  # upstream's whole page reads the same
        head = self._heads.get(name)
        if head is not None:
            self._heads[name] = (record.generation, head[1])


def _renderable(page: IO[bytes]) -> tuple[dict[str, Any], Iterator[FileEntry]] | None:
    """The stored page's ``extra`` and entries, if its head can be rendered before its files.

    That takes every file's size (the api-version) and upstream's ``versions``, as PyPI gives.
    """
    try:
        meta, entries = stored_listing(page)
    except ValueError:  # a page stored before entries had a line each
        return None
    extra = meta.get("extra")
    if meta.get("all_sizes") and isinstance(extra, dict) and isinstance(extra.get("versions"), list):
        return (extra, entries) if extra["versions"] else None
    return None


def _outcome(answer: object) -> str:
    """What upstream's answer to a page request was, in the log's words."""
    if isinstance(answer, NotFound):
        return "no such project"
    if isinstance(answer, NotModified):
        return "not modified"
    return "new page"
