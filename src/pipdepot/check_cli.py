"""The command that proves the mirror installs offline: check; and the same check for others.

``chroot --check`` and ``build --check`` run it for their build's one target, ``export -r`` before it writes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

from pipdepot.core.targets import InvalidTarget, Target, platform_target
from pipdepot.element.roottarget import read_root_target
from pipdepot.errors import BuildRootError, MirrorError
from pipdepot.mirror_options import (
    choose_targets,
    constraint_options,
    echo_notes,
    format_count,
    format_lines,
    mirror_option,
    mirror_settings,
    quiet,
    requirements_option,
    target_options,
)
from pipdepot.operations.check import CheckReport, check
from pipdepot.operations.sync import read_inputs

if TYPE_CHECKING:
    from pathlib import Path

    from pipdepot.operations.sync import Inputs
    from pipdepot.storage.locate import MirrorLocation

__all__ = ["check_before_chroot", "check_command", "check_for_target", "report_check"]


def __dir__() -> list[str]:
    return __all__


@click.command(name="check")
@requirements_option(required=False)
@constraint_options
@target_options
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
    targets = choose_targets(pythons, platforms)
    read = read_inputs(list(inputs), constraints, each_pin=each_pin)
    report = asyncio.run(check(read, targets, mirror_dir=settings.mirror_dir))
    report_check(report, settings.mirror_dir)


def report_check(report: CheckReport, mirror_dir: MirrorLocation) -> None:
    """Print what the check found, ``ok:`` per complete target, then every gap on its own line.

    :raises MirrorError: something is missing, or an sdist does not build, for some target.
    """
    echo_notes(report.notes)
    for target, files in report.targets.items():
        if not any(m.target == target for m in report.missing):
            click.echo(f"ok: {target}: {format_count(len(files), 'file')}, all in the mirror {mirror_dir}")
    for missing in report.missing:
        click.echo(format_lines("missing:", str(missing)))
    for unbuildable in report.unbuildable:
        click.echo(format_lines("does not build:", str(unbuildable)))
    for pin, target, reason in report.unresolved:
        click.echo(format_lines(f"unresolvable: {pin} for {target}:", reason))
    if report.missing:
        targets = {m.target for m in report.missing}
        raise MirrorError(
            f"the mirror lacks {format_count(len(report.missing), 'item')} "
            f"for {format_count(len(targets), 'target')}: an offline install would fail",
            hint="run `pipdepot sync` with the same requirements and targets",
        )
    if report.unbuildable:
        targets = {m.target for m in report.unbuildable}
        one = len(report.unbuildable) == 1
        raise MirrorError(
            f"{format_count(len(report.unbuildable), 'sdist')} for {format_count(len(targets), 'target')} "
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
    report_check(report, mirror_dir)
