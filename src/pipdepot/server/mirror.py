"""The caching mirror: project pages and files, from the store or from upstream.

Policy lives here; I/O goes through :class:`Store` and :class:`UpstreamClient`.

- A page older than the TTL is refreshed with a conditional request; one
  refresh per project at a time, however many clients ask.
- When no upstream answers, the last page is served listing only the files
  present locally ("stale"); offline, the same without asking.
- A file not yet cached is downloaded once and streamed to every client.
- After each new file, ``<project>/index.html`` (relative links, local files
  only) is rewritten, and the root ``index.html`` when a project enters or leaves
  the tree (:mod:`tree`), so the directory is always a static PEP 503 tree.
- Any number of processes write one mirror at once: files are committed
  create-only, records by compare-and-swap (:mod:`records`), and what another
  process committed is seen within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pipdepot.core.archive import MEMBER_LIMIT, ArchiveError, wheel_metadata
from pipdepot.core.project import (
    ADDED_SCHEME,
    LocalFile,
    ProjectState,
    UnusablePage,
    entry_in_page,
    fetched_at_of,
    local_path_of,
    parse_upstream_page,
    project_of_path,
    read_upstream_page,
    stored_listing,
)
from pipdepot.core.urls import redact_url
from pipdepot.errors import UpstreamError
from pipdepot.server.download import Download
from pipdepot.server.leases import Leases
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
from pipdepot.server.records import Records
from pipdepot.server.tree import Tree
from pipdepot.server.upstream import NotFound, NotModified, Partial
from pipdepot.storage.digests import file_sha256, stored_sha256
from pipdepot.storage.store import COMMIT_MARKER, STATE_DIR, AlreadyExists, IntegrityError, StoreKey

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from typing import IO

    from pipdepot.core.names import NormalizedName
    from pipdepot.core.project import FileEntry
    from pipdepot.fill.distribution import LocalDistribution
    from pipdepot.server.metrics import Metrics
    from pipdepot.server.pages import Encoding, Format
    from pipdepot.server.upstream import UpstreamClient
    from pipdepot.storage.store import Store, StoredFile

__all__ = ["CacheStatus", "FileHit", "ImportedFile", "Mirror", "Origin", "PageResult", "View"]

logger = logging.getLogger(__name__)

CacheStatus = Literal["hit", "miss", "stale", "offline"]
#: A state as an offline mirror shows it, and whether its page lists only ``local`` files.
View: TypeAlias = Callable[[ProjectState], Awaitable[tuple[ProjectState, bool]]]
_STATES = f"{STATE_DIR}/projects"
_BACKOFF = 15.0
_RENDERED_BYTES = 16 * 1024 * 1024
#: Larger ranges fetch (and keep) the whole file: a client reading that much will want the rest.
_PARTIAL_LIMIT = 1024 * 1024
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


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an imported file's project came from, for a mirror that has never seen it."""

    upstream: str
    extra: dict[str, object]
    added: bool


@dataclass(frozen=True, slots=True)
class ImportedFile:
    """A file from an export archive, verified and staged in the spool."""

    name: NormalizedName
    entry: FileEntry
    local: LocalFile
    staged: Path
    metadata: bytes | None
    origin: Origin


@dataclass(frozen=True, slots=True)
class FileHit:
    """A file present in the store (``path``: where the OS can send it from, if the store is local)."""

    key: StoreKey
    path: Path | None
    size: int


class Mirror:
    """Pages and files for the web layer; one instance per server."""

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
        self.ttl = ttl
        self.metrics = metrics
        #: Pages fetched before this time are refreshed at first use (``sync`` wants upstream's latest).
        self.fresh_after = fresh_after
        #: Offline only: what the pages show, in place of the local files (``check``'s verified views).
        self.view = view
        self._states: OrderedDict[NormalizedName, ProjectState] = OrderedDict()
        #: The local records (local files only), for offline pages and file hits; shared with other writers.
        self.records = Records(store)
        self.tree = Tree(store, self.records, metrics)
        #: One upstream fetch per file across every process serving this store.
        self.leases = Leases(store)
        self._census: asyncio.Task[None] | None = None
        #: Generation and fetch time of every project seen, to answer a fresh rendered page without its state.
        self._heads: dict[NormalizedName, tuple[int, float]] = {}
        self._refreshes: dict[NormalizedName, asyncio.Task[ProjectState | None]] = {}
        self._downloads: dict[StoreKey, Download] = {}
        self._locks: dict[NormalizedName, asyncio.Lock] = {}
        self._rendered: OrderedDict[tuple[str, int, bool, str], RenderedPage] = OrderedDict()
        self._rendered_bytes = 0
        self._loading = asyncio.Lock()
        #: One page parsed (or rendered from its stored lines) at a time: a burst of pages waits on disk.
        self._digesting = asyncio.Lock()
        #: Upstreams that just failed are not asked again for a while: during an outage,
        #: every page is served stale at once instead of after a failed attempt each.
        self._down_until: dict[str, tuple[float, str]] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        #: Where files of an object store are copied for what needs a local path (builds, export).
        self._copies: Path | None = None
        #: Files this process downloaded, by filename, whoever asked (``sync`` reports and prunes them).
        self.downloaded: dict[str, NormalizedName] = {}

    @property
    def offline(self) -> bool:
        """Whether upstream is never contacted."""
        return self.client is None

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
        """Settle what killed writers left between moving a file into the tree and recording it.

        Their commit markers (adopted by this process's spool) name the file and its entry: a
        file that is there with the announced sha256 is recorded now, so nothing verified is lost;
        anything else is removed. A marker from before markers named entries: removed if unrecorded.
        """
        for marker in sorted(self.store.spool_directory().glob(f"{COMMIT_MARKER}*")):
            text = marker.read_text(encoding="utf-8", errors="replace")
            try:
                await self._settle(text)
            except (ValueError, KeyError, TypeError, OSError) as exc:
                logger.warning("commit marker %s not settled: %s", marker.name, exc)
            marker.unlink()
        await self.tree.resume()

    async def _settle(self, text: str) -> None:
        described = json.loads(text) if text.startswith("{") else {"key": text}
        key = StoreKey(described["key"])
        name = project_of_path(key)
        record = await self.records.get(name, recheck=True) if name is not None else None
        filename = key.rsplit("/", 1)[-1]
        if record is not None and filename in record.local:
            return
        entry, sha256 = described.get("entry"), described.get("sha256")
        path = await self.local_copy(key) if isinstance(entry, dict) and sha256 else None
        if name is not None and isinstance(entry, dict) and path is not None:
            digest, size = await asyncio.to_thread(file_sha256, path)
            if digest == sha256:
                metadata = await self._store_metadata(entry, path)
                await self._add_local(name, entry, LocalFile(sha256, size, metadata))
                logger.warning("recorded %s: moved into the tree, then its writer was killed", key)
                return
        with contextlib.suppress(ValueError):  # not a key: nothing to remove
            await self.store.delete(StoreKey(key + ".metadata"))
            await self.store.delete(key)
            logger.warning("removed %s: moved into the tree, then killed before it was recorded", key)

    async def aclose(self) -> None:
        """Wait for downloads in flight, so files are committed before the process ends."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)
        await self.tree.flush()
        if self._census is not None and not self._census.done():
            self._census.cancel()
        if self._copies is not None:
            shutil.rmtree(self._copies, ignore_errors=True)

    async def local_copy(self, key: StoreKey) -> Path | None:
        """A local path with the bytes of ``key``; ``None``: no such file.

        The file itself, or a copy of an object store's, removed when the mirror closes.
        """
        path = self.store.local_path(key)
        if path is not None:
            return path if path.is_file() else None
        if self._copies is None:
            self._copies = Path(tempfile.mkdtemp(dir=self.store.spool_directory(), prefix="copies-"))
        copy = self._copies / str(len(list(self._copies.iterdir()))) / key.rsplit("/", 1)[-1]
        copy.parent.mkdir()
        try:
            with copy.open("wb") as stream:
                async for chunk in self.store.stream(key):
                    await asyncio.to_thread(stream.write, chunk)
        except FileNotFoundError:
            shutil.rmtree(copy.parent, ignore_errors=True)
            return None
        return copy

    async def local_projects(self) -> tuple[str, ...]:
        """The projects with files in the store, sorted."""
        return await self.tree.projects(max_age=0)

    async def state(self, name: NormalizedName) -> ProjectState | None:
        """What is known of ``name``, without asking upstream."""
        return await self._load(name)

    # -- pages ------------------------------------------------------------

    async def page(
        self, name: NormalizedName, fmt: Format, encoding: Encoding | None
    ) -> tuple[RenderedPage, CacheStatus] | None:
        """The page for ``name`` as ``fmt`` (first compressed with ``encoding``), and how it was obtained.

        ``None``: no such project.

        A fresh page already rendered is answered from what is known of it (generation and fetch
        time), without its state: a warm install never parses a large project's page again.

        :raises UpstreamError: no upstream answered and nothing is cached.
        """
        await self._revalidate(name)
        head = self._heads.get(name)
        if head is not None and not self.offline and self._is_fresh(head[1]):
            key = (name, head[0], False, fmt)
            page = self._rendered.get(key)
            if page is not None:
                self._rendered.move_to_end(key)
                return page, "hit"
        if not self.offline and name not in self._states:
            stored = await self._render_stored(name, fmt, encoding)
            if stored is not None:
                return stored, "hit"
        result = await self.project(name)
        return None if result is None else (self.rendered(result, fmt, encoding), result.cache)

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
            key = (name, head[0], False, fmt)
            if (rendered := self._rendered.get(key)) is not None:  # while this one waited
                return rendered
            record = await self._load_local(name)
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
            return await self._offline_page(await (self._load(name) if self.view else self._load_local(name)))
        head = await self._head(name)
        if head is not None and self._is_fresh(head[1]):
            state = await self._load(name)
            if state is not None:
                return PageResult(state, local_only=False, cache="hit")
        try:
            fresh = await self._refresh(name)
        except UpstreamError as exc:
            self.metrics.upstream_errors += 1
            record = await self._load_local(name)  # a stale page lists local files only: no need to parse it
            if record is None or not record.local:
                raise  # nothing installable to offer: a 502, so clients do not take it as "no such project"
            logger.warning("serving %s stale: %s", name, exc)
            return PageResult(record, local_only=True, cache="stale")
        if fresh is None:
            return None
        cache: CacheStatus = "hit" if head is not None and fresh.generation == head[0] else "miss"
        return PageResult(fresh, local_only=False, cache=cache)

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
            state = await self._load(name)
            return None if state is None else (state.generation, state.fetched_at)
        record = await self._load_local(name)
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

    def rendered(self, result: PageResult, fmt: Format, encoding: Encoding | None) -> RenderedPage:
        """``result`` as ``fmt``, rendered and compressed once per state generation."""
        state = result.state
        key = (state.name, state.generation, result.local_only, fmt)
        page = self._rendered.get(key)
        if page is not None:
            self._rendered.move_to_end(key)
            return page
        self.metrics.pages_rendered += 1
        files = page_files(state, local_only=result.local_only)
        body = render_project_json(state, files) if fmt == "json" else render_project_html(state, files)
        return self._keep(key, RenderedPage.of(body, CONTENT_TYPES[fmt], encoding))

    def _keep(self, key: tuple[str, int, bool, str], page: RenderedPage) -> RenderedPage:
        self._rendered[key] = page
        self._rendered_bytes += page.size  # a later form is not counted: pip and uv each ask for one
        while self._rendered_bytes > _RENDERED_BYTES and len(self._rendered) > 1:
            _, old = self._rendered.popitem(last=False)
            self._rendered_bytes -= old.size
        return page

    async def root_page(self, fmt: Format, encoding: Encoding | None) -> RenderedPage:
        """The root page (projects with local files: a proxy does not list all of upstream)."""
        names = await self.tree.projects()
        key = ("", hash(names), False, fmt)
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
        old = await self._load(name)
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
        async with self._lock(name):
            await self._save_page(new)  # first: a record never names files the page on disk lacks

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

    # -- files --------------------------------------------------------------

    async def find(self, path: str) -> tuple[NormalizedName, FileEntry] | None:
        """The project and upstream entry of a served file path, refreshing a stale page once.

        Callers get the project's name, not its state: a download or a stream that lasts holds
        one entry, never a whole page of upstream data.
        """
        name = project_of_path(path)
        if name is None:
            return None
        await self._revalidate(name)
        record = await self._load_local(name)  # a cached file: the local record knows it
        entry = record.file_by_path(path) if record is not None else None
        if entry is None:  # perhaps committed by another process just now
            record = await self.records.get(name, recheck=True)
            entry = record.file_by_path(path) if record is not None else None
        if entry is None and not (self.offline and self.view is None):  # only local files offline
            entry = await self._page_entry(name, path, record)
        if entry is None and not self.offline:
            with contextlib.suppress(UpstreamError):
                result = await self.project(name)
                entry = result.state.file_by_path(path) if result is not None else None
        return None if entry is None else (name, entry)

    async def _page_entry(
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
            state = await self._load(name)
            return state.file_by_path(path) if state is not None else None
        if entry is None or local_path_of(entry["url"], entry["filename"]) != path:
            return None
        return entry

    async def local_file(self, name: NormalizedName, entry: FileEntry) -> FileHit | None:
        """The file from the store, when it is there (committed by this process or another)."""
        state = await self._load_local(name)
        if state is None or entry["filename"] not in state.local:
            state = await self.records.get(name, recheck=True)
            if state is None or entry["filename"] not in state.local:
                return None
            self._drop(name)  # the parsed page in memory predates that file
        key = _key_of(entry)
        stored = await self.store.stat(key)
        path = self.store.local_path(key)
        if stored is None or stored.size != state.local[entry["filename"]].size:
            return None  # gone or cut short behind the mirror's back: fetched again
        return FileHit(key, path, stored.size)

    def download(self, name: NormalizedName, entry: FileEntry) -> Download | None:
        """The download of a file not in the store, started if no one started it; ``None`` offline."""
        if self.client is None or entry["url"].startswith(ADDED_SCHEME):
            return None
        key = _key_of(entry)
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

    async def add(self, dist: LocalDistribution) -> bool:
        """Put a local wheel or sdist into the mirror, listed like upstream's files (before them).

        :returns: ``False`` when the same file (same sha256) is already there.
        :raises IntegrityError: a file of that name is there with other content; nothing changes.
        """
        key = StoreKey(f"packages/+local/{dist.name}/{dist.filename}")
        async with self._lock(dist.name):
            record = await self.records.get(dist.name, recheck=True)
            if record is not None and _same_added(record, dist.filename, dist.sha256):
                return False
            await self._put_verified(key, await asyncio.to_thread(self._spooled_copy, dist.path), dist.sha256)
            entry: FileEntry = {
                "filename": dist.filename,
                "url": f"{ADDED_SCHEME}/{key}",
                "hashes": {"sha256": dist.sha256},
                "size": dist.size,
                "upload-time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
            if dist.requires_python:
                entry["requires-python"] = dist.requires_python
            if dist.metadata is not None:
                await self.store.put(StoreKey(key + ".metadata"), dist.metadata)
                entry["core-metadata"] = {"sha256": hashlib.sha256(dist.metadata).hexdigest()}

            def list_added(state: ProjectState) -> bool:
                if _same_added(state, dist.filename, dist.sha256):
                    return False
                state.added = [e for e in state.added if e["filename"] != dist.filename] + [entry]
                state.merge_added()
                state.local[dist.filename] = LocalFile(dist.sha256, dist.size)
                return True

            await self.records.update(dist.name, list_added)
            self._drop(dist.name)
            self.tree.counted(1)
            await self.tree.write_project(dist.name)
        return True

    async def _put_verified(self, key: StoreKey, source: Path, sha256: str) -> None:
        """Commit ``source`` at ``key`` create-only; a file already there must have the same sha256.

        :raises IntegrityError: the key holds other content (or ``source`` is not ``sha256``).
        """
        try:
            await self.store.put(key, source, sha256=sha256, create=True)
        except AlreadyExists:
            digest = await stored_sha256(self.store, key)
            if digest != sha256:
                raise IntegrityError(
                    f"{key.rsplit('/', 1)[-1]} is already in the mirror with other content "
                    f"(sha256 {digest[:12] if digest else '?'}..., this one {sha256[:12]}...)"
                ) from None

    async def import_file(self, item: ImportedFile) -> None:
        """Move a verified file (``staged``, in the spool) into the store and list it.

        The entry joins the project's page if the page lacks it; a project the mirror has
        never seen starts from the exporter's record, due for a refresh when online.

        :raises IntegrityError: ``staged`` does not hash to ``local.sha256``, or the mirror has
            another file of that name.
        """
        name, entry, local, origin = item.name, item.entry, item.local, item.origin
        key = _key_of(entry)
        async with self._lock(name):
            await self._put_verified(key, item.staged, local.sha256)
            if item.metadata is not None:
                await self.store.put(StoreKey(key + ".metadata"), item.metadata)
            if not origin.added:
                await self._page_lists(name, entry, origin)

            def list_imported(state: ProjectState) -> None:
                if origin.added:
                    state.added = [e for e in state.added if e["filename"] != entry["filename"]] + [entry]
                elif all(e["filename"] != entry["filename"] for e in state.files):
                    state.files.append(entry)
                state.merge_added()  # also forgets the cached paths, which lack the new file
                state.local[entry["filename"]] = local

            def start() -> ProjectState:
                return ProjectState(name, origin.upstream, [], extra=dict(origin.extra))

            await self.records.update(name, list_imported, new=start)
            self._drop(name)
            self.tree.counted(1)
            await self.tree.write_project(name)

    async def _page_lists(self, name: NormalizedName, entry: FileEntry, origin: Origin) -> None:
        """Make upstream's stored page list ``entry`` (a page started from the exporter's, if none)."""
        state = await self._load(name)
        if state is None or not state.upstream:
            state = ProjectState(name, origin.upstream, [], extra=dict(origin.extra))
        if any(e["filename"] == entry["filename"] for e in state.files):
            return
        state.files.append(entry)
        state.merge_added()
        await self._save_page(state)

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

    def _spooled_copy(self, source: Path) -> Path:
        fd, name = tempfile.mkstemp(dir=self.store.spool_directory(), prefix="add-")
        with open(fd, "wb") as target, source.open("rb") as stream:  # noqa: PTH123 (a descriptor, not a path)
            shutil.copyfileobj(stream, target, 1 << 20)
        return Path(name)

    async def forget(self, name: NormalizedName, filename: str) -> int:
        """Remove a local file (and its metadata file) from the store and the pages; its size, or 0."""
        async with self._lock(name):
            removed: list[tuple[LocalFile, str]] = []

            def unlist(state: ProjectState) -> bool:
                local = state.local.pop(filename, None)
                if local is None:
                    return False
                removed[:] = [(local, state.path_of(filename))]
                return True

            await self.records.update(
                name, unlist
            )  # first: a crash leaves a file not listed, never a listed file missing
            if not removed:
                return 0
            local, path = removed[0]
            self._drop(name)
            self.tree.counted(-1)
            await self.tree.write_project(name)
            key = StoreKey(path.removeprefix("/"))
            await self.store.delete(key)
            await self.store.delete(StoreKey(key + ".metadata"))
            self.downloaded.pop(filename, None)
            return local.size

    def downloading(self, entry: FileEntry) -> bool:
        """Whether the file is being downloaded now."""
        return _key_of(entry) in self._downloads

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

    async def _run_download(self, name: NormalizedName, entry: FileEntry, download: Download) -> None:
        assert self.client is not None  # noqa: S101
        started = time.monotonic()

        metadata: list[str | None] = [None]

        async def prepare(spool: Path) -> None:  # before the commit: the spool is a local file on any store
            metadata[0] = await self._store_metadata(entry, spool)

        async def record(stored: StoredFile, sha256: str) -> None:
            await self._add_local(name, entry, LocalFile(sha256, stored.size, metadata[0]))
            self.downloaded[entry["filename"]] = name
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
            self._downloads.pop(download.key, None)
            self.metrics.bytes_fetched += download.written

    async def _recorded_elsewhere(self, name: NormalizedName, filename: str) -> None:
        """Wait (a few seconds at most) for the process that committed ``filename`` to record it."""
        for _ in range(50):
            record = await self.records.get(name, recheck=True)
            if record is not None and filename in record.local:
                self._drop(name)
                return
            await asyncio.sleep(0.1)

    async def _store_metadata(self, entry: FileEntry, path: Path) -> str | None:
        """Store a wheel's METADATA as ``<file>.metadata`` (PEP 658); its sha256.

        Only for a wheel whose upstream offers no metadata file; read from the local file ``path``.
        """
        if not entry["filename"].endswith(".whl") or entry.get("core-metadata"):
            return None
        data = await asyncio.to_thread(_extract_metadata, path)
        if data is None:
            return None
        await self.store.put(StoreKey(_key_of(entry) + ".metadata"), data)
        return hashlib.sha256(data).hexdigest()

    async def metadata_cached(self, entry: FileEntry) -> bool:
        """Whether the file's core metadata is in the store (served as a hit)."""
        return await self.store.stat(StoreKey(_key_of(entry) + ".metadata")) is not None

    async def metadata(self, name: NormalizedName, entry: FileEntry) -> bytes | None:
        """The core metadata of a distribution: upstream's, or extracted from the cached wheel.

        :raises UpstreamError, IntegrityError: it could not be fetched or verified.
        """
        key = StoreKey(_key_of(entry) + ".metadata")
        cached = await self.store.read(key)
        if cached is not None:
            return cached
        declared = entry.get("core-metadata")
        if declared and self.client is not None:
            expected = declared.get("sha256") if isinstance(declared, dict) else None
            # as for an extracted METADATA: never more than MEMBER_LIMIT held
            data = await self.client.fetch_small(entry["url"] + ".metadata", limit=MEMBER_LIMIT)
            await self.store.put(key, data, sha256=expected)
            return data
        if not entry["filename"].endswith(".whl"):
            return None
        state = await self._load_local(name)
        if state is None or entry["filename"] not in state.local:
            del state
            download = self.download(name, entry)
            if download is None:
                return None
            await download.done.wait()
            if download.error is not None:
                raise download.error
        return await self.store.read(key)

    # -- state and the static tree --------------------------------------------

    async def _add_local(self, name: NormalizedName, entry: FileEntry, local: LocalFile) -> None:
        """Record a new local file: only the small local record is read and written.

        Upstream's page (megabytes for a large project) is not parsed again for it,
        however many downloads finish at once.
        """
        filename = entry["filename"]

        def list_local(state: ProjectState) -> bool:
            if state.local.get(filename) == local:
                return False  # another writer recorded it
            if all(e["filename"] != filename for e in state.files):
                state.files.append(entry)  # a record without the page lists local entries only
                state.merge_added()
            state.local[filename] = local
            return True

        async with self._lock(name):
            record = await self.records.update(name, list_local)
            if record is None:
                raise UnusablePage(f"no state for {name}")
            full = self._states.get(name)
            if full is not None and full.local.get(filename) != local:  # the parsed page, kept in step
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
            self.tree.counted(1)
        await self.tree.write_project(name)

    def _carry_rendered(self, name: NormalizedName, old: int, new: int) -> None:
        """Keep the rendered forms of upstream's whole page for generation ``new``.

        A download that adds nothing to what upstream listed (size, sha256 and metadata hash
        known) leaves that page as it was: a warm install after a cold one then finds every page
        rendered, where it parsed and rendered each again (pydantic-core: 15 MB, 250 ms).
        """
        for fmt in CONTENT_TYPES:
            page = self._rendered.pop((name, old, False, fmt), None)
            if page is not None:
                self._rendered[(name, new, False, fmt)] = page

    async def _revalidate(self, name: NormalizedName) -> None:
        """Forget what memory holds of ``name`` if another process changed its record (asked each second)."""
        if await self.records.changed(name):
            self._drop(name)

    def _drop(self, name: NormalizedName) -> None:
        """Read ``name`` from the store again at the next question (its rendered pages go by generation)."""
        self._states.pop(name, None)
        self._heads.pop(name, None)

    async def _load(self, name: NormalizedName) -> ProjectState | None:
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

    async def _load_local(self, name: NormalizedName) -> ProjectState | None:
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

    async def _save_page(self, state: ProjectState) -> None:
        """Write upstream's page as stored (overwritten: of two writers, both fresh, either may win)."""
        spooled = await asyncio.to_thread(self._spooled_page, state)
        await self.store.put(StoreKey(f"{_STATES}/{state.name}.json"), spooled)

    def _lock(self, name: NormalizedName) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())


def _same_added(state: ProjectState, filename: str, sha256: str) -> bool:
    """Whether ``filename`` is added and present with ``sha256``.

    :raises IntegrityError: it is added with another sha256.
    """
    known = next((e for e in state.added if e["filename"] == filename), None)
    if known is None:
        return False
    if known["hashes"]["sha256"] != sha256:
        raise IntegrityError(
            f"{filename} is already in the mirror with other content "
            f"(sha256 {known['hashes']['sha256'][:12]}..., this one {sha256[:12]}...)"
        )
    return filename in state.local


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


def _key_of(entry: FileEntry) -> StoreKey:
    return StoreKey(local_path_of(entry["url"], entry["filename"]).removeprefix("/"))


def _extract_metadata(path: Path) -> bytes | None:
    """``*.dist-info/METADATA`` of a wheel, byte for byte; ``None`` when it cannot be offered.

    A wheel with the right sha256 is a valid file even when its METADATA is too large or
    cannot be inflated: it is served, with no PEP 658 file (clients read the wheel itself).
    """
    try:
        return wheel_metadata(path)
    except (ArchiveError, OSError) as exc:
        logger.warning("no metadata offered for %s: %s", path.name, exc)
        return None
