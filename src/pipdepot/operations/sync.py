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

from packaging.utils import canonicalize_name

from pipdepot.core.urls import redact_url
from pipdepot.errors import MirrorError, UpstreamError
from pipdepot.fill.lockfiles import LockError, Pin, is_lock_file, read_lock
from pipdepot.fill.remote import RemoteError, connection_cause, fetch_text
from pipdepot.fill.requirements import RequirementsError, RequirementSet, read_requirements
from pipdepot.fill.resolver import ResolutionError, resolve
from pipdepot.fill.selection import choose_file
from pipdepot.operations.builds import Buildable, BuildEnvironments
from pipdepot.operations.pins import record_unresolved, resolve_each_pin
from pipdepot.operations.session import local_index, open_mirror
from pipdepot.storage.store import IntegrityError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pipdepot.core.names import NormalizedName
    from pipdepot.core.project import FileEntry
    from pipdepot.core.targets import Target
    from pipdepot.fill.lockfiles import LockFile
    from pipdepot.server.mirror import Mirror
    from pipdepot.storage.locate import MirrorLocation

__all__ = ["Inputs", "SyncOptions", "SyncProgress", "SyncReport", "SyncStopped", "read_inputs", "sync"]

#: Downloads at once: enough to fill a link, few enough not to look like an attack on upstream.
_PARALLEL = 8


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the mirror must hold: requirements to resolve and lock files to take as they are."""

    requirements: RequirementSet | None
    locks: tuple[LockFile, ...]
    #: Each pin of the constraints on its own (``--each-pin``), rather than the requirements as one set.
    each_pin: bool = False

    @property
    def notes(self) -> list[str]:
        """Lines left out of the inputs, and why."""
        found = list(self.requirements.notes) if self.requirements else []
        for lock in self.locks:
            found.extend(f"{lock.path}: {note}" for note in lock.notes)
        for project in self.requirements.local if self.requirements else ():
            found.append(
                f"{project.text} is a local project ({project.path}): not mirrored; its dependencies"
                " and build requirements are"
            )
        return found

    @property
    def resolved(self) -> RequirementSet | None:
        """The requirements resolved as one set (none with ``--each-pin`` and no -r)."""
        if self.requirements is None or not self.requirements.requirements:
            return None
        return self.requirements


def read_inputs(paths: list[Path], constraints: Sequence[str] = (), *, each_pin: bool = False) -> Inputs:
    """Read requirements, lock files (``pylock*.toml``, ``uv.lock``: told apart by name) and constraints.

    Constraints (``-c``) are a path or an http(s) URL, fetched with a deadline and a size bound.

    ``each_pin``: the constraints' pins are the input; requirements are optional.

    :raises MirrorError: a file is unreadable or not what its name says.
    """
    if not paths and not (each_pin and constraints):
        raise MirrorError("nothing to do: give requirements or lock files with -r")
    try:
        locks = tuple(read_lock(p) for p in paths if is_lock_file(p))
        plain = [p for p in paths if not is_lock_file(p)]
        requirements = None
        if plain or constraints:
            requirements = read_requirements(plain, constraints, load=_load, required=not each_pin)
    except (LockError, RequirementsError) as exc:
        raise MirrorError(str(exc)) from None
    if each_pin and (requirements is None or not requirements.exact_constraints()):
        raise MirrorError("--each-pin: the constraints (-c) pin no version (name==version lines)")
    return Inputs(requirements, locks, each_pin=each_pin)


def _load(url: str) -> str:
    try:
        return fetch_text(url)
    except RemoteError as exc:
        raise RequirementsError(f"cannot read {exc}") from None


class SyncProgress(Protocol):
    """Told about each step and file, for a progress bar or log lines."""

    def resolving(self, target: str) -> None:
        """The requirements are being resolved for ``target``."""

    def waiting(self, what: str, seconds: float, pages: int) -> None:
        """Still resolving ``what`` after ``seconds``; the mirror has fetched ``pages`` pages so far."""

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
    #: ``--each-pin``: pins that do not resolve for a target, with uv's reason (several lines).
    unresolved: list[tuple[str, str, str]] = field(default_factory=list)
    #: ``--each-pin``: pins tried (pins x targets).
    pins_tried: int = 0
    #: sdists and local projects whose build environment was resolved, per target.
    builds: int = 0


@dataclass(frozen=True, slots=True)
class _Wanted:
    name: NormalizedName
    entry: FileEntry
    pin: Pin

    @property
    def sdist(self) -> bool:
        return not self.entry["filename"].endswith(".whl")


class SyncStopped(Exception):  # noqa: N818 (cancelled, not failed)
    """The sync was cancelled (SIGINT, SIGTERM) after ``kept`` files were downloaded, verified, committed."""

    def __init__(self, kept: int) -> None:
        super().__init__(kept)
        self.kept = kept


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """Where to sync and from where."""

    mirror_dir: MirrorLocation
    upstreams: tuple[str, ...]
    upstream_timeout: float
    #: Seconds between "still resolving" reports while uv works.
    progress_every: float = 10.0


async def sync(
    inputs: Inputs, targets: list[Target], options: SyncOptions, progress: SyncProgress
) -> SyncReport:
    """Fill the mirror for ``inputs`` on every target.

    :raises MirrorError: a requirement does not resolve, a file is missing upstream or fails its
        hash; files fetched before that stay, each complete and listed. With ``--each-pin``, a pin
        that does not resolve is reported in the result instead.
    :raises SyncStopped: cancelled; files fetched before that stay, each complete and listed.
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
                    run.tick = options.progress_every
                    run.pins_alone = inputs.each_pin
                    for target in targets:
                        pins = [pin for lock in inputs.locks for pin in lock.pins(target)]
                        if inputs.resolved is not None:
                            progress.resolving(f"{inputs.resolved.label} for {target}")
                            pins += await run.resolve(inputs.resolved, target)
                        run.sources[str(target)] = [
                            Buildable(str(p.path), p.path, local=True)
                            for p in (inputs.requirements.local if inputs.requirements else ())
                        ]
                        chosen = await run.choose(pins, target)
                        if inputs.each_pin and inputs.requirements is not None:
                            chosen += await run.each_pin(inputs.requirements, target)
                        run.sdists[str(target)] = [w for w in chosen if w.sdist]
                    await run.fetch_all()
                    await run.build_environments(targets)
                    await run.prune()
                    if inputs.each_pin:
                        await record_unresolved(mirror.store, report.targets, report.unresolved)
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
        #: Per target: sdists chosen whose build environments come next, and local projects.
        self.sdists: dict[str, list[_Wanted]] = {}
        self.sources: dict[str, list[Buildable]] = {}
        self.tick = 10.0
        self.pins_alone = False

    async def resolve(self, requirements: RequirementSet, target: Target) -> list[Pin]:
        """The pins uv finds for ``target``, with the hashes the requirements allow.

        :raises MirrorError: they do not resolve; uv's explanation follows on its own lines.
        """
        try:
            return await self._resolve(requirements, target)
        except ResolutionError as exc:
            raise MirrorError(f"{requirements.label} do not resolve for {target}: {exc}") from None

    async def _resolve(self, requirements: RequirementSet, target: Target) -> list[Pin]:
        directory = Path(tempfile.mkdtemp(dir=self.work))
        ticker = asyncio.create_task(self._tick(f"{requirements.label} for {target}"))
        try:
            found = await resolve(
                requirements.write(directory),
                target,
                index_url=self.index_url,
                cache_dir=self.work / "uv-cache",
            )
        except ResolutionError as exc:
            await self._unreachable(exc)
            raise
        finally:
            ticker.cancel()
        return requirements.hashed(found)

    async def _tick(self, what: str) -> None:
        """Say every few seconds that uv still works, and how many pages the mirror fetched for it."""
        started = time.monotonic()
        while True:
            await asyncio.sleep(self.tick)
            self.progress.waiting(what, time.monotonic() - started, self.mirror.metrics.misses)

    async def _unreachable(self, failure: ResolutionError) -> None:
        """An index failure inside uv's message is pipdepot's own loopback 502: name upstream's cause.

        :raises MirrorError: upstream cannot be reached (connection refused, name not resolved...).
        """
        if self.mirror.metrics.upstream_errors == 0 or self.mirror.client is None:
            return
        for upstream in self.mirror.upstreams:
            try:
                await self.mirror.client.fetch_project(
                    upstream, canonicalize_name("pip"), None, spool=self.mirror.store.spool_directory()
                )
            except UpstreamError as exc:
                cause = connection_cause(exc) or str(exc)
                raise MirrorError(
                    f"upstream {redact_url(upstream)} unreachable: {cause}",
                    hint=f"uv, through pipdepot's loopback index, said: {str(failure).splitlines()[0]}",
                ) from None

    async def each_pin(self, requirements: RequirementSet, target: Target) -> list[_Wanted]:
        """Each exact pin of the constraints resolved alone, with its dependencies, under the constraints.

        A pin that does not resolve is reported in the result, not fatal.
        """

        async def resolve(subset: RequirementSet) -> list[Pin]:
            return await self._resolve(subset, target)

        async def failed(line: str, exc: ResolutionError) -> list[Pin]:
            if exc.index_failed:  # not the pin's fault
                raise MirrorError(f"{line} does not resolve for {target}: {exc}") from None
            self.report.unresolved.append((line, str(target), str(exc)))
            return []

        count = len(requirements.exact_constraints())
        self.progress.resolving(f"{count} pins, each with its own dependencies, for {target}")
        self.report.pins_tried += count
        found = await resolve_each_pin(requirements, resolve, failed)
        self.report.unresolved.sort()
        return await self.choose(found, target)

    async def choose(self, pins: list[Pin], target: Target) -> list[_Wanted]:
        """Add the file each pin installs on ``target`` to the wanted files; those files."""
        chosen = []
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
            chosen.append(
                self.wanted.setdefault((pin.name, entry["filename"]), _Wanted(pin.name, entry, pin))
            )
        return chosen

    async def fetch_all(self) -> None:
        """Fetch every wanted file not fetched yet, a few at a time; then report the first failure."""
        report = self.report
        todo = [w for w in self.wanted.values() if w.entry["filename"] not in report.filenames]
        if not todo:
            return
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

    async def build_environments(self, targets: list[Target]) -> None:
        """Resolve and fetch each sdist's build environment, alone, on each target, level by level.

        A build requirement that is itself an sdist has one too; the walk ends when no new sdist comes in.
        """
        builds = BuildEnvironments(self._build_pins, self.report.notes)
        while True:
            level: dict[str, list[_Wanted]] = {}
            for target in targets:
                sources = self.sources.pop(str(target), [])
                for item in self.sdists.pop(str(target), []):
                    hit = await self.mirror.local_file(item.name, item.entry)
                    path = await self.mirror.local_copy(hit.key) if hit is not None else None
                    if path is not None:
                        sources.append(Buildable(item.entry["filename"], path))
                for source in sources:
                    pins = await builds.pins(source, target)
                    if pins:
                        chosen = await self.choose(pins, target)
                        level.setdefault(str(target), []).extend(w for w in chosen if w.sdist)
            self.report.builds = builds.resolutions
            if not level:
                return
            await self.fetch_all()
            self.sdists = level

    async def _build_pins(self, requirements: RequirementSet, target: Target) -> list[Pin] | None:
        """A build environment's pins; with ``--each-pin``, one that conflicts is reported, not fatal."""
        if not self.pins_alone:
            return await self.resolve(requirements, target)
        try:
            return await self._resolve(requirements, target)
        except ResolutionError as exc:
            if exc.index_failed:
                raise MirrorError(f"{requirements.label} do not resolve for {target}: {exc}") from None
            self.report.unresolved.append((requirements.label, str(target), str(exc)))
            return None
