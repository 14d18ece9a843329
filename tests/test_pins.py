"""resolve_each_pin's concurrency: a fatal failure stops every other resolution before it is raised."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from pipdepot.errors import MirrorError
from pipdepot.fill.requirements import RequirementSet
from pipdepot.fill.resolver import ResolutionError
from pipdepot.operations.pins import resolve_each_pin

if TYPE_CHECKING:
    from pipdepot.fill.lockfiles import Pin


def test_a_fatal_failure_stops_the_other_resolutions_before_it_is_raised() -> None:
    """With asyncio.gather, the other groups' uv ran on while sync removed their scratch directory."""
    pins = [f"p{i}===1.0" for i in range(100)]
    requirements = RequirementSet(constraints=pins)
    running: set[str] = set()
    after_failure: list[str] = []
    failed_once = asyncio.Event()

    async def resolve(subset: RequirementSet) -> list[Pin]:
        running.add(subset.label)
        try:
            if subset.requirements == ["p0===1.0"]:
                raise ResolutionError("Failed to fetch: `http://127.0.0.1:1/simple/p0/`")
            if "p0===1.0" in subset.requirements:
                raise ResolutionError("No solution found when resolving dependencies")
            await asyncio.sleep(0.2)
            if failed_once.is_set():
                after_failure.append(subset.label)
            return []
        finally:
            running.discard(subset.label)

    async def failed(line: str, exc: ResolutionError) -> list[Pin]:
        failed_once.set()
        raise MirrorError(f"{line} does not resolve: {exc}")

    still_running: set[str] = set()

    async def main() -> None:
        try:
            await resolve_each_pin(requirements, resolve, failed)
        finally:  # what runs on as the error reaches the caller, which then removes its scratch
            still_running.update(running)

    with pytest.raises(MirrorError, match=r"^p0===1.0 does not resolve: Failed to fetch"):
        asyncio.run(main())
    assert still_running == set()  # every other resolution was stopped first
    assert after_failure == []  # none finished after the failure
