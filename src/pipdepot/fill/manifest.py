"""An export archive's manifest, checked whole before anything is read from the archive (pure).

The manifest comes from another machine: every name, path, hash and size in it
is checked here, so ``import`` refuses a bad archive before its first write, in
one line, and unpacks only the members the manifest names, no larger than it says.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipdepot.core.names import normalize_project
from pipdepot.core.project import UnusablePage, local_path_of

if TYPE_CHECKING:
    from pipdepot.core.names import NormalizedName
    from pipdepot.core.project import FileEntry

__all__ = ["FORMAT", "MANIFEST", "ManifestError", "Record", "read_manifest"]

MANIFEST = "pipdepot-export.json"
FORMAT = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FORBIDDEN = frozenset({"", ".", ".."})


def __dir__() -> list[str]:
    return __all__


class ManifestError(ValueError):
    """The manifest is damaged or lies; the message is one line."""


@dataclass(frozen=True, slots=True)
class Record:
    """One file the archive carries, as its manifest describes it."""

    project: NormalizedName
    entry: FileEntry
    #: Where the file goes in the mirror, and its member ``files/<path>`` in the archive.
    path: str
    sha256: str
    size: int
    metadata_sha256: str | None
    added: bool
    upstream: str
    extra: dict[str, object]
    #: The project lists upstream's releases beside its own (``pipdepot allow-upstream``).
    merge_upstream: bool = False

    @property
    def filename(self) -> str:
        """The file's name, as its entry gives it."""
        return str(self.entry["filename"])


def read_manifest(manifest: object) -> list[Record]:
    """Every file record, after checking all of them.

    :raises ManifestError: anything in it is missing, of the wrong type, unsafe, or inconsistent.
    """
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise ManifestError(f"unknown export format {found!r}")
    projects = manifest.get("projects")
    if not isinstance(projects, dict):
        raise ManifestError("no projects")
    records: list[Record] = []
    for project, data in projects.items():
        name = normalize_project(project) if isinstance(project, str) else None
        if name is None:
            raise ManifestError(f"invalid project name {project!r}")
        if not isinstance(data, dict) or not isinstance(data.get("files"), list):
            raise ManifestError(f"{name}: no list of files")
        upstream, extra = data.get("upstream"), data.get("extra")
        if not isinstance(upstream, str) or not isinstance(extra, dict):
            raise ManifestError(f"{name}: no upstream or extra")
        merge = data.get("merge_upstream", False)  # absent from archives before it was carried
        if not isinstance(merge, bool):
            raise ManifestError(f"{name}: merge_upstream is not true or false")
        for index, item in enumerate(data["files"]):
            try:
                record = _record(name, item, upstream, extra)
                records.append(dataclasses.replace(record, merge_upstream=merge))
            except ManifestError as exc:
                raise ManifestError(f"{name}, file {index + 1}: {exc}") from None
    _unique([r.path for r in records], "path")
    _unique([(r.project, r.filename) for r in records], "file")
    return records


def _record(name: NormalizedName, item: object, upstream: str, extra: dict[str, object]) -> Record:
    if not isinstance(item, dict):
        raise ManifestError("not an object")
    entry, path = item.get("entry"), item.get("path")
    if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
        raise ManifestError("no entry with a filename")
    filename = entry["filename"]
    _check_place(entry, path)
    sha256, size, metadata_sha256 = item.get("sha256"), item.get("size"), item.get("metadata_sha256")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ManifestError(f"{filename}: no sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{filename}: no size")
    if metadata_sha256 is not None and not (
        isinstance(metadata_sha256, str) and _SHA256.fullmatch(metadata_sha256)
    ):
        raise ManifestError(f"{filename}: bad metadata_sha256")
    if not isinstance(item.get("added"), bool):
        raise ManifestError(f"{filename}: no added flag")
    hashes = entry.get("hashes")
    if hashes is not None and (not isinstance(hashes, dict) or hashes.get("sha256", sha256) != sha256):
        raise ManifestError(f"{filename}: its entry's sha256 is not the file's")
    if entry.get("size") not in (None, size):
        raise ManifestError(f"{filename}: its entry's size is not the file's")
    return Record(name, entry, str(path), sha256, size, metadata_sha256, item["added"], upstream, dict(extra))


def _check_place(entry: dict[str, Any], path: object) -> None:
    """:raises ManifestError: ``path`` is unsafe, or not where the mirror serves the entry's url."""
    if not isinstance(entry.get("url"), str):
        raise ManifestError(f"{entry['filename']}: no url")
    if not isinstance(path, str) or not _safe(path):
        raise ManifestError(f"unsafe path {path!r}")
    try:
        served = local_path_of(entry["url"], entry["filename"]).removeprefix("/")
    except UnusablePage as exc:
        raise ManifestError(str(exc)) from None
    if served != path:
        raise ManifestError(f"path {path!r} is not where its url {entry['url']!r} puts it")


def _safe(path: str) -> bool:
    """A relative path under ``packages/`` with no empty, ``.`` or ``..`` segment."""
    segments = path.split("/")
    return (
        segments[0] == "packages"
        and len(segments) > 1
        and not any(s in _FORBIDDEN or "\\" in s or "\0" in s for s in segments)
    )


def _unique(keys: list[Any], what: str) -> None:
    seen: set[Any] = set()
    for key in keys:
        if key in seen:
            raise ManifestError(f"the {what} {key!r} is listed twice")
        seen.add(key)
