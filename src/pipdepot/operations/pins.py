"""``--each-pin``: every pin of a pins file with its own dependencies, without one uv run per pin.

A fully pinned constraints file (OpenStack's upper-constraints) is not one
installable set, so its pins cannot be resolved together; one uv run per pin is
exact but costs a process each (0.3-1 s, most of it uv starting and finding an
interpreter). Pins are resolved in groups instead. A group's result is taken when
every package in it is pinned by the constraints: each pin's own resolution is
then forced to those same pinned versions, so the group's result is exactly the
union of its pins' own results. A group that fails, or that pulls in a package
the constraints do not pin (whose version could differ pin by pin), is split in
two, down to single pins, whose failure is the pin's.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pipdepot.fill.resolver import ResolutionError
from pipdepot.storage.store import STATE_DIR, StoreKey

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    from pipdepot.fill.lockfiles import Pin
    from pipdepot.fill.requirements import RequirementSet
    from pipdepot.storage.store import Store

__all__ = ["read_unresolved", "record_unresolved", "resolve_each_pin"]

#: The pins the last ``sync --each-pin`` found unresolvable online, per target: ``check`` cannot
#: tell them from pins never synced when upstream gave no metadata file to keep.
_UNRESOLVED = StoreKey(f"{STATE_DIR}/unresolved-pins.json")

#: Pins per uv run to begin with.
_GROUP = 32
#: uv runs at once (each a process; the machine's cores are the limit).
_PARALLEL = 4


def __dir__() -> list[str]:
    return __all__


async def resolve_each_pin(
    requirements: RequirementSet,
    resolve: Callable[[RequirementSet], Awaitable[list[Pin]]],
    failed: Callable[[str, ResolutionError], Awaitable[list[Pin]]],
) -> list[Pin]:
    """The union of each exact pin's own resolution, under all the constraints.

    ``resolve`` runs uv on a set (raising :class:`ResolutionError`); ``failed`` is told of a
    single pin that does not resolve and gives what to take instead (or raises).
    """
    lines = requirements.exact_constraints()
    pinned = {canonicalize_name(Requirement(line).name) for line in lines}
    gate = asyncio.Semaphore(_PARALLEL)
    found: dict[tuple[str, str, frozenset[str]], Pin] = {}

    async def walk(group: list[str]) -> None:
        label = group[0] if len(group) == 1 else f"{len(group)} pins from {group[0]}"
        async with gate:
            try:
                pins = await resolve(requirements.alone(group, label))
            except ResolutionError as exc:
                if len(group) == 1:
                    pins = await failed(group[0], exc)
                else:
                    pins = None
        if pins is not None and (len(group) == 1 or all(p.name in pinned for p in pins)):
            found.update(((p.name, p.version, p.hashes), p) for p in pins)
            return
        half = len(group) // 2
        await _all_or_none([walk(group[:half]), walk(group[half:])])

    await _all_or_none([walk(lines[i : i + _GROUP]) for i in range(0, len(lines), _GROUP)])
    return list(found.values())


async def _all_or_none(walks: list[Coroutine[Any, Any, None]]) -> None:
    """Run ``walks`` together; the first to fail stops the others (their uv killed) and is raised.

    ``asyncio.gather`` would let the others run on after a failure, their uv still writing in
    the scratch directory the caller is already removing.
    """
    try:
        async with asyncio.TaskGroup() as group:
            for walk in walks:
                group.create_task(walk)
    except BaseExceptionGroup as failure:
        raise _first_cause(failure) from None


def _first_cause(failure: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception in a (nested) group that is not a sibling's cancellation."""
    for exc in failure.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_cause(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return failure.exceptions[0]


async def record_unresolved(store: Store, targets: list[str], unresolved: list[tuple[str, str, str]]) -> None:
    """Keep what a ``sync --each-pin`` found unresolvable for ``targets`` (replacing their old list)."""
    known = await read_unresolved(store)
    kept = {k: v for k, v in known.items() if k[1] not in targets}
    kept.update({(pin, target): reason.splitlines()[0] for pin, target, reason in unresolved})
    document = [
        {"pin": pin, "target": target, "reason": reason} for (pin, target), reason in sorted(kept.items())
    ]
    await store.put(_UNRESOLVED, json.dumps(document, indent=1).encode())


async def read_unresolved(store: Store) -> dict[tuple[str, str], str]:
    """(pin, target) -> the first line of why it does not resolve, as the last sync found."""
    data = await store.read(_UNRESOLVED)
    try:
        document = json.loads(data) if data is not None else []
        return {(str(e["pin"]), str(e["target"])): str(e["reason"]) for e in document}
    except (ValueError, TypeError, KeyError):
        return {}
