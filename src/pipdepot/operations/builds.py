"""The build environment of each sdist (and local source tree), resolved on its own, per target.

pip builds every sdist in its own isolated environment: two sdists may pin
different versions of the same build tool (gssapi and krb5 pin two Cython
releases), so resolving all build requirements as one set fails where pip
succeeds. ``sync`` and ``check`` resolve each one alone, for each target, and
walk on into the build requirements that are themselves sdists; a source seen
once per target is not walked again (a cycle ends there), and the same
requirements on the same target are resolved once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipdepot.core.distribution import InvalidDistribution
from pipdepot.fill.buildsystem import (
    BuildSystem,
    InvalidBuildSystem,
    build_requirements,
    project_build_system,
)
from pipdepot.fill.requirements import RequirementSet

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from pipdepot.core.targets import Target
    from pipdepot.fill.lockfiles import Pin

    #: Resolves a set for a target: its pins, or ``None`` when it does not resolve (already reported).
    Resolve = Callable[[RequirementSet, Target], Awaitable[list[Pin] | None]]

__all__ = ["BuildEnvironments", "Buildable"]


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class Buildable:
    """Something pip builds on the target: an sdist file, or a local project directory."""

    label: str
    path: Path
    local: bool = False

    def build_system(self) -> BuildSystem:
        """Its build system, read from the sdist or the directory.

        :raises InvalidDistribution: unreadable.
        """
        if not self.local:
            return build_requirements(self.path)
        try:
            return project_build_system(self.path)
        except InvalidBuildSystem as exc:
            raise InvalidDistribution(str(exc)) from None


class BuildEnvironments:
    """Resolves build environments for one sync or check, each source once per target."""

    def __init__(self, resolve: Resolve, notes: list[str]) -> None:
        self._resolve = resolve
        self._notes = notes
        self._seen: set[tuple[str, str]] = set()
        self._resolved: dict[tuple[tuple[str, ...], str], list[Pin] | None] = {}
        #: Build environments resolved (distinct requirement sets per target), for the summary.
        self.resolutions = 0

    async def pins(self, source: Buildable, target: Target) -> list[Pin] | None:
        """What building ``source`` on ``target`` installs; ``None`` when already walked, or it fails."""
        key = (source.label, str(target))
        if key in self._seen:
            return None
        self._seen.add(key)
        try:
            system = source.build_system()
        except InvalidDistribution as exc:
            self._notes.append(str(exc))
            return None
        pins = await self._environment(system.requires, source.label, target)
        extra = system.dynamic(pins or [])
        if extra and pins is not None:
            pins = await self._environment((*system.requires, *extra), source.label, target)
        return pins

    async def _environment(self, requires: tuple[str, ...], label: str, target: Target) -> list[Pin] | None:
        if not requires:
            return []
        key = (tuple(sorted(requires)), str(target))
        if key not in self._resolved:
            self.resolutions += 1
            wanted = RequirementSet(requirements=list(requires), label=f"build requirements of {label}")
            self._resolved[key] = await self._resolve(wanted, target)
        return self._resolved[key]
