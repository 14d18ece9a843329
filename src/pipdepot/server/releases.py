"""What the mirror's owner decides about its own releases: yanked (PEP 592), merged with upstream or not.

Both are kept in the project's local record, so every process serving the store shows the
change within a second (:mod:`records`), and the static tree is rewritten with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from pipdepot.core.names import version_of_filename

if TYPE_CHECKING:
    from collections.abc import Callable

    from pipdepot.core.names import NormalizedName
    from pipdepot.core.project import ProjectState
    from pipdepot.server.pagecache import PageCache
    from pipdepot.server.records import Records
    from pipdepot.server.tree import Tree

__all__ = ["Releases"]


def __dir__() -> list[str]:
    return __all__


class Releases:
    """Yank, unyank, and allow a private project to show upstream's releases."""

    def __init__(self, records: Records, tree: Tree, pages: PageCache) -> None:
        self.records = records
        self.tree = tree
        self.pages = pages

    async def yank(self, name: NormalizedName, version: str, yanked: str | bool) -> list[str]:
        """Mark the project's own files of ``version`` yanked (``True`` or a reason) or not (``False``).

        Only uploaded and added files: upstream's are upstream's to yank.

        :returns: the files of that version (empty: the project has none of its own).
        :raises InvalidVersion: ``version`` is not a version.
        """
        wanted = Version(version)
        found: list[str] = []

        def mark(state: ProjectState) -> bool:
            found[:] = [e["filename"] for e in state.added if _version(e["filename"]) == wanted]
            changed = False
            for entry in state.added:
                if entry["filename"] in found and (entry.get("yanked") or False) != yanked:
                    entry["yanked"] = yanked
                    changed = True
            if changed:
                state.merge_added()
            return changed

        await self._change(name, mark)
        return found

    async def allow_upstream(self, name: NormalizedName, *, allowed: bool) -> None:
        """Let the project's pages list upstream's releases beside its own, or stop that."""

        def switch(state: ProjectState) -> bool:
            if state.merge_upstream == allowed:
                return False
            state.merge_upstream = allowed
            return True

        await self._change(name, switch)

    async def _change(self, name: NormalizedName, change: Callable[[ProjectState], bool]) -> None:
        async with self.records.lock(name):
            await self.records.update(name, change)
            self.pages.drop(name)
            await self.tree.write_project(name)


def _version(filename: str) -> Version | None:
    text = version_of_filename(filename)
    try:
        return Version(text) if text is not None else None
    except InvalidVersion:
        return None
