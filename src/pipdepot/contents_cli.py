"""The commands that list the mirror and move files into and out of it: add, ls, export, import."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipdepot.check_cli import report_check
from pipdepot.mirror_options import (
    choose_targets,
    format_count,
    format_size,
    mirror_option,
    mirror_settings,
    quiet,
    requirements_option,
    target_options,
)
from pipdepot.operations.add import add, find_distributions
from pipdepot.operations.check import check
from pipdepot.operations.inventory import inventory
from pipdepot.operations.sync import read_inputs
from pipdepot.operations.transfer import export_mirror, import_mirror

if TYPE_CHECKING:
    from pipdepot.operations.inventory import HeldProject

__all__ = ["CONTENTS_COMMANDS"]


def __dir__() -> list[str]:
    return __all__


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
        click.echo(f"added {dist.filename} ({format_size(dist.size)}, sha256 {dist.sha256[:16]}...)")
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
            click.echo(f"{file.version:<16} {format_size(file.size):>9}  {file.source:<8} {file.filename}")
        return
    for item in held:
        versions = ", ".join(item.versions[:5]) + (", ..." if len(item.versions) > 5 else "")
        files = format_count(len(item.files), "file")
        privacy = f"  [{_privacy(item)}]" if item.private else ""
        click.echo(f"{item.name:<32} {files:>10} {format_size(item.size):>9}  {versions}{privacy}")
    total = sum(p.size for p in held)
    files = format_count(sum(len(p.files) for p in held), "file")
    click.echo(f"{format_count(len(held), 'project')}, {files}, {format_size(total)}")


def _privacy(project: HeldProject) -> str:
    upstream = {True: ", also upstream", False: ", not upstream", None: ""}[project.upstream]
    return f"private{upstream}"


@click.command(name="export")
@click.argument("out", type=click.Path(path_type=Path))
@requirements_option(required=False)
@target_options
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
        targets = choose_targets(pythons, platforms)
        report = asyncio.run(check(read_inputs(list(inputs)), targets, mirror_dir=settings.mirror_dir))
        report_check(report, settings.mirror_dir)
        only = report.filenames
    result = asyncio.run(export_mirror(settings.mirror_dir, out, only=only))
    click.echo(
        f"exported {format_count(len(result.projects), 'project')}, {format_count(result.files, 'file')} "
        f"({format_size(result.size)}) to {out}"
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
        f"imported {format_count(result.files, 'file')} ({format_size(result.size)}) of "
        f"{format_count(len(result.projects), 'project')} "
        f"into {settings.mirror_dir}; {result.present} already there"
    )


CONTENTS_COMMANDS = (add_command, ls_command, export_command, import_command)
