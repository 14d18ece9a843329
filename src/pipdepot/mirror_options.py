"""What every mirror command shares: its options, the settings and targets they make, and its report's words.

The ``--mirror`` option, the requirement, constraint and target options, quiet logs, and the wording of
counts, sizes and notes: sync, check, add, ls, export, import and the private-package commands take them
from here, so each reads and says the same thing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pipdepot.core.targets import InvalidTarget, Target, make_targets
from pipdepot.errors import UsageError
from pipdepot.settings import ServeFlags, ServeSettings, load_serve_settings, load_targets

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "choose_targets",
    "constraint_options",
    "echo_notes",
    "format_count",
    "format_lines",
    "format_size",
    "mirror_option",
    "mirror_settings",
    "quiet",
    "requirements_option",
    "target_options",
]

F = TypeVar("F", bound="Callable[..., Any]")


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


def requirements_option(*, required: bool) -> Callable[[F], F]:
    """The ``-r`` option: what sync, check and export read the requirements from."""
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


def constraint_options(command: F) -> F:
    """The ``-c`` and ``--each-pin`` options of sync and check."""
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


def target_options(command: F) -> F:
    """The ``--python-version`` and ``--platform`` options: the targets of sync, check and export."""
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


def choose_targets(pythons: tuple[str, ...], platforms: tuple[str, ...]) -> list[Target]:
    """The targets of the target options, or of their variables, or this machine's.

    :raises UsageError: a version or platform tag is not one pipdepot can target.
    """
    chosen = load_targets(pythons, platforms, os.environ)
    try:
        return make_targets(chosen.python_versions, chosen.platforms)
    except InvalidTarget as exc:
        raise UsageError(str(exc)) from None


def quiet() -> None:
    """The mirror's per-request and per-file log lines are for `serve`; here the command reports."""
    logging.getLogger("pipdepot.server").setLevel(logging.WARNING)


def echo_notes(notes: list[str]) -> None:
    """Each note on its own ``pipdepot: note:`` line on stderr, apart from the report on stdout."""
    for note in notes:
        click.echo(f"pipdepot: note: {note}", err=True)


def format_count(number: int, noun: str) -> str:
    """``1 file``, ``2 files``: the noun agrees with the number."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def format_size(count: int) -> str:
    """``512 B``, ``1.5 MB``: a byte count in decimal units, as a reader takes it in at a glance."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} B"


def format_lines(first: str, rest: str) -> str:
    """``first`` and a multi-line message: its first line beside, the others indented under it."""
    head, *tail = rest.splitlines() or [""]
    return "\n".join([f"{first} {head}", *(f"    {line}" for line in tail)])
