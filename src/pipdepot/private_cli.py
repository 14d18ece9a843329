"""The commands for private packages: token (create, list, revoke), yank, unyank, allow-upstream."""

from __future__ import annotations

import asyncio
import json

import click

from pipdepot.mirror_options import mirror_option, mirror_settings, quiet
from pipdepot.operations.private import (
    allow_upstream,
    create_token,
    list_tokens,
    project_name,
    revoke_token,
    yank,
)

__all__ = ["PRIVATE_COMMANDS"]


def __dir__() -> list[str]:
    return __all__


@click.group(name="token")
def token_group() -> None:
    r"""Upload tokens: uploads are refused until one exists.

    \b
    pipdepot token create --project mylib     prints a new token, once
    twine upload --repository-url http://HOST:PORT/ -u __token__ -p TOKEN dist/*
    uv publish --publish-url http://HOST:PORT/ --token TOKEN
    """


@token_group.command(name="create")
@click.option(
    "--project",
    "projects",
    multiple=True,
    metavar="NAME",
    help="A project the token may upload to, repeatable. [default: any project]",
)
@click.option("--description", default="", help="A note kept with the token (who or what uses it).")
@mirror_option
def token_create(projects: tuple[str, ...], description: str, mirror_dir: str | None) -> None:
    """Make a token and print it; the mirror keeps only its hash, so it cannot be shown again."""
    quiet()
    names = tuple(project_name(p) for p in projects)
    secret, token = asyncio.run(create_token(mirror_settings(mirror_dir).mirror_dir, names, description))
    scope = ", ".join(token.projects) if token.projects else "any project"
    click.echo(f"pipdepot: token {token.id} may upload to {scope}; it is shown only now:", err=True)
    click.echo(secret)


@token_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@mirror_option
def token_list(as_json: bool, mirror_dir: str | None) -> None:
    """List the tokens: id, created, projects, description (never the tokens themselves)."""
    quiet()
    tokens = asyncio.run(list_tokens(mirror_settings(mirror_dir).mirror_dir))
    if as_json:
        document = [{k: v for k, v in t.as_json().items() if k != "sha256"} for t in tokens]
        click.echo(json.dumps(document, indent=2))
        return
    if not tokens:
        click.echo("no tokens: uploads are off (make one with `pipdepot token create`)")
    for token in tokens:
        scope = ",".join(token.projects) if token.projects else "*"
        click.echo(f"{token.id}  {token.created}  {scope:<24} {token.description}".rstrip())


@token_group.command(name="revoke")
@click.argument("token_id", metavar="ID")
@mirror_option
def token_revoke(token_id: str, mirror_dir: str | None) -> None:
    """Remove the token whose id (from `token list`) starts with ID; servers refuse it within a second."""
    quiet()
    token = asyncio.run(revoke_token(mirror_settings(mirror_dir).mirror_dir, token_id))
    click.echo(f"revoked token {token.id}")


@click.command(name="yank")
@click.argument("project")
@click.argument("version")
@click.option("--reason", help="Why, shown to installers (PEP 592's yanked reason).")
@mirror_option
def yank_command(project: str, version: str, reason: str | None, mirror_dir: str | None) -> None:
    """Yank the mirror's own files (uploaded or added) of PROJECT VERSION.

    Installers then skip them unless pinned exactly (PEP 592); pages (HTML data-yanked, JSON
    yanked) and the static tree say so within a second, on every server of the mirror.
    """
    quiet()
    files = asyncio.run(yank(mirror_settings(mirror_dir).mirror_dir, project, version, yanked=reason or True))
    for filename in files:
        click.echo(f"yanked {filename}")


@click.command(name="unyank")
@click.argument("project")
@click.argument("version")
@mirror_option
def unyank_command(project: str, version: str, mirror_dir: str | None) -> None:
    """Undo `pipdepot yank` for PROJECT VERSION."""
    quiet()
    files = asyncio.run(yank(mirror_settings(mirror_dir).mirror_dir, project, version, yanked=False))
    for filename in files:
        click.echo(f"unyanked {filename}")


@click.command(name="allow-upstream")
@click.argument("project")
@click.option("--off", is_flag=True, help="Stop it again: the project lists its own files only.")
@mirror_option
def allow_upstream_command(project: str, off: bool, mirror_dir: str | None) -> None:
    """Let private PROJECT's pages list upstream's releases beside its own.

    A project with an uploaded or added file is private: its pages list only its own files,
    so a newer release of the same name upstream is never installed in their place
    (dependency confusion). Allow the merge only for a project you know is the same upstream.
    """
    quiet()
    name = asyncio.run(allow_upstream(mirror_settings(mirror_dir).mirror_dir, project, allowed=not off))
    if off:
        click.echo(f"{name}: its pages list its own files only")
    else:
        click.echo(f"{name}: its pages list upstream's releases beside its own")


PRIVATE_COMMANDS = (token_group, yank_command, unyank_command, allow_upstream_command)
