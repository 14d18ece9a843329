"""What is known of each project: upstream's page as stored, with the local record, parsed once.

- A page's head (generation and fetch time) comes from the stored page's first line: whether
  the page is fresh is known without parsing it.
- Few parsed states are kept (a budget of file entries): a file's entry is read from one line
  of the stored page instead, and questions about local files take the small local record.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from pipdepot.core.project import ProjectState, entry_in_page, fetched_at_of, local_path_of
from pipdepot.storage.store import STATE_DIR, StoreKey

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from typing import IO

    from pipdepot.core.names import NormalizedName
    from pipdepot.core.project import FileEntry, LocalFile
    from pipdepot.server.metrics import Metrics
    from pipdepot.server.records import Records
    from pipdepot.storage.store import Store

__all__ = ["ProjectStates"]

logger = logging.getLogger(__name__)

_STATES = f"{STATE_DIR}/projects"
#: Files of parsed project states kept in memory (about 1 KiB each). Warm pages, cached files and
#: uncached files' entries need no parsed state, so few are kept: they cost RSS, not time.
_STATE_FILES = 3_000
#: Bytes read, in turn, to find a stored page's first line (its head: a few KiB, more with thousands
#: of versions); a longer one is parsed with the page.
_PAGE_HEAD_READS = (16 * 1024, 256 * 1024)


def __dir__() -> list[str]:
    return __all__


class ProjectStates:
    """Each project's stored page and record, read from the store and kept in memory a while."""

    def __init__(self, store: Store, records: Records, metrics: Metrics) -> None:
        self.store = store
        self.records = records
        self.metrics = metrics
        self._states: OrderedDict[NormalizedName, ProjectState] = OrderedDict()
        #: Generation and fetch time of every project seen, to answer a fresh rendered page without its state.
        self._heads: dict[NormalizedName, tuple[int, float]] = {}
        self._loading = asyncio.Lock()

    def held(self, name: NormalizedName) -> ProjectState | None:
        """The parsed state of ``name`` if memory holds it (nothing read)."""
        return self._states.get(name)

    def known_head(self, name: NormalizedName) -> tuple[int, float] | None:
        """The generation and fetch time of ``name`` if already known (nothing read)."""
        return self._heads.get(name)

    def note_head(self, name: NormalizedName, generation: int, fetched_at: float) -> None:
        """Take ``name``'s head as known: upstream's page, unchanged, was fetched at ``fetched_at``."""
        self._heads[name] = (generation, fetched_at)

    async def head(self, name: NormalizedName) -> tuple[int, float] | None:
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

    @contextlib.asynccontextmanager
    async def stored_page(self, name: NormalizedName) -> AsyncIterator[IO[bytes] | None]:
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
            async with self.stored_page(name) as page:
                entry = await asyncio.to_thread(entry_in_page, page, filename) if page is not None else None
        except ValueError:  # a page stored before entries had a line each: parsed whole
            state = await self.load(name)
            return state.file_by_path(path) if state is not None else None
        if entry is None or local_path_of(entry["url"], entry["filename"]) != path:
            return None
        return entry

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
                self.remember(state)
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

    def remember(self, state: ProjectState) -> None:
        """Keep ``state`` parsed in memory, the least recently used going past the budget."""
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
    ) -> int | None:
        """Keep the parsed page in memory in step with a file just recorded (``record``: the commit).

        Returns the generation the parsed page had if it was changed, else ``None``.
        """
        filename = entry["filename"]
        full = self._states.get(name)
        old = None
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
        head = self._heads.get(name)
        if head is not None:
            self._heads[name] = (record.generation, head[1])
        return old
