"""The local mirror directory as a ``file://`` index sees it (a PEP 503 tree)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipdepot.element.plan import MirrorState

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["inspect_mirror"]


def __dir__() -> list[str]:
    return __all__


def inspect_mirror(directory: Path) -> MirrorState:
    """Whether ``directory`` is missing, empty, or holds at least one ``<project>/index.html``.

    pip and uv read only ``<index>/<project>/index.html`` from a ``file://``
    index, so a directory of bare wheels counts as empty.
    """
    if not directory.is_dir():
        return MirrorState.MISSING
    for project in directory.iterdir():
        if (project / "index.html").is_file():
            return MirrorState.READY
    return MirrorState.EMPTY
