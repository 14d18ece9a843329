"""The commands that fill, prove, list and move the mirror: sync, add, check, ls, export, import."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pipdepot.core.targets import InvalidTarget, Target, make_targets, platform_target
from pipdepot.element.roottarget import read_root_target
from pipdepot.errors import BuildRootError, MirrorError, UsageError
from pipdepot.operations.add import add, find_distributions
from pipdepot.operations.check import CheckReport, check
from pipdepot.operations.inventory import HeldProject, inventory
from pipdepot.operations.sync import SyncOptions, SyncStopped, read_inputs, sync
from pipdepot.operations.transfer import export_mirror, import_mirror
from pipdepot.settings import ServeFlags, ServeSettings, load_serve_settings, load_targets

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from pipdepot.operations.sync import Inputs
    from pipdepot.storage.locate import MirrorLocation

__all__ = [
    "MIRROR_COMMANDS",
    "check_before_chroot",
    "check_for_target",
    "mirror_option",
    "mirror_settings",
    "quiet",
]

F = TypeVar("F", bound="Callable[..., Any]")
T = TypeVar("T")


def __dir__() -> list[str]:
    return __all__


def mirror_option(command: F) -> F:
    """The ``--mirror`` option every mirror command takes."""
    return click.option(
        "--mirror",
        "mirror_dir",
        metavar="DIR|s3://BUCKET/PREFIX",
        help="The mirror: a directory, or a bucket prefix reached with the standard AWS variables "
        "and ~/.aws files; other pipdepot processes may write it at the same time. "
        "[env: PIPDEPOT_MIRROR_DIR, DIB_IMAGE_CACHE/pypi/mirror; default: ~/.cache/image-create/pypi/mirror]",
    )(command)


def _requirements_option(*, required: bool) -> Callable[[F], F]:
    return click.option(
        "-r",
        "--requirement",
        "inputs",
        multiple=True,
        required=required,
        type=click.Path(path_type=Path),
        metavar="FILE",
        help="Requirements file (pip's format: hashes checked, index options ignored), or a lock file "
        "taken as exact pins: pylock.toml (PEP 751, pylock.*.toml) or uv.lock. Repeatable.",
    )


def _constraint_options(command: F) -> F:
    options = [
        click.option(
            "-c",
            "--constraint",
            "constraints",
            multiple=True,
            metavar="FILE|URL",
            help="Constraints file (pip's format), a path or an http(s) URL (OpenStack's "
            "upper-constraints), fetched within 60 s and 8 MiB. Repeatable; also as a `-c` line "
            "in a requirements file.",
        ),
        click.option(
            "--each-pin",
            is_flag=True,
            help="Take every pin (name==version) of the constraints on its own, with its "
            "dependencies under the constraints, instead of resolving them as one set: for a pins "
            "file that is not one installable set. Pins that cannot resolve are listed, not fatal.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _target_options(command: F) -> F:
    options = [
        click.option(
            "--python-version",
            "pythons",
            multiple=True,
            metavar="X.Y",
            help="Target CPython version, repeatable (uv resolves for CPython). "
            "[env: PIPDEPOT_PYTHON_VERSIONS (space-separated); default: this interpreter's]",
        ),
        click.option(
            "--platform",
            "platforms",
            multiple=True,
            metavar="TAG",
            help="Target wheel platform tag (manylinux_2_28_x86_64, musllinux_1_2_aarch64, "
            "macosx_11_0_arm64, win_amd64...), repeatable; every version is combined with every "
            "platform. [env: PIPDEPOT_PLATFORMS (space-separated); default: this machine's]",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def mirror_settings(
    mirror_dir: str | None, upstreams: tuple[str, ...] = (), timeout: str | None = None
) -> ServeSettings:
    """The settings a mirror command shares with ``serve`` (the mirror's location first)."""
    flags = ServeFlags(mirror_dir=mirror_dir, upstreams=upstreams, upstream_timeout=timeout)
    return load_serve_settings(flags, os.environ)


def _targets(pythons: tuple[str, ...], platforms: tuple[str, ...]) -> list[Target]:
    chosen = load_targets(pythons, platforms, os.environ)
    try:
        return make_targets(chosen.python_versions, chosen.platforms)
    except InvalidTarget as exc:
        raise UsageError(str(exc)) from None


def quiet() -> None:
    """The mirror's per-request and per-file log lines are for `serve`; here the command reports."""
    logging.getLogger("pipdepot.core").setLevel(logging.WARNING)


def _notes(notes: list[str]) -> None:
    for note in notes:
        click.echo(f"pipdepot: note: {note}", err=True)


def _count(number: int, noun: str) -> str:
    """``1 file``, ``2 files``: the noun agrees with the number."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} B"


class _Stopped(Exception):  # noqa: N818 (a signal, not an error)
    """SIGINT or SIGTERM arrived; the work was cancelled and has cleaned up."""

    def __init__(self, signum: int, cause: BaseException) -> None:
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name
        #: What the cancelled work raised (its own account of what it kept, if it gives one).
        self.cause = cause


def _stoppable(work: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(work)``, where SIGINT and SIGTERM cancel every task so each cleans up after itself.

    Downloads in flight remove their spool files, uv is killed, temporary directories go;
    what was committed stays. Then :class:`_Stopped` tells the caller which signal it was,
    and what the work raised as it stopped.
    """
    received: list[int] = []

    async def main() -> T:
        loop = asyncio.get_running_loop()

        def stop(signum: int) -> None:
            if not received:
                received.append(signum)
                for task in asyncio.all_tasks(loop):
                    task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop, signum)
        try:
            return await work
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    try:
        return asyncio.run(main())
    except BaseException as exc:
        if received:
            raise _Stopped(received[0], exc) from None
        raise


class _Progress:
    """A bar on a terminal; one line per file otherwise (logs, CI)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._bar: Any = None

    def resolving(self, target: str) -> None:
        click.echo(f"pipdepot: resolving {target}", err=True)

    def waiting(self, what: str, seconds: float, pages: int) -> None:
        click.echo(f"pipdepot: still resolving {what}: {seconds:.0f} s, {pages} pages fetched", err=True)

    def planned(self, files: int, size: int) -> None:
        if self._bar is not None:
            self._bar.render_finish()
        if self.tty and files:
            self._bar = click.progressbar(length=files, label=f"files ({_size(size)})", file=sys.stderr)
            self._bar.render_progress()

    def done(self, filename: str, size: int, *, fetched: bool) -> None:
        if self._bar is not None:
            self._bar.update(1)
        elif not self.tty:
            click.echo(
                f"pipdepot: {'fetched' if fetched else 'present'} {filename} ({_size(size)})", err=True
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.render_finish()
            self._bar = None


@click.command(name="sync")
@_requirements_option(required=False)
@_constraint_options
@_target_options
@mirror_option
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    metavar="URL",
    help="Upstream index, repeatable; per project, the first that has it. "
    "[env: PIPDEPOT_UPSTREAMS (space-separated); default: PyPI]",
)
@click.option(
    "--upstream-timeout",
    metavar="SECONDS",
    help="Give up on an upstream request after this long. [env: PIPDEPOT_UPSTREAM_TIMEOUT; default: 10]",
)
def sync_command(
    *,
    inputs: tuple[Path, ...],
    constraints: tuple[str, ...],
    each_pin: bool,
    pythons: tuple[str, ...],
    platforms: tuple[str, ...],
    mirror_dir: str | None,
    upstreams: tuple[str, ...],
    upstream_timeout: str | None,
) -> None:
    """Put every file the requirements need into the mirror, for every target.

    uv resolves the requirements (with all dependencies) per target, against
    the mirror itself, which fetches project pages and PEP 658 metadata from
    upstream and keeps them; then the file each target installs (the best
    wheel, else the sdist, and an sdist's build requirements) is downloaded
    once, verified against upstream's sha256 and any --hash in the file.
    Afterwards `pipdepot check` proves the same targets install offline.

    With --each-pin, every pin of the constraints (-c) is resolved on its
    own, so a pins file that is not one installable set (OpenStack's
    upper-constraints) is mirrored whole; pins that resolve nowhere are listed.
    """
    quiet()
    settings = mirror_settings(mirror_dir, upstreams, upstream_timeout)
    targets = _targets(pythons, platforms)
    read = read_inputs(list(inputs), constraints, each_pin=each_pin)
    progress = _Progress()
    options = SyncOptions(settings.mirror_dir, settings.upstreams, settings.upstream_timeout)
    stale = _StaleSummary()
    try:
        with stale:
            report = _stoppable(sync(read, targets, options, progress))
    except _Stopped as stopped:
        progress.close()
        kept = stopped.cause.kept if isinstance(stopped.cause, SyncStopped) else 0
        click.echo(
            f"pipdepot: sync stopped by {stopped.name}: {_count(kept, 'file')} downloaded and verified "
            f"in this run {'stays' if kept == 1 else 'stay'} in {settings.mirror_dir}; the downloads in "
            "progress and the temporary files were removed; run the same sync again to finish",
            err=True,
        )
        sys.exit(128 + stopped.signum)
    finally:
        progress.close()
        stale.report()
    _notes(report.notes)
    for pin, target, reason in report.unresolved:
        click.echo(_lines(f"not mirrored: {pin} for {target}: does not resolve:", reason))
    if read.each_pin:
        failed = len(report.unresolved)
        click.echo(f"each pin: {report.pins_tried - failed} of {report.pins_tried} (pin, target) resolved")
    total = report.fetched_bytes + report.present_bytes
    click.echo(
        f"synced {settings.mirror_dir} for {', '.join(report.targets)}: "
        f"{_count(len(report.projects), 'project')}, {_count(len(report.filenames), 'file')} "
        f"({_size(total)}); fetched {_count(report.fetched_files, 'file')} "
        f"({_size(report.fetched_bytes)}), already present {report.present_files} "
        f"({_size(report.present_bytes)}); {report.builds} build environments; {report.seconds:.1f} s"
    )


@click.command(name="check")
@_requirements_option(required=False)
@_constraint_options
@_target_options
@mirror_option
def check_command(
    *,
    inputs: tuple[Path, ...],
    constraints: tuple[str, ...],
    each_pin: bool,
    pythons: tuple[str, ...],
    platforms: tuple[str, ...],
    mirror_dir: str | None,
) -> None:
    """Prove, with no network, that the requirements install from the mirror alone.

    For each target, uv resolves the requirements against the mirror's files
    (checked on disk), and each version it picks must have a file the target
    installs, whose bytes match its sha256. Exits 1 with every missing
    (project, version, target) when they do not; run `pipdepot sync` with the
    same arguments to fill the gaps.
    """
    quiet()
    settings = mirror_settings(mirror_dir)
    targets = _targets(pythons, platforms)
    read = read_inputs(list(inputs), constraints, each_pin=each_pin)
    report = asyncio.run(check(read, targets, mirror_dir=settings.mirror_dir))
    _report_check(report, settings.mirror_dir)


def _lines(first: str, rest: str) -> str:
    """``first`` and a multi-line message: its first line beside, the others indented under it."""
    head, *tail = rest.splitlines() or [""]
    return "\n".join([f"{first} {head}", *(f"    {line}" for line in tail)])


class _StaleSummary(logging.Filter):
    """Upstream down: one warning for all pages served stale, not one per page (185 for 62 projects).

    Held back while the command runs, then said once, with the projects counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.projects: dict[str, str] = {}
        self._logger = logging.getLogger("pipdepot.server.pagecache")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "serving %s stale: %s" and isinstance(record.args, tuple):
            self.projects.setdefault(str(record.args[0]), str(record.args[1]))
            return False
        return True

    def __enter__(self) -> None:
        self._logger.addFilter(self)

    def __exit__(self, *_: object) -> None:
        self._logger.removeFilter(self)

    def report(self) -> None:
        if not self.projects:
            return
        names = sorted(self.projects)
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        click.echo(
            f"pipdepot: warning: upstream unreachable; {len(names)} projects taken from the mirror's own "
            f"copy, as last fetched ({shown}): {self.projects[names[0]]}",
            err=True,
        )


def _report_check(report: CheckReport, mirror_dir: MirrorLocation) -> None:
    _notes(report.notes)
    for target, files in report.targets.items():
        if not any(m.target == target for m in report.missing):
            click.echo(f"ok: {target}: {_count(len(files), 'file')}, all in the mirror {mirror_dir}")
    for missing in report.missing:
        click.echo(_lines("missing:", str(missing)))
    for unbuildable in report.unbuildable:
        click.echo(_lines("does not build:", str(unbuildable)))
    for pin, target, reason in report.unresolved:
        click.echo(_lines(f"unresolvable: {pin} for {target}:", reason))
    if report.missing:
        targets = {m.target for m in report.missing}
        raise MirrorError(
            f"the mirror lacks {_count(len(report.missing), 'item')} for {_count(len(targets), 'target')}: "
            "an offline "
            "install would fail",
            hint="run `pipdepot sync` with the same requirements and targets",
        )
    if report.unbuildable:
        targets = {m.target for m in report.unbuildable}
        one = len(report.unbuildable) == 1
        raise MirrorError(
            f"{_count(len(report.unbuildable), 'sdist')} for {_count(len(targets), 'target')} "
            f"{'fails in its' if one else 'fail in their'} own build backend: "
            "an install would fail, online too",
            hint="the mirror has its files; pin a version with a wheel for the target, or build a wheel "
            "of it where it builds and `pipdepot add` it",
        )


def check_before_chroot(inputs: tuple[Path, ...], mirror_dir: Path, root: Path) -> None:
    """``pipdepot chroot --check``: the check for the root's own target, before the root is touched.

    The target (Python version, libc and its version, architecture) is read from the root's
    files, not taken from the host.

    :raises MirrorError: the mirror lacks something; the root is left as it was.
    :raises BuildRootError: the root's target cannot be read.
    """
    found = read_root_target(root)
    try:
        target = platform_target(found.python, found.platform, full_version=found.full_version)
    except InvalidTarget as exc:
        raise BuildRootError(f"{root}'s {found}: {exc}") from None
    check_for_target(inputs, mirror_dir, target, f"({found}), read from {root}")


def check_for_target(inputs: tuple[Path, ...], mirror_dir: Path, target: Target, source: str) -> None:
    """The check of ``chroot --check`` and ``build --check``: the requirements for one build's target.

    ``source`` follows the target on its line: where it was read from.

    :raises MirrorError: the mirror lacks something.
    """
    quiet()
    read: Inputs = read_inputs(list(inputs))
    click.echo(f"target: {target} {source}")
    report = asyncio.run(check(read, [target], mirror_dir=mirror_dir))
    _report_check(report, mirror_dir)


@click.command(name="add")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@mirror_option
def add_command(paths: tuple[Path, ...], mirror_dir: str | None) -> None:
    """Put local wheels and sdists (files, or directories of them) into the mirror.

    Each is checked first (filename, archive, metadata name and version), then
    listed on its project's page like upstream's files, before them, with its
    sha256 and (wheels) its PEP 658 metadata. A project upstream does not know
    is served from these files alone. A file of the same name and other content
    is refused; the same file again is a no-op.
    """
    quiet()
    settings = mirror_settings(mirror_dir)
    distributions = find_distributions(list(paths))
    report = asyncio.run(add(distributions, mirror_dir=settings.mirror_dir))
    for dist in report.added:
        click.echo(f"added {dist.filename} ({_size(dist.size)}, sha256 {dist.sha256[:16]}...)")
    for dist in report.present:
        click.echo(f"already there: {dist.filename}")


@click.command(name="ls")
@click.argument("project", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--offline",
    is_flag=True,
    help="Do not ask upstream whether private projects' names are upstream's too. [env: PIPDEPOT_OFFLINE]",
)
@mirror_option
def ls_command(project: str | None, as_json: bool, offline: bool, mirror_dir: str | None) -> None:
    """List what the mirror holds: projects, versions, files, sizes (or one PROJECT's files).

    A private project (one with uploaded or added files: its pages list only those) is
    marked so, and upstream is asked whether it has a project of the same name: that name
    is where dependency confusion would strike if the project were allowed to merge.
    """
    quiet()
    settings = mirror_settings(mirror_dir)
    upstreams = () if offline or settings.offline else settings.upstreams
    held = asyncio.run(inventory(settings.mirror_dir, project, upstreams=upstreams))
    if as_json:
        document = [
            {
                "name": p.name,
                "versions": list(p.versions),
                "size": p.size,
                "private": p.private,
                "upstream": p.upstream,
                "files": [
                    {
                        "filename": f.filename,
                        "version": f.version,
                        "size": f.size,
                        "sha256": f.sha256,
                        "source": f.source,
                    }
                    for f in p.files
                ],
            }
            for p in held
        ]
        click.echo(json.dumps(document, indent=2))
        return
    if project is not None:
        if held[0].private:
            click.echo(f"{held[0].name}: {_privacy(held[0])}")
        for file in held[0].files:
            click.echo(f"{file.version:<16} {_size(file.size):>9}  {file.source:<8} {file.filename}")
        return
    for item in held:
        versions = ", ".join(item.versions[:5]) + (", ..." if len(item.versions) > 5 else "")
        files = _count(len(item.files), "file")
        privacy = f"  [{_privacy(item)}]" if item.private else ""
        click.echo(f"{item.name:<32} {files:>10} {_size(item.size):>9}  {versions}{privacy}")
    total = sum(p.size for p in held)
    files = _count(sum(len(p.files) for p in held), "file")
    click.echo(f"{_count(len(held), 'project')}, {files}, {_size(total)}")


def _privacy(project: HeldProject) -> str:
    upstream = {True: ", also upstream", False: ", not upstream", None: ""}[project.upstream]
    return f"private{upstream}"


@click.command(name="export")
@click.argument("out", type=click.Path(path_type=Path))
@_requirements_option(required=False)
@_target_options
@mirror_option
def export_command(
    *,
    out: Path,
    inputs: tuple[Path, ...],
    pythons: tuple[str, ...],
    platforms: tuple[str, ...],
    mirror_dir: str | None,
) -> None:
    """Write the mirror (or, with -r, what those requirements need on the targets) to OUT.tar.

    OUT ending in .tar.gz or .tgz is compressed. With -r, the requirements must
    first pass `pipdepot check`: the archive never carries a half set.
    `pipdepot import` puts it into another mirror, verifying every file.
    """
    quiet()
    settings = mirror_settings(mirror_dir)
    only = None
    if inputs:
        targets = _targets(pythons, platforms)
        report = asyncio.run(check(read_inputs(list(inputs)), targets, mirror_dir=settings.mirror_dir))
        _report_check(report, settings.mirror_dir)
        only = report.filenames
    result = asyncio.run(export_mirror(settings.mirror_dir, out, only=only))
    click.echo(
        f"exported {_count(len(result.projects), 'project')}, {_count(result.files, 'file')} "
        f"({_size(result.size)}) to {out}"
    )


@click.command(name="import")
@click.argument("archive", type=click.Path(path_type=Path))
@mirror_option
def import_command(archive: Path, mirror_dir: str | None) -> None:
    """Add the files of an ARCHIVE made by `pipdepot export` to the mirror.

    Every file is hashed against the archive's manifest before anything is
    written; a damaged archive, or a file that would replace a different one
    already in the mirror, stops the import with the mirror unchanged.
    """
    quiet()
    settings = mirror_settings(mirror_dir)
    result = asyncio.run(import_mirror(archive, settings.mirror_dir))
    click.echo(
        f"imported {_count(result.files, 'file')} ({_size(result.size)}) of "
        f"{_count(len(result.projects), 'project')} "
        f"into {settings.mirror_dir}; {result.present} already there"
    )


MIRROR_COMMANDS = (sync_command, add_command, check_command, ls_command, export_command, import_command)
