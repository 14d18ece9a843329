"""Which file of a pinned version a target installs: the wheel pip would pick there, else the sdist. Pure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from pipdepot.core.names import version_of_filename

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from pipdepot.core.project import FileEntry
    from pipdepot.core.targets import Target
    from pipdepot.fill.lockfiles import Pin

__all__ = ["choose_file", "files_of_version"]


def __dir__() -> list[str]:
    return __all__


def files_of_version(entries: Iterable[FileEntry], version: str) -> list[FileEntry]:
    """The entries of ``version`` (``1.0`` matches ``1.0.0``: versions compare, strings do not)."""
    wanted = _version(version)
    return [e for e in entries if _version(version_of_filename(e["filename"]) or "") == wanted]


def choose_file(
    entries: Iterable[FileEntry],
    pin: Pin,
    target: Target,
    *,
    usable: Callable[[FileEntry], bool] | None = None,
) -> FileEntry | None:
    """The best file of ``pin`` for ``target`` among ``entries``, or ``None``.

    Only files the pin allows (by name and sha256) and ``usable`` accepts count.
    Wheels are ranked by the target's tag order, as pip ranks them; an sdist
    is taken only when no wheel fits.
    """
    best: tuple[tuple[int, tuple[int, str] | tuple[()]], FileEntry] | None = None
    sdist: FileEntry | None = None
    for entry in files_of_version(entries, pin.version):
        filename = entry["filename"]
        if pin.filenames and filename not in pin.filenames:
            continue
        if pin.hashes and (entry.get("hashes") or {}).get("sha256", "").lower() not in pin.hashes:
            continue
        if usable is not None and not usable(entry):
            continue
        if filename.endswith(".whl"):
            try:
                _, _, build, tag_set = parse_wheel_filename(filename)
            except InvalidWheelFilename:
                continue
            rank = target.rank(tag_set)
            if rank is None:
                continue
            # the best tag first; then, as pip does, the highest build number
            key = (rank, (-build[0], build[1]) if build else ())
            if best is None or _before(key, best[0]):
                best = (key, entry)
        elif sdist is None or filename.endswith(".tar.gz"):
            sdist = entry
    return best[1] if best is not None else sdist


def _before(
    key: tuple[int, tuple[int, str] | tuple[()]], other: tuple[int, tuple[int, str] | tuple[()]]
) -> bool:
    """Whether a wheel ranked ``key`` beats one ranked ``other``; no build tag counts as build 0."""
    return (key[0], key[1] or (0, "")) < (other[0], other[1] or (0, ""))


def _version(text: str) -> Version | str:
    try:
        return Version(text)
    except InvalidVersion:
        return text
