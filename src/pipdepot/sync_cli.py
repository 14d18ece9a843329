"""The command that fills the mirror: sync, stoppable by a signal, with its progress and its summary."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pipdepot.mirror_options import (
    choose_targets,
    constraint_options,
    echo_notes,
    format_count,
    format_lines,
    format_size,
    mirror_option,
    mirror_settings,
    quiet,
    requirements_option,
    target_options,
)
from pipdepot.operations.sync import SyncOptions, SyncStopped, read_inputs, sync

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from pathlib import Path

__all__ = ["sync_command"]

T = TypeVar("T")


def __dir__() -> list[str]:
    return __all__


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
            self._bar = click.progressbar(length=files, label=f"files ({format_size(size)})", file=sys.stderr)
            self._bar.render_progress()

    def done(self, filename: str, size: int, *, fetched: bool) -> None:
        if self._bar is not None:
            self._bar.update(1)
        elif not self.tty:
            click.echo(
                f"pipdepot: {'fetched' if fetched else 'present'} {filename} ({format_size(size)})", err=True
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.render_finish()
            self._bar = None


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


@click.command(name="sync")
@requirements_option(required=False)
@constraint_options
@target_options
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
    targets = choose_targets(pythons, platforms)
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
            f"pipdepot: sync stopped by {stopped.name}: {format_count(kept, 'file')} downloaded and verified "
            f"in this run {'stays' if kept == 1 else 'stay'} in {settings.mirror_dir}; the downloads in "
            "progress and the temporary files were removed; run the same sync again to finish",
            err=True,
        )
        sys.exit(128 + stopped.signum)
    finally:
        progress.close()
        stale.report()
    echo_notes(report.notes)
    for pin, target, reason in report.unresolved:
        click.echo(format_lines(f"not mirrored: {pin} for {target}: does not resolve:", reason))
    if read.each_pin:
        failed = len(report.unresolved)
        click.echo(f"each pin: {report.pins_tried - failed} of {report.pins_tried} (pin, target) resolved")
    total = report.fetched_bytes + report.present_bytes
    click.echo(
        f"synced {settings.mirror_dir} for {', '.join(report.targets)}: "
        f"{format_count(len(report.projects), 'project')}, {format_count(len(report.filenames), 'file')} "
        f"({format_size(total)}); fetched {format_count(report.fetched_files, 'file')} "
        f"({format_size(report.fetched_bytes)}), already present {report.present_files} "
        f"({format_size(report.present_bytes)}); {report.builds} build environments; {report.seconds:.1f} s"
    )
