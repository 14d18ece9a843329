"""``pipdepot sync``: put into the mirror every file requirements need, for every target.

For each target, uv resolves the requirements against the mirror itself, served
on loopback and online, so the pages and PEP 658 metadata it reads are cached on
the way; lock files give their pins directly. For each pin, the file the target
installs (best wheel, else sdist) is fetched through ``Mirror.fetch``, the one
path by which files enter the store. An sdist needs its build backend offline
too, so its ``build-system.requires`` are resolved and fetched the same way.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pipdepot.core.distribution import InvalidDistribution, build_requirements
from pipdepot.core.locks import LockError, Pin, is_lock_file, read_lock
from pipdepot.core.requirements import RequirementsError, RequirementSet, read_requirements
from pipdepot.core.resolver import ResolutionError, resolve
from pipdepot.core.selection import choose_file
from pipdepot.core.store import IntegrityError
from pipdepot.errors import MirrorError, UpstreamError
from pipdepot.operations.session import local_index, open_mirror

if TYPE_CHECKING:
    from pipdepot.core.locks import LockFile
    from pipdepot.core.mirror import Mirror
    from pipdepot.core.names import NormalizedName
    from pipdepot.core.project import FileEntry
    from pipdepot.core.targets import Target

__all__ = ["Inputs", "SyncOptions", "SyncProgress", "SyncReport", "SyncStopped", "read_inputs", "sync"]

#: Downloads at once: enough to fill a link, few enough not to look like an attack on upstream.
_PARALLEL = 8
#: Rounds of build requirements (an sdist's backend that is itself only an sdist, and so on).
_BUILD_ROUNDS = 3


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the mirror must hold: requirements to resolve and lock files to take as they are."""

    requirements: RequirementSet | None
    locks: tuple[LockFile, ...]

    @property
    def notes(self) -> list[str]:
        """Lines left out of the inputs, and why."""
        found = list(self.requirements.notes) if self.requirements else []
        for lock in self.locks:
            found.extend(f"{lock.path}: {note}" for note in lock.notes)
        return found


def read_inputs(paths: list[Path]) -> Inputs:
    """Read requirements files and lock files (``pylock*.toml``, ``uv.lock``), told apart by name.

    :raises MirrorError: a file is unreadable or not what its name says.
    """
    if not paths:
        raise MirrorError("nothing to do: give requirements or lock files with -r")
    try:
        locks = tuple(read_lock(p) for p in paths if is_lock_file(p))
        plain = [p for p in paths if not is_lock_file(p)]
        requirements = read_requirements(plain) if plain else None
    except (LockError, RequirementsError) as exc:
        raise MirrorError(str(exc)) from None
    return Inputs(requirements, locks)


class SyncProgress(Protocol):
    """Told about each step and file, for a progress bar or log lines."""

    def resolving(self, target: str) -> None:
        """The requirements are being resolved for ``target``."""

    def planned(self, files: int, size: int) -> None:
        """The files needed are known (``size`` counts those whose size upstream gave)."""

    def done(self, filename: str, size: int, *, fetched: bool) -> None:
        """One file is in the mirror; ``fetched`` if it was downloaded now."""


@dataclass(slots=True)
class SyncReport:
    """What a sync did."""

    targets: list[str] = field(default_factory=list)
    projects: set[str] = field(default_factory=set)
    #: Every file the targets need, now in the mirror.
    filenames: set[str] = field(default_factory=set)
    fetched_files: int = 0
    fetched_bytes: int = 0
    present_files: int = 0
    present_bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Wanted:
    name: NormalizedName
    entry: FileEntry
    pin: Pin


class SyncStopped(Exception):  # noqa: N818 (cancelled, not failed)
    """The sync was cancelled (SIGINT, SIGTERM) after ``kept`` files were downloaded, verified, committed."""

    def __init__(self, kept: int) -> None:
        super().__init__(kept)
        self.kept = kept


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """Where to sync and from where."""

    mirror_dir: Path
    upstreams: tuple[str, ...]
    upstream_timeout: float


async def sync(
    inputs: Inputs, targets: list[Target], options: SyncOptions, progress: SyncProgress
) -> SyncReport:
    """Fill the mirror for ``inputs`` on every target.

    :raises MirrorError: a requirement does not resolve, a file is missing upstream or fails its
        hash; files fetched before that stay, each complete and listed.
    :raises SyncStopped: cancelled; the same holds.
    """
    started = time.monotonic()
    report = SyncReport(targets=[str(t) for t in targets], notes=inputs.notes)
    async with open_mirror(
        options.mirror_dir,
        purpose="pipdepot sync",
        writer=True,
        upstreams=options.upstreams,
        upstream_timeout=options.upstream_timeout,
        fresh_after=time.time(),
    ) as mirror:
        try:
            with tempfile.TemporaryDirectory(prefix="pipdepot-sync-") as scratch:
                async with local_index(mirror) as index_url:
                    run = _Run(mirror, index_url, Path(scratch), report, progress)
                    for target in targets:
                        pins = [pin for lock in inputs.locks for pin in lock.pins(target)]
                        if inputs.requirements is not None:
                            progress.resolving(str(target))
                            pins += await run.resolve(inputs.requirements, target)
                        await run.choose(pins, target)
                    await run.fetch_all()
                    await run.build_requirements(targets)
                    await run.prune()
        except asyncio.CancelledError:  # stopped: uv killed, downloads' spools and scratch removed
            raise SyncStopped(len(mirror.downloaded)) from None
    report.projects = {w.name for w in run.wanted.values()}
    report.seconds = time.monotonic() - started
    return report


class _Run:
    """One sync's work: the mirror, its loopback index, and the files wanted so far."""

    def __init__(
        self, mirror: Mirror, index_url: str, work: Path, report: SyncReport, progress: SyncProgress
    ) -> None:
        self.mirror = mirror
        self.index_url = index_url
        self.work = work
        self.report = report
        self.progress = progress
        self.wanted: dict[tuple[str, str], _Wanted] = {}

    async def resolve(self, requirements: RequirementSet, target: Target) -> list[Pin]:
        """The pins uv finds for ``target``, with the hashes the requirements allow."""
        directory = Path(tempfile.mkdtemp(dir=self.work))
        try:
            found = await resolve(
                requirements.write(directory),
                target,
                index_url=self.index_url,
                cache_dir=self.work / "uv-cache",
            )
        except ResolutionError as exc:
            raise MirrorError(f"requirements do not resolve for {target}: {exc}") from None
        return requirements.hashed(found)

    async def choose(self, pins: list[Pin], target: Target) -> None:
        """Add the file each pin installs on ``target`` to the wanted files."""
        for pin in pins:
            try:
                result = await self.mirror.project(pin.name)
            except UpstreamError as exc:
                raise MirrorError(f"{pin.name}: {exc}") from None
            if result is None:
                raise MirrorError(f"{pin.name}: no upstream has this project")
            entry = choose_file(result.state.files, pin, target)
            if entry is None:
                hashed = " whose sha256 is one of its --hash values" if pin.hashes else ""
                raise MirrorError(f"{pin.name}=={pin.version}: upstream has no file{hashed} for {target}")
            self.wanted.setdefault((pin.name, entry["filename"]), _Wanted(pin.name, entry, pin))

    async def fetch_all(self) -> None:
        """Fetch every wanted file not fetched yet, a few at a time; then report the first failure."""
        report = self.report
        todo = [w for w in self.wanted.values() if w.entry["filename"] not in report.filenames]
        self.progress.planned(len(todo), sum(int(w.entry.get("size") or 0) for w in todo))
        gate = asyncio.Semaphore(_PARALLEL)
        failures: list[str] = []

        async def one(item: _Wanted) -> None:
            async with gate:
                try:
                    size, fetched = await self.mirror.fetch(item.name, item.entry)
                    fetched = fetched or item.entry["filename"] in self.mirror.downloaded  # by the resolver
                except (UpstreamError, IntegrityError, OSError) as exc:
                    failures.append(f"{item.name}=={item.pin.version}: {item.entry['filename']}: {exc}")
                    return
            if fetched:
                report.fetched_files += 1
                report.fetched_bytes += size
            else:
                report.present_files += 1
                report.present_bytes += size
            report.filenames.add(item.entry["filename"])
            self.progress.done(item.entry["filename"], size, fetched=fetched)

        await asyncio.gather(*(one(item) for item in todo))
        if failures:
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            raise MirrorError(f"{min(failures)}{more}")

    async def prune(self) -> None:
        """Drop what the resolver made the mirror fetch (old sdists it built to read) and no target needs."""
        extra = {f: n for f, n in self.mirror.downloaded.items() if f not in self.report.filenames}
        dropped = sum([await self.mirror.forget(name, filename) for filename, name in extra.items()])
        if extra:
            self.report.notes.append(
                f"dropped {len(extra)} file{'s' if len(extra) != 1 else ''} ({dropped / 1e6:.1f} MB)"
                " the resolver fetched that no target installs"
            )

    async def build_requirements(self, targets: list[Target]) -> None:
        """Resolve and fetch what building the sdists needs, until no new sdist comes in."""
        seen: set[str] = set()
        for _ in range(_BUILD_ROUNDS):
            needed: set[str] = set()
            for item in list(self.wanted.values()):
                filename = item.entry["filename"]
                if filename.endswith(".whl") or filename in seen:
                    continue
                seen.add(filename)
                hit = await self.mirror.local_file(item.name, item.entry)
                if hit is None:
                    continue
                try:
                    needed.update(build_requirements(hit.path))
                except InvalidDistribution as exc:
                    self.report.notes.append(str(exc))
            if not needed:
                return
            requirements = RequirementSet(requirements=sorted(needed))
            for target in targets:
                await self.choose(await self.resolve(requirements, target), target)
            self.report.notes.append(f"build requirements of sdists: {', '.join(sorted(needed))}")
            await self.fetch_all()
