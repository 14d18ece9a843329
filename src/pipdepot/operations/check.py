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

import asyncio
import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipdepot.core.digests import file_sha256
from pipdepot.core.distribution import InvalidDistribution, build_requirements
from pipdepot.core.requirements import RequirementSet
from pipdepot.core.resolver import ResolutionError, resolve
from pipdepot.core.selection import choose_file
from pipdepot.operations.session import local_index, open_mirror

if TYPE_CHECKING:
    from collections.abc import Callable

    from pipdepot.core.locks import Pin
    from pipdepot.core.mirror import Mirror
    from pipdepot.core.project import FileEntry, ProjectState
    from pipdepot.core.targets import Target
    from pipdepot.operations.sync import Inputs

__all__ = ["CheckReport", "Missing", "check"]

#: Rounds of build requirements, as in ``sync``.
_BUILD_ROUNDS = 3


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

    targets: dict[str, int] = field(default_factory=dict)
    #: The files the targets would install, all present and intact.
    filenames: set[str] = field(default_factory=set)
    missing: list[Missing] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every target installs from the mirror alone."""
        return not self.missing


async def check(inputs: Inputs, targets: list[Target], *, mirror_dir: Path) -> CheckReport:
    """Check ``inputs`` against the mirror for every target; never contacts upstream.

    :raises ConfigError: the mirror directory does not exist.
    """
    report = CheckReport(notes=inputs.notes)
    views = _Views(mirror_dir)
    async with (
        open_mirror(mirror_dir, purpose="pipdepot check", writer=False, view=views.local) as mirror,
        open_mirror(mirror_dir, purpose="pipdepot check", writer=False, view=views.known) as catalog,
        local_index(mirror) as index_url,
        local_index(catalog) as catalog_url,
    ):
        with tempfile.TemporaryDirectory(prefix="pipdepot-check-") as scratch:
            work = Path(scratch)
            for target in targets:
                pins = [pin for lock in inputs.locks for pin in lock.pins(target)]
                if inputs.requirements is not None:
                    urls = (index_url, catalog_url)
                    resolved = await _resolve(inputs.requirements, target, urls, work, report)
                    if resolved is None:
                        continue
                    pins += resolved
                sdists = await _cover(mirror, views, pins, target, report)
                for _ in range(_BUILD_ROUNDS):  # an offline build needs each sdist's backend too
                    needed = _build_requirements(sdists, report)
                    if not needed:
                        break
                    build = RequirementSet(requirements=needed, label="build requirements of sdists")
                    resolved = await _resolve(build, target, (index_url, catalog_url), work, report)
                    sdists = await _cover(mirror, views, resolved or [], target, report)
    report.missing.sort()
    return report


def _build_requirements(sdists: list[Path], report: CheckReport) -> list[str]:
    needed: set[str] = set()
    for path in sdists:
        try:
            needed.update(build_requirements(path))
        except InvalidDistribution as exc:
            report.notes.append(str(exc))
    return sorted(needed)


async def _resolve(
    requirements: RequirementSet, target: Target, urls: tuple[str, str], work: Path, report: CheckReport
) -> list[Pin] | None:
    """Pins from the local files; else from all the mirror knows (then some are missing); else None."""
    directory = Path(tempfile.mkdtemp(dir=work))
    path = requirements.write(directory)
    try:
        found = await resolve(path, target, index_url=urls[0], cache_dir=work / "uv-cache")
    except ResolutionError as local_failure:
        try:
            found = await resolve(path, target, index_url=urls[1], cache_dir=work / "uv-cache-known")
        except ResolutionError:
            report.missing.append(Missing(requirements.label, "", str(target), str(local_failure)))
            return None
    return requirements.hashed(found)


async def _cover(
    mirror: Mirror, views: _Views, pins: list[Pin], target: Target, report: CheckReport
) -> list[Path]:
    """Each pin needs a file for ``target`` on disk, with the bytes its sha256 promises.

    :returns: the sdists among those files, whose build requirements come next.
    """
    sdists = []
    for pin in pins:
        state = await mirror.state(pin.name)
        if state is None:
            report.missing.append(Missing(pin.name, pin.version, str(target), "project not in the mirror"))
            continue
        present = views.present(state)
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
        report.targets[str(target)] = report.targets.get(str(target), 0) + 1
        report.filenames.add(entry["filename"])
        if not entry["filename"].endswith(".whl"):
            sdists.append(views.path(state, entry["filename"]))
    return sdists


class _Views:
    """What the mirror really holds: recorded files checked on disk, once each."""

    def __init__(self, mirror_dir: Path) -> None:
        self.root = mirror_dir
        self._present: dict[tuple[str, int], frozenset[str]] = {}
        self._intact: dict[str, bool] = {}

    def path(self, state: ProjectState, filename: str, suffix: str = "") -> Path:
        """Where a file of ``state`` is on disk."""
        return self.root / (state.path_of(filename).removeprefix("/") + suffix)

    def present(self, state: ProjectState) -> frozenset[str]:
        """Local files of ``state`` on disk with their recorded size."""
        key = (state.name, state.generation)
        found = self._present.get(key)
        if found is None:
            found = frozenset(
                name for name, local in state.local.items() if _size(self.path(state, name)) == local.size
            )
            self._present[key] = found
        return found

    def local(self, state: ProjectState) -> tuple[ProjectState, bool]:
        """The state with only the files present: what an offline client can install."""
        present = self.present(state)
        return _narrowed(state, [e for e in state.files if e["filename"] in present], present), True

    def known(self, state: ProjectState) -> tuple[ProjectState, bool]:
        """Present files and upstream files whose metadata is kept: what resolves with no network."""
        present = self.present(state)
        files = [
            e
            for e in state.files
            if e["filename"] in present or self.path(state, e["filename"], ".metadata").is_file()
        ]
        return _narrowed(state, files, present), False

    async def intact(self, state: ProjectState, entry: FileEntry) -> bool:
        """Whether the file's bytes hash to the sha256 recorded when it was stored."""
        filename = entry["filename"]
        if filename not in self._intact:
            path = self.path(state, filename)
            expected = state.local[filename].sha256
            self._intact[filename] = await asyncio.to_thread(_sha256, path) == expected
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


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _sha256(path: Path) -> str | None:
    try:
        return file_sha256(path)[0]
    except OSError:
        return None
