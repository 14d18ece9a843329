"""``pipdepot build``: a container build (buildah, podman) that installs from the mirror and keeps no trace.

The plan options and their loading live in ``element_cli.py``; :func:`build_command` takes
them, and ``cli.py`` (which registers the command) hands them over.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pipdepot.check_cli import check_for_target
from pipdepot.core.targets import InvalidTarget, platform_target
from pipdepot.element.container import BuilderCommand, parse_builder
from pipdepot.element.plan import LOCAL_MIRROR_URL
from pipdepot.errors import BuildRootError, UsageError
from pipdepot.operations.build import check_build, read_base_target, run_build
from pipdepot.operations.plan import make_plan

if TYPE_CHECKING:
    from collections.abc import Callable

    from pipdepot.settings import Settings

__all__ = ["build_command"]


def __dir__() -> list[str]:
    return __all__


def build_command(
    plan_options: Callable[[Callable[..., None]], Callable[..., None]],
    load_settings: Callable[[dict[str, Any]], Settings],
) -> click.Command:
    """The ``build`` command, with the plan options ``element_cli.py`` shares with plan, inject, chroot."""

    @click.command(name="build", context_settings={"ignore_unknown_options": True})
    @click.argument("command", nargs=-1, type=click.UNPROCESSED)
    @click.option(
        "--check",
        "checks",
        multiple=True,
        type=click.Path(path_type=Path),
        metavar="FILE",
        help="First run `pipdepot check -r FILE` against the mirror directory for the image's target "
        "(--python-version and --platform, else read from the final stage's base image, which must "
        "be in the image storage); if anything is missing, stop before building. Repeatable.",
    )
    @click.option("--python-version", "check_python", metavar="X.Y", help="The target's Python, for --check.")
    @click.option(
        "--platform", "check_platform", metavar="TAG", help="The target's wheel platform tag, for --check."
    )
    @plan_options
    def build(
        command: tuple[str, ...],
        checks: tuple[Path, ...],
        check_python: str | None,
        check_platform: str | None,
        **options: Any,
    ) -> None:
        """Run BUILDER ARGS (`buildah bud`, `buildah build`, `podman build`) with pip and uv using the mirror.

        The plan's pip.conf and uv.toml (see `pipdepot plan`) are written into a private temporary
        directory and mounted read-only at /etc/pip.conf and /etc/uv/uv.toml in every RUN step,
        with the local mirror at /tmp/pypi when the plan uses it: an unmodified Containerfile's
        `pip install` and `uv pip install` install from the mirror. Nothing is passed as a build
        argument or variable, so the image's config and history name neither the mirror nor
        pipdepot; the empty mount points the build leaves (paths the base image lacks) are removed
        in one last layer. Online, pip and uv use --mirror-url (a `pipdepot serve`: on 127.0.0.1,
        build with --isolation chroot or --network host). --offline: only file:///tmp/pypi, and the
        build has no network. Exits with the builder's status. Put `--` before BUILDER.
        """
        settings = load_settings(dict(options))
        offline = settings.plan.offline.value
        if offline:
            settings = load_settings({**options, "mirror_urls": (LOCAL_MIRROR_URL,), "offline": True})
        which = {command[0]: shutil.which(command[0])} if command else {}
        builder = parse_builder(command, which=which)
        report = make_plan(settings)
        check_build(report, builder, offline=offline, environ=os.environ)
        for warning in report.plan.warnings:  # not the host's PIP_*: a builder never passes them on
            click.echo(f"pipdepot: warning: {warning}", err=True)
        if checks:
            _check(checks, settings, builder, check_python, check_platform)
        result = run_build(report, builder, offline=offline, environ=os.environ)
        if result.removed:
            click.echo(
                f"pipdepot: image {result.image}: removed the empty mount points the build left "
                f"({', '.join(result.removed)}) in a last layer",
                err=True,
            )
        sys.exit(result.status)

    return build


def _check(
    checks: tuple[Path, ...],
    settings: Settings,
    builder: BuilderCommand,
    python: str | None,
    platform: str | None,
) -> None:
    """``--check``: the target from the flags, else read from the final stage's base image."""
    if (python is None) != (platform is None):
        raise UsageError("--python-version and --platform go together (or neither: read from the base image)")
    if python is not None and platform is not None:
        try:
            target = platform_target(python, platform)
        except InvalidTarget as exc:
            raise UsageError(f"--python-version/--platform: {exc}") from None
        source = "(given by --python-version and --platform)"
    else:
        image, found = read_base_target(builder, os.environ)
        try:
            target = platform_target(found.python, found.platform, full_version=found.full_version)
        except InvalidTarget as exc:
            raise BuildRootError(f"the base image {image}'s {found}: {exc}") from None
        source = f"({found}), read from the base image {image}"
    check_for_target(checks, settings.plan.mirror_dir.value, target, source)
