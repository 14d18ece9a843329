"""``pipdepot ls``: what the mirror holds, read from its state files (no lock).

The network is used for one question only: whether a private project's name is also
upstream's (the names dependency confusion would use), asked of each private project.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, cast

from packaging.version import InvalidVersion, Version

from pipdepot.core.names import normalize_project, version_of_filename
from pipdepot.errors import MirrorError, UpstreamError
from pipdepot.operations.session import open_mirror
from pipdepot.server.upstream import NotFound

if TYPE_CHECKING:
    from pipdepot.core.names import NormalizedName
    from pipdepot.core.project import ProjectState
    from pipdepot.server.mirror import Mirror
    from pipdepot.storage.locate import MirrorLocation

__all__ = ["HeldFile", "HeldProject", "inventory"]


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class HeldFile:
    """A file on disk in the mirror."""

    filename: str
    version: str
    size: int
    sha256: str
    #: ``upstream`` (cached), or ``added`` (put in by ``pipdepot add``).
    source: str
    path: str


@dataclass(frozen=True, slots=True)
class HeldProject:
    """A project with files in the mirror."""

    name: str
    versions: tuple[str, ...]
    files: tuple[HeldFile, ...]
    #: It has uploaded or added files, and its pages list only those.
    private: bool = False
    #: Whether an upstream has a project of that name too (asked for private projects only);
    #: ``None``: not asked, or no upstream answered.
    upstream: bool | None = None

    @property
    def size(self) -> int:
        """Bytes of all its files."""
        return sum(f.size for f in self.files)


async def inventory(
    mirror_dir: MirrorLocation, project: str | None = None, *, upstreams: tuple[str, ...] = ()
) -> list[HeldProject]:
    """Every project with local files (or just ``project``), versions newest first.

    With ``upstreams``, each private project's name is looked up there (``upstream``).

    :raises MirrorError: ``project`` is not a valid name or has no files in the mirror.
    """
    async with open_mirror(mirror_dir, purpose="pipdepot ls", writer=False, upstreams=upstreams) as mirror:
        if project is not None:
            name = normalize_project(project)
            if name is None:
                raise MirrorError(f"{project!r} is not a valid project name")
            state = await mirror.state(name)
            if state is None or not state.local:
                raise MirrorError(f"{name}: no files in the mirror {mirror_dir}")
            held = [_held(state)]
        else:
            held = []
            for listed in await mirror.local_projects():
                state = await mirror.state(normalize_project(listed) or listed)  # type: ignore[arg-type]
                if state is not None and state.local:
                    held.append(_held(state))
        if mirror.client is None:
            return held
        known = await asyncio.gather(*(_upstream_has(mirror, p.name) for p in held if p.private))
        found = dict(zip((p.name for p in held if p.private), known, strict=True))
        return [replace(p, upstream=found[p.name]) if p.private else p for p in held]


async def _upstream_has(mirror: Mirror, name: str) -> bool | None:
    """Whether an upstream has a project ``name`` (its page is fetched and dropped); ``None``: no answer."""
    assert mirror.client is not None  # noqa: S101 (asked online only)
    for index in mirror.upstreams:
        with contextlib.suppress(UpstreamError):
            answer = await mirror.client.fetch_project(
                index, cast("NormalizedName", name), None, spool=mirror.store.spool_directory()
            )
            if isinstance(answer, NotFound):
                continue
            path = getattr(answer, "path", None)
            if path is not None:
                path.unlink(missing_ok=True)
            return True
        return None
    return False


def _held(state: ProjectState) -> HeldProject:
    added = {entry["filename"] for entry in state.added}
    files = [
        HeldFile(
            filename,
            version_of_filename(filename) or "?",
            local.size,
            local.sha256,
            "added" if filename in added else "upstream",
            state.path_of(filename) if any(e["filename"] == filename for e in state.files) else "",
        )
        for filename, local in sorted(state.local.items())
    ]
    versions = sorted({f.version for f in files}, key=_version_key, reverse=True)
    return HeldProject(state.name, tuple(versions), tuple(files), private=state.private)


def _version_key(text: str) -> tuple[int, Version | str]:
    try:
        return 1, Version(text)
    except InvalidVersion:
        return 0, text
