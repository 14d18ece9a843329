"""``pipdepot ls``: what the mirror holds, read from its state files (no network, no lock)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from pipdepot.core.names import normalize_project, version_of_filename
from pipdepot.errors import MirrorError
from pipdepot.operations.session import open_mirror

if TYPE_CHECKING:
    from pipdepot.core.project import ProjectState
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

    @property
    def size(self) -> int:
        """Bytes of all its files."""
        return sum(f.size for f in self.files)


async def inventory(mirror_dir: MirrorLocation, project: str | None = None) -> list[HeldProject]:
    """Every project with local files (or just ``project``), versions newest first.

    :raises MirrorError: ``project`` is not a valid name or has no files in the mirror.
    """
    async with open_mirror(mirror_dir, purpose="pipdepot ls", writer=False) as mirror:
        if project is not None:
            name = normalize_project(project)
            if name is None:
                raise MirrorError(f"{project!r} is not a valid project name")
            state = await mirror.state(name)
            if state is None or not state.local:
                raise MirrorError(f"{name}: no files in the mirror {mirror_dir}")
            return [_held(state)]
        held = []
        for listed in await mirror.local_projects():
            state = await mirror.state(normalize_project(listed) or listed)  # type: ignore[arg-type]
            if state is not None and state.local:
                held.append(_held(state))
        return held


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
    return HeldProject(state.name, tuple(versions), tuple(files))


def _version_key(text: str) -> tuple[int, Version | str]:
    try:
        return 1, Version(text)
    except InvalidVersion:
        return 0, text
