"""Each project's local record: which of its files are in the store, read through a small cache.

The record (``.pipdepot/local/<name>.json``) is the one thing writers share that is read,
changed and written back, so it is changed only by compare-and-swap on the version it was
read at: any number of processes add, import and remove files of one project at once, and
none loses another's change, with no lock held across a call (a writer killed mid-change
leaves the record as it was). Records read here are checked again after ``max_age``
seconds, so a file another process added is known within a second.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from pipdepot.core.project import ProjectState
from pipdepot.storage.store import STATE_DIR, AlreadyExists, StoreKey, VersionMismatch

if TYPE_CHECKING:
    from collections.abc import Callable

    from pipdepot.core.names import NormalizedName
    from pipdepot.storage.store import Store

__all__ = ["RECORDS", "Records", "record_key"]

logger = logging.getLogger(__name__)

#: Where the records live.
RECORDS = f"{STATE_DIR}/local"
#: Records kept in memory (a few entries each).
_KEPT = 4096
#: Attempts at one change before giving up: each lost race means another writer made progress.
_ATTEMPTS = 200


def __dir__() -> list[str]:
    return __all__


def record_key(name: NormalizedName) -> StoreKey:
    """The store key of ``name``'s record."""
    return StoreKey(f"{RECORDS}/{name}.json")


class _Kept:
    __slots__ = ("checked", "state", "version")

    def __init__(self, state: ProjectState | None, version: str | None) -> None:
        self.state = state
        self.version = version
        self.checked = time.monotonic()


class Records:
    """Local records, cached for ``max_age`` seconds, changed by compare-and-swap."""

    def __init__(self, store: Store, *, max_age: float = 1.0) -> None:
        self.store = store
        self.max_age = max_age
        self._kept: OrderedDict[NormalizedName, _Kept] = OrderedDict()
        self._locks: dict[NormalizedName, asyncio.Lock] = {}

    def lock(self, name: NormalizedName) -> asyncio.Lock:
        """The lock on ``name`` in this process: its own changes in order (others: compare-and-swap)."""
        return self._locks.setdefault(name, asyncio.Lock())

    async def get(self, name: NormalizedName, *, recheck: bool = False) -> ProjectState | None:
        """The record of ``name`` as a state listing its local files only; ``None``: no record.

        The state returned is shared: callers read it, never change it.
        """
        kept = self._kept.get(name)
        if kept is not None and not recheck and time.monotonic() - kept.checked < self.max_age:
            self._kept.move_to_end(name)
            return kept.state
        return (await self._read(name)).state

    async def changed(self, name: NormalizedName) -> bool:
        """Whether another writer changed ``name``'s record since it was last read here.

        Asks the store at most once per ``max_age``; the first question about a project is no change.
        A store that cannot answer is no change either: what memory holds is served meanwhile
        (its failure is said once per ``max_age`` for the project).
        """
        kept = self._kept.get(name)
        if kept is None:
            return False
        if time.monotonic() - kept.checked < self.max_age:
            return False
        version = kept.version
        try:
            return (await self._read(name)).version != version
        except OSError as exc:
            kept.checked = time.monotonic()
            logger.warning("record of %s not checked, serving what is known: %s", name, exc)
            return False

    async def _read(self, name: NormalizedName) -> _Kept:
        current = await self.store.read_versioned(record_key(name))
        state = _parse(name, current.data) if current is not None else None
        return self._keep(name, state, current.version if current is not None else None)

    def _keep(self, name: NormalizedName, state: ProjectState | None, version: str | None) -> _Kept:
        kept = self._kept[name] = _Kept(state, version)
        self._kept.move_to_end(name)
        while len(self._kept) > _KEPT:
            self._kept.popitem(last=False)
        return kept

    async def update(
        self,
        name: NormalizedName,
        change: Callable[[ProjectState], bool | None],
        *,
        new: Callable[[], ProjectState] | None = None,
    ) -> ProjectState | None:
        """Apply ``change`` to the current record and commit it, again from a fresh read if another won.

        ``change`` may be called several times, each time on a fresh state; it returns ``False``
        for "nothing to change" (nothing is written). The generation goes up by one on each
        commit. A project without a record starts from ``new()`` (default: an empty state).

        :returns: the committed state, or the current one when ``change`` changed nothing.
        """
        for attempt in range(_ATTEMPTS):
            current = await self.store.read_versioned(record_key(name))
            state = _parse(name, current.data) if current is not None else None
            if state is None:
                state = new() if new is not None else ProjectState(name, "", [])
            if change(state) is False:
                if current is not None:
                    self._keep(name, state, current.version)
                return state
            state.generation += 1
            data = state.local_json()
            try:
                if current is None:
                    stored = await self.store.put(record_key(name), data, create=True)
                else:
                    stored = await self.store.put(record_key(name), data, if_version=current.version)
            except (AlreadyExists, VersionMismatch):
                await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 50)))  # noqa: S311 (jitter)
                continue
            self._keep(name, state, stored.version)
            return state
        raise TimeoutError(f"the record of {name} kept changing under {_ATTEMPTS} attempts")

    def forget(self, name: NormalizedName) -> None:
        """Read ``name``'s record again at the next question."""
        self._kept.pop(name, None)


def _parse(name: NormalizedName, data: bytes) -> ProjectState | None:
    try:
        return ProjectState.from_json(None, data)
    except (ValueError, KeyError, TypeError):
        logger.warning("ignoring unreadable record of %s", name)
        return None
