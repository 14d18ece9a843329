"""``pipdepot check``: prove, with no network, that requirements install from the mirror alone.

Per target, uv resolves the requirements against the mirror served offline on
loopback, listing only files that are really on disk with the right size. Each
pinned version must then have a file the target installs, whose bytes hash to
the recorded sha256. When the resolution itself fails, it is run again against
everything the mirror knows (local files, and upstream files whose metadata it
kept), which names the versions an online build would take, so the report says
exactly which (project, version, target) is missing instead of uv's puzzle.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pipdepot.fill.resolver import ResolutionError, resolve
from pipdepot.fill.selection import choose_file, files_of_version
from pipdepot.operations.builds import Buildable, BuildEnvironments
from pipdepot.operations.pins import read_unresolved, resolve_each_pin
from pipdepot.operations.session import local_index, open_mirror
from pipdepot.storage.digests import stored_sha256
from pipdepot.storage.store import StoreKey

if TYPE_CHECKING:
    from collections.abc import Callable

    from pipdepot.core.project import FileEntry, ProjectState
    from pipdepot.core.targets import Target
    from pipdepot.fill.lockfiles import Pin
    from pipdepot.fill.requirements import RequirementSet
    from pipdepot.operations.sync import Inputs
    from pipdepot.server.mirror import Mirror
    from pipdepot.storage.locate import MirrorLocation
    from pipdepot.storage.store import Store

__all__ = ["CheckReport", "Missing", "check"]


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True, order=True)
class Missing:
    """Something a target needs that the mirror lacks."""

    project: str
    version: str
    target: str
    reason: str

    def __str__(self) -> str:
        """``six 1.16.0 for cp311-host: no file ...``, one line."""
        version = f" {self.version}" if self.version else ""
        return f"{self.project}{version} for {self.target}: {self.reason}"


@dataclass(slots=True)
class CheckReport:
    """What a check found: per target, the files it would install, or what is missing."""

    #: Per target, the files it would install (distinct: pins and build environments share files).
    targets: dict[str, set[str]] = field(default_factory=dict)
    #: The files the targets would install, all present and intact.
    filenames: set[str] = field(default_factory=set)
    missing: list[Missing] = field(default_factory=list)
    #: Requirements whose sdist is in the mirror with its build environment, and fails to build.
    unbuildable: list[Missing] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: ``--each-pin``: pins no install can satisfy (their dependencies conflict, or their sdist
    #: does not build), with the reason.
    unresolved: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every target installs from the mirror alone."""
        return not self.missing and not self.unbuildable


async def check(inputs: Inputs, targets: list[Target], *, mirror_dir: MirrorLocation) -> CheckReport:
    """Check ``inputs`` against the mirror for every target; never contacts upstream.

    :raises ConfigError: the mirror directory does not exist.
    """
    report = CheckReport(notes=inputs.notes)
    views = _Views()
    async with (
        open_mirror(mirror_dir, purpose="pipdepot check", writer=False, view=views.local) as mirror,
        open_mirror(mirror_dir, purpose="pipdepot check", writer=False, view=views.known) as catalog,
        local_index(mirror) as index_url,
        local_index(catalog) as catalog_url,
    ):
        views.mirror = mirror
        with tempfile.TemporaryDirectory(prefix="pipdepot-check-") as scratch:
            run = _Check(mirror, views, (index_url, catalog_url), Path(scratch), report)
            builds = BuildEnvironments(run.resolve, report.notes)
            for target in targets:
                pins = [pin for lock in inputs.locks for pin in lock.pins(target)]
                if inputs.resolved is not None:
                    pins += await run.resolve(inputs.resolved, target) or []
                if inputs.each_pin and inputs.requirements is not None:
                    pins += await run.each_pin(inputs.requirements, target)
                sources = [
                    Buildable(str(p.path), p.path, local=True)
                    for p in (inputs.requirements.local if inputs.requirements else ())
                ]
                sources += await _cover(mirror, views, pins, target, report)
                while sources:  # an offline build needs each sdist's own build environment too
                    level = []
                    for source in sources:
                        level += await _cover(
                            mirror, views, await builds.pins(source, target) or [], target, report
                        )
                    sources = level
    report.missing = sorted(set(report.missing))
    report.unbuildable = sorted(set(report.unbuildable))
    return report


class _Check:
    """One check's resolutions: against the files present, else against all the mirror knows."""

    def __init__(
        self, mirror: Mirror, views: _Views, urls: tuple[str, str], work: Path, report: CheckReport
    ) -> None:
        self.mirror = mirror
        self.views = views
        self.urls = urls
        self.work = work
        self.report = report
        #: What the last ``sync --each-pin`` found unresolvable, read when first needed.
        self.unresolved: dict[tuple[str, str], str] | None = None

    async def _uv(self, requirements: RequirementSet, target: Target, *, known: bool) -> list[Pin]:
        directory = Path(tempfile.mkdtemp(dir=self.work))
        found = await resolve(
            requirements.write(directory),
            target,
            index_url=self.urls[known],
            cache_dir=self.work / ("uv-cache-known" if known else "uv-cache"),
        )
        return requirements.hashed(found)

    async def resolve(self, requirements: RequirementSet, target: Target) -> list[Pin] | None:
        """Pins from the files present; else from all the mirror knows (then some are missing).

        ``None``: not even that resolves; what is missing is reported, requirement by requirement.
        """
        try:
            return await self._uv(requirements, target, known=False)
        except ResolutionError as local_failure:
            if local_failure.build_failed:
                await self._explain(requirements, target, local_failure)
                return None
            try:
                pins = await self._uv(requirements, target, known=True)
            except ResolutionError:
                await self._explain(requirements, target, local_failure)
                return None
            if not await self._lacks(pins, target):  # all there, yet it failed: never "ok"
                self._missing(requirements.label, "", target, str(local_failure))
                return None
            return pins

    async def _lacks(self, pins: list[Pin], target: Target) -> bool:
        """Whether the mirror lacks a file for some of ``pins`` (reported later, by the caller)."""
        probe = CheckReport()
        await _cover(self.mirror, self.views, pins, target, probe)
        return bool(probe.missing)

    async def _explain(self, requirements: RequirementSet, target: Target, failure: ResolutionError) -> None:
        """Name every requirement that does not resolve offline, not just the first uv meets."""
        found = 0
        if len(requirements.requirements) > 1:
            for line in requirements.requirements:
                name, specifier = _name_of(line)
                if name is None:
                    continue
                alone = requirements.alone([line], line)
                if not await self._has(name):
                    self._missing(name, specifier, target, "project not in the mirror")
                    found += 1
                    continue
                try:
                    await self._uv(alone, target, known=False)
                    continue
                except ResolutionError as exc:
                    local_failure = exc
                if local_failure.build_failed:
                    self._unbuildable(local_failure, target, (name, specifier))
                    found += 1
                    continue
                try:  # the versions an online install takes are known: name each file missing
                    before = len(self.report.missing)
                    pins = await self._uv(alone, target, known=True)
                    await _cover(self.mirror, self.views, pins, target, self.report)
                    found += len(self.report.missing) - before
                except ResolutionError:
                    self._missing(name, specifier, target, str(local_failure))
                    found += 1
        if not found and failure.build_failed:
            self._unbuildable(failure, target, (requirements.label, ""))
        elif not found:
            self._missing(requirements.label, "", target, str(failure))

    async def _has(self, name: str) -> bool:
        state = await self.mirror.state(canonicalize_name(name))
        return state is not None and bool(await self.views.present(state))

    def _missing(self, project: str, version: str, target: Target, reason: str) -> None:
        self.report.missing.append(Missing(project, version, str(target), reason))

    def _unbuildable(self, failure: ResolutionError, target: Target, fallback: tuple[str, str]) -> None:
        project, version = failure.failed_build or fallback
        self.report.unbuildable.append(Missing(project, version, str(target), str(failure)))

    async def each_pin(self, requirements: RequirementSet, target: Target) -> list[Pin]:
        """Each exact pin of the constraints on its own, as ``sync --each-pin`` mirrored it.

        A pin that does not resolve even from what the mirror knows, while its project is there,
        is one no install can satisfy (its dependencies conflict with the other pins), and so is
        one whose sdist is there and fails in its own build backend (uv resolved it online from
        another Python's wheel): reported as unresolvable, not as missing.
        """

        async def local(subset: RequirementSet) -> list[Pin]:
            return await self._uv(subset, target, known=False)

        async def failed(line: str, local_failure: ResolutionError) -> list[Pin]:
            return await self._pin_failed(requirements, line, target, local_failure)

        if self.unresolved is None:
            self.unresolved = await read_unresolved(self.mirror.store)
        pins = await resolve_each_pin(requirements, local, failed)
        self.report.unresolved.sort()
        return pins

    async def _pin_failed(
        self, requirements: RequirementSet, line: str, target: Target, local_failure: ResolutionError
    ) -> list[Pin]:
        """Why one pin does not resolve from the files present; its pins if the mirror lacks some."""
        name, specifier = _name_of(line)
        synced = (self.unresolved or {}).get((line, str(target)))
        if synced is not None:  # sync --each-pin found it does not resolve online
            reason = f"does not resolve (as the last sync --each-pin found, online): {synced}"
            self.report.unresolved.append((line, str(target), reason))
            return []
        if local_failure.build_failed:
            reason = f"does not build (its sdist, in the build environment the mirror holds): {local_failure}"
            self.report.unresolved.append((line, str(target), reason))
            return []
        try:
            pins = await self._uv(requirements.alone([line], line), target, known=True)
        except ResolutionError as known_failure:
            if name is None:
                pass
            elif known_failure.conflict and await self._knows(name, specifier):
                reason = f"does not resolve (even from all the mirror knows): {known_failure}"
                self.report.unresolved.append((line, str(target), reason))
            elif await self._has(name):
                self._missing(name, specifier, target, str(local_failure))
            elif await self.mirror.state(canonicalize_name(name)) is None:
                self._missing(name, specifier, target, "project not in the mirror")
            else:  # sync --each-pin lists it if it does not resolve at all
                self._missing(name, specifier, target, "no file of this project in the mirror")
            return []
        if not await self._lacks(pins, target):  # all there, yet it failed: never "ok"
            self._missing(name or line, specifier, target, str(local_failure))
            return []
        return pins

    async def _knows(self, name: str, version: str) -> bool:
        """Whether the mirror knows ``version`` of ``name`` (its file, or its metadata kept)."""
        state = await self.mirror.state(canonicalize_name(name))
        return state is not None and bool(files_of_version((await self.views.known(state))[0].files, version))


def _name_of(line: str) -> tuple[str | None, str]:
    """A requirement line's project and version specifier; ``None`` for a path."""
    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        return None, ""
    specifiers = list(requirement.specifier)
    if len(specifiers) == 1 and specifiers[0].operator in {"==", "==="}:
        return requirement.name, specifiers[0].version
    return requirement.name, str(requirement.specifier)


async def _cover(
    mirror: Mirror, views: _Views, pins: list[Pin], target: Target, report: CheckReport
) -> list[Buildable]:
    """Each pin needs a file for ``target`` on disk, with the bytes its sha256 promises.

    :returns: the sdists among those files, whose build environments come next.
    """
    sdists: list[Buildable] = []
    for pin in pins:
        state = await mirror.state(pin.name)
        if state is None:
            report.missing.append(Missing(pin.name, pin.version, str(target), "project not in the mirror"))
            continue
        present = await views.present(state)
        entry = choose_file(state.files, pin, target, usable=_among(present))
        if entry is None:
            reason = "no file for this target in the mirror"
            recorded = choose_file(state.files, pin, target, usable=_among(frozenset(state.local)))
            if recorded is not None:
                reason = f"{recorded['filename']} is recorded but missing or damaged on disk"
            elif pin.hashes and choose_file(
                state.files, dataclasses.replace(pin, hashes=frozenset()), target
            ):
                reason = "no file matching its --hash values in the mirror"
            report.missing.append(Missing(pin.name, pin.version, str(target), reason))
            continue
        if not await views.intact(state, entry):
            report.missing.append(
                Missing(pin.name, pin.version, str(target), f"{entry['filename']} is damaged: sha256 differs")
            )
            continue
        report.targets.setdefault(str(target), set()).add(entry["filename"])
        report.filenames.add(entry["filename"])
        path = await mirror.local_copy(views.key(state, entry["filename"]))
        if not entry["filename"].endswith(".whl") and path is not None:
            sdists.append(Buildable(entry["filename"], path))
    return sdists


class _Views:
    """What the mirror really holds: recorded files checked in the store, once each."""

    def __init__(self) -> None:
        #: The mirror whose store is looked at (set once it is open; its views are asked only later).
        self.mirror: Mirror | None = None
        self._present: dict[tuple[str, int], frozenset[str]] = {}
        self._intact: dict[str, bool] = {}

    @property
    def store(self) -> Store:
        assert self.mirror is not None  # noqa: S101 (set before any page is asked for)
        return self.mirror.store

    def key(self, state: ProjectState, filename: str, suffix: str = "") -> StoreKey:
        """Where a file of ``state`` is in the store."""
        return StoreKey(state.path_of(filename).removeprefix("/") + suffix)

    async def present(self, state: ProjectState) -> frozenset[str]:
        """Local files of ``state`` in the store with their recorded size."""
        key = (state.name, state.generation)
        found = self._present.get(key)
        if found is None:
            sizes = [await self.store.stat(self.key(state, name)) for name in state.local]
            found = frozenset(
                name
                for (name, local), stored in zip(state.local.items(), sizes, strict=True)
                if stored is not None and stored.size == local.size
            )
            self._present[key] = found
        return found

    async def local(self, state: ProjectState) -> tuple[ProjectState, bool]:
        """The state with only the files present: what an offline client can install."""
        present = await self.present(state)
        return _narrowed(state, [e for e in state.files if e["filename"] in present], present), True

    async def known(self, state: ProjectState) -> tuple[ProjectState, bool]:
        """Present files and upstream files whose metadata is kept: what resolves with no network."""
        present = await self.present(state)
        files = [
            e
            for e in state.files
            if e["filename"] in present
            or await self.store.stat(self.key(state, e["filename"], ".metadata")) is not None
        ]
        return _narrowed(state, files, present), False

    async def intact(self, state: ProjectState, entry: FileEntry) -> bool:
        """Whether the file's bytes hash to the sha256 recorded when it was stored."""
        filename = entry["filename"]
        if filename not in self._intact:
            expected = state.local[filename].sha256
            self._intact[filename] = await stored_sha256(self.store, self.key(state, filename)) == expected
        return self._intact[filename]


def _among(filenames: frozenset[str]) -> Callable[[FileEntry], bool]:
    return lambda entry: entry["filename"] in filenames


def _narrowed(state: ProjectState, files: list[FileEntry], present: frozenset[str]) -> ProjectState:
    return dataclasses.replace(
        state,
        files=files,
        local={k: v for k, v in state.local.items() if k in present},
        _paths=None,
        _by_path=None,
        _versions=None,
    )
