"""Private packages: upload tokens, yanking the mirror's own releases, the upstream switch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from packaging.version import InvalidVersion

from pipdepot.core.names import normalize_project
from pipdepot.errors import MirrorError
from pipdepot.operations.session import open_mirror
from pipdepot.server.tokens import TokenError, Tokens

if TYPE_CHECKING:
    from pipdepot.core.names import NormalizedName
    from pipdepot.server.tokens import Token
    from pipdepot.storage.locate import MirrorLocation

__all__ = ["allow_upstream", "create_token", "list_tokens", "project_name", "revoke_token", "yank"]


def __dir__() -> list[str]:
    return __all__


def project_name(text: str) -> NormalizedName:
    """``text`` as a normalized project name.

    :raises MirrorError: it is not a valid project name.
    """
    name = normalize_project(text)
    if name is None:
        raise MirrorError(f"{text!r} is not a valid project name")
    return name


async def create_token(
    mirror_dir: MirrorLocation, projects: tuple[NormalizedName, ...], description: str
) -> tuple[str, Token]:
    """A new upload token (the secret, to show once) for ``projects`` (empty: any)."""
    async with open_mirror(mirror_dir, purpose="pipdepot token create", writer=True) as mirror:
        try:
            return await Tokens(mirror.store).create(projects, description)
        except TokenError as exc:
            raise MirrorError(str(exc)) from None


async def list_tokens(mirror_dir: MirrorLocation) -> tuple[Token, ...]:
    """The mirror's tokens (their ids and scopes: the secrets are not kept)."""
    async with open_mirror(mirror_dir, purpose="pipdepot token list", writer=False) as mirror:
        try:
            return await Tokens(mirror.store).all()
        except TokenError as exc:
            raise MirrorError(str(exc)) from None


async def revoke_token(mirror_dir: MirrorLocation, token_id: str) -> Token:
    """Remove a token; a server stops taking it within a second."""
    async with open_mirror(mirror_dir, purpose="pipdepot token revoke", writer=True) as mirror:
        try:
            return await Tokens(mirror.store).revoke(token_id)
        except TokenError as exc:
            raise MirrorError(str(exc)) from None


async def yank(mirror_dir: MirrorLocation, project: str, version: str, *, yanked: str | bool) -> list[str]:
    """Yank (``True`` or a reason) or unyank (``False``) the mirror's own files of ``project`` ``version``.

    :raises MirrorError: no uploaded or added file of that version.
    """
    name = project_name(project)
    async with open_mirror(mirror_dir, purpose="pipdepot yank", writer=True) as mirror:
        try:
            files = await mirror.releases.yank(name, version, yanked)
        except InvalidVersion:
            raise MirrorError(f"{version!r} is not a version") from None
    if not files:
        raise MirrorError(
            f"{name} has no uploaded or added file of version {version} "
            "(upstream's files are upstream's to yank)"
        )
    return files


async def allow_upstream(mirror_dir: MirrorLocation, project: str, *, allowed: bool) -> NormalizedName:
    """Let a private project's pages list upstream's releases beside its own, or stop that."""
    name = project_name(project)
    async with open_mirror(mirror_dir, purpose="pipdepot allow-upstream", writer=True) as mirror:
        await mirror.releases.allow_upstream(name, allowed=allowed)
    return name
