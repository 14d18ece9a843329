"""The static PEP 503 tree: ``<project>/index.html`` from each committed record, and the root index.

Both are derived from what is committed, never kept up to date by a read-modify-write of one
shared object, so a write costs the same in a mirror of a hundred projects as in one of a
hundred thousand:

- A project's page is rendered from its record and written; then the record is read again,
  and while it is newer than what was written, the page is written again from it. Of two writers
  racing, the one that writes last has read the newest record, so the page converges on it.
- The root index lists the project directories present. It changes only when a project
  enters or leaves the tree; it is then rewritten once for a burst of such changes (after a
  short delay), by listing the directories, writing, and listing again until the two agree.
  Before a project enters or leaves, a small marker says so (``.pipdepot/root-pending/<name>``);
  a rewrite removes the markers it has covered, and a writer that starts finds any a killed
  writer left, so the root index is never left behind for good.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from pipdepot.core.project import PROVENANCE_SUFFIX
from pipdepot.server.pages import page_files, render_root_html, render_tree_html
from pipdepot.storage.store import STATE_DIR, StoreKey

if TYPE_CHECKING:
    from pipdepot.core.names import NormalizedName
    from pipdepot.server.metrics import Metrics
    from pipdepot.server.records import Records
    from pipdepot.storage.store import Store

__all__ = ["Tree"]

logger = logging.getLogger(__name__)

ROOT_INDEX = StoreKey("index.html")
_PENDING = f"{STATE_DIR}/root-pending/"
#: What is kept beside a file, not counted as one: its PEP 658 metadata and PEP 740 provenance.
_SIBLINGS = (".metadata", PROVENANCE_SUFFIX)
#: Top-level directories that are not projects.
_NOT_PROJECTS = frozenset({"packages"})
#: Rounds of write-and-check before a writer leaves convergence to the writers still changing it.
_ROUNDS = 20
#: The file count in the metrics is taken again at most this often (it walks ``packages/``).
_CENSUS_AGE = 60.0


def __dir__() -> list[str]:
    return __all__


class Tree:
    """Writes the static tree; knows the projects in it (for the root page and ``ls``)."""

    def __init__(self, store: Store, records: Records, metrics: Metrics, *, delay: float = 0.3) -> None:
        self.store = store
        self.records = records
        self.metrics = metrics
        self.delay = delay
        #: The projects in the tree, sorted: listed, then kept up to date by this process's own writes.
        self._projects: list[str] = []
        self._listed_at = -1.0
        self._root_task: asyncio.Task[None] | None = None
        self._root_dirty = False
        #: Set by :meth:`flush`: a pending rewrite does not wait out its delay.
        self._hurry = asyncio.Event()
        #: How long the last root rewrite took: the next waits at least as long, so a long burst
        #: of new projects in a large mirror spends at most half its time rewriting the root.
        self._spent = 0.0
        self._census_at = -1.0
        self._census_lock = asyncio.Lock()

    async def write_project(self, name: NormalizedName) -> None:
        """Bring ``name``'s page in line with its committed record (its last file gone: the page goes)."""
        written: object = None
        for _ in range(_ROUNDS):
            record = await self.records.get(name, recheck=True)
            local = record is not None and bool(record.local)
            marker = (record.generation, tuple(sorted(record.local))) if record is not None and local else ()
            if marker == written:
                return
            key = StoreKey(f"{name}/index.html")
            enters_or_leaves = local != (await self.store.stat(key) is not None)
            if enters_or_leaves:
                await self.store.put(StoreKey(f"{_PENDING}{name}"), b"")
            if record is not None and local:
                await self.store.put(key, render_tree_html(record, page_files(record, local_only=True)))
            else:
                await self.store.delete(key)
            written = marker
            if enters_or_leaves:
                self._note(name, present=local)
                self.schedule_root()

    def _note(self, name: str, *, present: bool) -> None:
        """Keep the sorted project list in step with one project entering or leaving (no re-sort)."""
        where = bisect.bisect_left(self._projects, name)
        listed = where < len(self._projects) and self._projects[where] == name
        if present and not listed:
            self._projects.insert(where, name)
        elif not present and listed:
            del self._projects[where]

    # -- the root --------------------------------------------------------------

    async def projects(self, *, max_age: float = 1.0) -> tuple[str, ...]:
        """The projects in the tree (a directory listing, at most ``max_age`` seconds old)."""
        if time.monotonic() - self._listed_at >= max_age:
            self._projects = list(await self._list())
        self.metrics.cached_projects = len(self._projects)
        return tuple(self._projects)

    async def _list(self) -> tuple[str, ...]:
        names = tuple(n for n in await self.store.children("") if n not in _NOT_PROJECTS)
        self._listed_at = time.monotonic()
        return names

    def schedule_root(self) -> None:
        """Rewrite the root index soon, once for a burst of projects entering or leaving."""
        self._root_dirty = True
        if self._root_task is None or self._root_task.done():
            self._root_task = asyncio.create_task(self._rewrite_root_soon())

    async def _rewrite_root_soon(self) -> None:
        while self._root_dirty:
            self._root_dirty = False
            if not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), max(self.delay, self._spent))
            started = time.monotonic()
            try:
                await self.rewrite_root()
            except OSError as exc:
                logger.warning("root index not rewritten: %s", exc)
            self._spent = time.monotonic() - started

    async def resume(self) -> None:
        """Rewrite the root index soon if a writer changed the projects and died before it did."""
        async for _ in self.store.list(_PENDING):
            self.schedule_root()
            return

    async def rewrite_root(self) -> None:
        """List the projects, write the root index, and again until the listing no longer changes."""
        covered = [key async for key in self.store.list(_PENDING)]
        written = None
        for _ in range(_ROUNDS):
            names = await self._list()
            if names == written:
                break
            await self.store.put(ROOT_INDEX, await asyncio.to_thread(render_root_html, names))
            written = names
        self._projects = list(names)
        self.metrics.cached_projects = len(names)
        for key in covered:  # listed before the projects were: their changes are in what was written
            await self.store.delete(key)

    async def flush(self) -> None:
        """Finish a pending root rewrite (before the process ends)."""
        task = self._root_task
        if task is not None and not task.done():
            self._hurry.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- counts ------------------------------------------------------------------

    async def census(self, *, max_age: float = _CENSUS_AGE) -> None:
        """Count the projects and files for the metrics, unless counted in the last ``max_age`` seconds."""
        async with self._census_lock:
            if time.monotonic() - self._census_at < max_age:
                return
            await self.projects(max_age=0)
            self.metrics.cached_files = await self.store.count("packages/", excluding=_SIBLINGS)
            self._census_at = time.monotonic()

    def counted(self, files: int) -> None:
        """The process added (or, negative, removed) ``files``: the count follows until the next census."""
        self.metrics.cached_files = max(0, self.metrics.cached_files + files)
