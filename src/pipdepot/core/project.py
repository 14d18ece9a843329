"""A project's page as pipdepot keeps it: upstream's PEP 691 data, plus what is local.

Upstream's file entries are kept as the JSON objects upstream sent (or, for an
HTML upstream, as the JSON objects PEP 691 defines for the same data), so every
field upstream gives survives, known to pipdepot or not. Only ``url`` is made
absolute. :func:`local_path_of` maps an upstream file URL to the path pipdepot
serves it at, which keeps upstream's path (``/packages/...`` for PyPI).
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urljoin

from pipdepot.core.names import project_of_filename, version_of_filename

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from pypi_simple import ProjectPage

    from pipdepot.core.names import NormalizedName

__all__ = [
    "ADDED_SCHEME",
    "JSON_TYPE",
    "PROVENANCE_SUFFIX",
    "FileEntry",
    "LocalFile",
    "ProjectState",
    "UnusablePage",
    "entry_in_page",
    "fetched_at_of",
    "local_path_of",
    "parse_upstream_page",
    "project_of_path",
    "read_upstream_page",
    "stored_listing",
    "versions_of",
]

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
#: The URL scheme of files put in by ``pipdepot add``: they have no upstream to come from.
ADDED_SCHEME = "local://"
#: A file's PEP 740 provenance is kept and served beside it, as its PEP 658 metadata is (``.metadata``).
PROVENANCE_SUFFIX = ".provenance"
FileEntry = dict[str, Any]
#: Stored state formats: 1 held page and local files in one file; 2 is the page alone, beside a local
#: record; 3 is format 2 with one file entry per line.
_OLD_FORMAT = 1
_PAGE_FORMAT = 3
_PAGE_FORMATS = frozenset({_OLD_FORMAT, 2, _PAGE_FORMAT})
_LINES_PREFIX = b'{"format":3,'
_LOCAL_FORMAT = 1
_FORBIDDEN_SEGMENTS = frozenset({"", ".", ".."})
_COMPACT = json.JSONEncoder(separators=(",", ":"))
#: Bytes of a stored page searched at a time for one file's line. Small: the search runs in worker
#: threads, several at once, and 1 MiB blocks grew their heaps (a cold uv install's peak 85 -> 100 MB).
_SCAN_BLOCK = 64 * 1024


def __dir__() -> list[str]:
    return __all__


class UnusablePage(ValueError):  # noqa: N818 (reads as a sentence: raise UnusablePage)
    """Upstream answered with something that is not a project page."""


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file of the project present in the store, and its verified digests."""

    sha256: str
    size: int
    metadata_sha256: str | None = None


@dataclass(slots=True)
class ProjectState:
    """Everything known about one project: upstream's page and the local files."""

    name: NormalizedName
    upstream: str
    files: list[FileEntry]
    extra: dict[str, Any] = field(default_factory=dict)
    etag: str | None = None
    fetched_at: float = 0.0
    local: dict[str, LocalFile] = field(default_factory=dict)
    #: Bumped on every change, so rendered pages know they are stale.
    generation: int = 0
    #: Files put in by ``pipdepot add`` or uploaded; listed first in ``files``, kept when upstream's
    #: page changes. A project with any is private: see :attr:`private`.
    added: list[FileEntry] = field(default_factory=list)
    #: The project was allowed to show upstream's releases beside its own (``pipdepot allow-upstream``).
    merge_upstream: bool = False
    _paths: dict[str, str] | None = field(default=None, repr=False, compare=False)
    _by_path: dict[str, FileEntry] | None = field(default=None, repr=False, compare=False)
    _versions: list[str] | None = field(default=None, repr=False, compare=False)

    @property
    def private(self) -> bool:
        """Whether its pages list its own files only, never upstream's.

        A project with an uploaded or added file is private unless explicitly allowed to merge:
        else a newer upload of the same name upstream would be installed in its place
        (dependency confusion).
        """
        return bool(self.added) and not self.merge_upstream

    def merge_added(self) -> None:
        """List the added files first in ``files``; an upstream file of the same name is hidden."""
        names = {entry["filename"] for entry in self.added}
        upstream = [entry for entry in self.files if entry["filename"] not in names]
        self.files = [*self.added, *upstream]
        self._paths = self._by_path = self._versions = None

    def path_of(self, filename: str) -> str:
        """Where the file is served (``/packages/...``), computed once per state for all files.

        For the operations that look files up by name; pages and the server compute each
        entry's path as they go (:func:`local_path_of`), holding no dict of them all.
        """
        if self._paths is None:
            self._paths = {e["filename"]: local_path_of(e["url"], e["filename"]) for e in self.files}
        return self._paths[filename]

    def file_by_path(self, path: str) -> FileEntry | None:
        """The entry served at ``path`` (``/packages/...``)."""
        if self._by_path is None:
            self._by_path = {local_path_of(e["url"], e["filename"]): e for e in self.files}
        return self._by_path.get(path)

    def versions(self) -> list[str]:
        """PEP 700's ``versions``: upstream's own list when it gave one, else from the filenames."""
        if self._versions is None:
            given = self.extra.get("versions")
            if isinstance(given, list) and given:
                self._versions = [str(v) for v in given]
            else:
                self._versions = versions_of(self.files)
        return self._versions

    def write_page(self, stream: IO[bytes]) -> None:
        """Write upstream's page as stored beside the tree (large; rewritten only when upstream's changes).

        One file entry per line, so :func:`entry_in_page` finds one file's entry without
        parsing the page (a 15,000-file page is 15 MB of objects once parsed); written line by
        line, so the stored form is never whole in memory either.
        """
        files = self.files[len(self.added) :] if self.added else self.files
        head = json.dumps(
            {
                "format": _PAGE_FORMAT,
                "name": self.name,
                "upstream": self.upstream,
                "etag": self.etag,
                "fetched_at": self.fetched_at,
                "extra": self.extra,
                "all_sizes": all("size" in entry for entry in files),  # see stored_listing
            },
            separators=(",", ":"),
        )
        stream.write(head[:-1].encode() + b',"files":[\n')
        separator = b""
        encode = _COMPACT.encode  # one encoder for 15,000 lines, not one made per line
        for entry in files:
            stream.write(separator + encode(entry).encode())
            separator = b",\n"
        stream.write(b"\n]}")

    def local_json(self) -> bytes:
        """What is local, with each local file's entry (small; rewritten on every new file).

        The entries let the static tree be rewritten without reading upstream's page.
        """
        entries = {entry["filename"]: entry for entry in self.files if entry["filename"] in self.local}
        return json.dumps(
            {
                "format": _LOCAL_FORMAT,
                "name": self.name,
                "generation": self.generation,
                "extra": self.extra,
                "added": self.added,
                "merge_upstream": self.merge_upstream,
                "local": {
                    name: {
                        "sha256": f.sha256,
                        "size": f.size,
                        "metadata_sha256": f.metadata_sha256,
                        "entry": entries.get(name),
                    }
                    for name, f in self.local.items()
                },
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, page: bytes | None, local: bytes | None = None) -> ProjectState:
        """A state from its stored page and local record; either may be missing, not both.

        Without the page, ``files`` holds only the local files' entries: enough for the
        static tree, not for serving the project's page.

        :raises ValueError: they are not a stored state.
        """
        raw_page = json.loads(page) if page is not None else None
        raw_local = json.loads(local) if local is not None else None
        if raw_page is not None and raw_page.get("format") not in _PAGE_FORMATS:
            raise ValueError(f"unknown state format {raw_page.get('format')!r}")
        if raw_local is not None and raw_local.get("format") != _LOCAL_FORMAT:
            raise ValueError(f"unknown local record format {raw_local.get('format')!r}")
        if raw_local is None:  # a state from before the split keeps its local record inside
            raw_local = raw_page
        if raw_local is None or (raw_page is None and local is None):
            raise ValueError("neither a page nor a local record")
        records = raw_local.get("local", {})
        if raw_page is not None:
            state = cls(
                name=raw_page["name"],
                upstream=raw_page["upstream"],
                files=raw_page["files"],
                extra=raw_page["extra"],
                etag=raw_page["etag"],
                fetched_at=float(raw_page["fetched_at"]),
            )
        else:
            added = {entry["filename"] for entry in raw_local.get("added", [])}
            files = [r["entry"] for n, r in records.items() if r.get("entry") and n not in added]
            extra = {k: v for k, v in raw_local.get("extra", {}).items() if k != "versions"}  # upstream's all
            state = cls(name=raw_local["name"], upstream="", files=files, extra=extra)
        state.generation = int(raw_local.get("generation", 0))
        state.local = {
            name: LocalFile(r["sha256"], int(r["size"]), r.get("metadata_sha256"))
            for name, r in records.items()
        }
        state.added = raw_local.get("added", [])
        state.merge_upstream = bool(raw_local.get("merge_upstream", False))
        if state.added:
            state.merge_added()
        return state


def local_path_of(url: str, filename: str) -> str:
    """The path pipdepot serves an upstream file at; upstream's own path when it is ``/packages/...``.

    Called for every file of every page (4,000 times for a large one), so it splits
    the string itself rather than through ``urlsplit``.

    :raises UnusablePage: the URL's path could escape the tree or does not end in ``filename``.

    >>> local_path_of("https://files.example/packages/ab/cd/ef/x-1.0.tar.gz", "x-1.0.tar.gz")
    '/packages/ab/cd/ef/x-1.0.tar.gz'
    >>> local_path_of("http://m:8080/root/+f/1/x-1.0.tar.gz", "x-1.0.tar.gz")
    '/packages/+/m:8080/root/+f/1/x-1.0.tar.gz'
    """
    _, separator, rest = url.partition("://")
    netloc, _, path = rest.partition("/")
    path = path.partition("#")[0].partition("?")[0]
    segments = path.split("/")
    if "%" in path:
        segments = [unquote(segment) for segment in segments]
        unusable = any(
            s in _FORBIDDEN_SEGMENTS or s[0] == "." or "\\" in s or "\0" in s or "/" in s for s in segments
        )
    else:  # the same rules on the whole string: an empty segment or one starting with "."
        bounded = f"/{path}/"
        unusable = "//" in bounded or "/." in bounded or "\\" in path or "\0" in path
    if not separator or unusable:
        raise UnusablePage(f"unusable file URL path {path!r}")
    if segments[-1] != filename:
        raise UnusablePage(f"file URL {path!r} does not end in its filename {filename!r}")
    if segments[0] == "packages":
        return "/" + "/".join(segments)
    return "/packages/+/" + "/".join([netloc.rpartition("@")[2], *segments])


def fetched_at_of(page: bytes) -> float:
    """When a stored page was fetched, from its first line alone (``page`` may stop after it).

    :raises ValueError: the page is not stored one entry per line (an older format), or ``page``
        stops before its first line ends: parse it whole.
    """
    return float(json.loads(_first_line(io.BytesIO(page)) + b"]}")["fetched_at"])


def stored_listing(page: bytes | IO[bytes]) -> tuple[dict[str, Any], Iterator[FileEntry]]:
    """A stored page's head (its first line), and its file entries parsed one line at a time.

    A page can then be rendered without 15 MB of objects for a 15,000-file project; from an
    open file, without its 7 MB of bytes either.

    :raises ValueError: the page is not stored one entry per line (an older format).
    """
    stream = io.BytesIO(page) if isinstance(page, bytes) else page
    head = json.loads(_first_line(stream) + b"]}")

    def entries() -> Iterator[FileEntry]:
        for line in stream:
            if not line.endswith(b"\n"):  # the closing "]}"
                return
            if line != b"\n":  # a page of no files has an empty line
                yield json.loads(line[:-1].removesuffix(b","))

    return head, entries()


def entry_in_page(page: bytes | IO[bytes], filename: str) -> FileEntry | None:
    """The entry of ``filename`` in a stored page, read from its line alone.

    :raises ValueError: the page is not stored one entry per line (an older format): parse it whole.
    """
    stream = io.BytesIO(page) if isinstance(page, bytes) else page
    _first_line(stream)
    needle = b'"filename":' + json.dumps(filename).encode()
    rest = b""
    while block := stream.read(_SCAN_BLOCK):  # a block at a time: 4x faster than line by line
        block = rest + block
        whole = block.rfind(b"\n") + 1  # the lines ending in this block; the rest waits for the next
        lines, rest = block[:whole], block[whole:]
        found = lines.find(needle)
        while found != -1:
            start = lines.rfind(b"\n", 0, found) + 1
            entry = json.loads(lines[start : lines.find(b"\n", found)].removesuffix(b","))
            if isinstance(entry, dict) and entry.get("filename") == filename:
                return entry
            found = lines.find(needle, found + 1)
    return None  # what is left is the closing "]}"


def _first_line(stream: IO[bytes]) -> bytes:
    """A stored page's head line, without its newline.

    :raises ValueError: the page is not stored one entry per line (an older format).
    """
    first = stream.readline()
    if not first.startswith(_LINES_PREFIX) or not first.endswith(b'"files":[\n'):
        raise ValueError("not a page stored one entry per line")
    return first[:-1]


def read_upstream_page(path: Path, content_type: str) -> bytes | str:
    """A spooled upstream page's body, as :func:`parse_upstream_page` takes it with least memory.

    JSON is read as text: ``json.loads`` on bytes decodes a second copy of a body that can be
    6 MB (pydantic-core), held beside it while its 15 MB of objects are made.

    :raises UnusablePage: a JSON body that is not UTF-8.
    """
    if _media_type(content_type) != JSON_TYPE:
        return path.read_bytes()  # HTML: its charset is the parser's business
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UnusablePage(f"a JSON page that is not UTF-8: {exc}") from exc


def parse_upstream_page(
    name: NormalizedName, body: bytes | str, content_type: str, page_url: str, upstream: str
) -> ProjectState:
    """Turn upstream's project page (PEP 691 JSON or PEP 503 HTML) into a :class:`ProjectState`.

    :raises UnusablePage: the body is not a project page.
    """
    media = _media_type(content_type)
    if media == JSON_TYPE:
        files, extra = _from_json(body, page_url)
    elif media in {"text/html", "application/vnd.pypi.simple.v1+html"}:
        files, extra = _from_html(name, body, page_url)
    else:
        raise UnusablePage(f"unexpected content type {content_type!r}")
    for entry in files:
        local_path_of(entry["url"], entry["filename"])  # validates every URL up front
    return ProjectState(name=name, upstream=upstream, files=files, extra=extra, fetched_at=time.time())


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _from_json(body: bytes | str, page_url: str) -> tuple[list[FileEntry], dict[str, Any]]:
    try:
        data = json.loads(body)
        major = str(data["meta"]["api-version"]).split(".", 1)[0]
        files = data["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UnusablePage(f"not a PEP 691 project page: {exc}") from exc
    if major != "1" or not isinstance(files, list):
        raise UnusablePage(f"unsupported api-version {data['meta'].get('api-version')!r}")
    for entry in files:  # changed in place: a large page's entries are not copied
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str) or "url" not in entry:
            raise UnusablePage("a file entry lacks filename or url")
        url = str(entry["url"])
        if "://" not in url:
            entry["url"] = urljoin(page_url, url)
        if "dist-info-metadata" in entry:
            entry.setdefault("core-metadata", entry.pop("dist-info-metadata"))
        provenance = entry.get("provenance")
        if isinstance(provenance, str) and provenance and "://" not in provenance:
            entry["provenance"] = urljoin(page_url, provenance)
    extra = {k: v for k, v in data.items() if k not in {"meta", "name", "files"}}
    tracks = data["meta"].get("tracks")  # PEP 708 puts it in ``meta``: kept with the project's keys
    if isinstance(tracks, list) and tracks:
        extra["tracks"] = tracks
    return files, extra


def _from_html(
    name: NormalizedName, body: bytes | str, page_url: str
) -> tuple[list[FileEntry], dict[str, Any]]:
    from pypi_simple import ProjectPage  # noqa: PLC0415 (bs4 is slow to import; HTML upstreams are rare)

    try:
        page = ProjectPage.from_html(name, body, base_url=page_url)
    except Exception as exc:  # pypi-simple raises from bs4 and its own checks alike
        raise UnusablePage(f"not a PEP 503 project page: {exc}") from exc
    entries: list[FileEntry] = []
    for package in page.packages:
        entry: FileEntry = {"filename": package.filename, "url": package.url, "hashes": dict(package.digests)}
        if package.requires_python is not None:
            entry["requires-python"] = package.requires_python
        entry["yanked"] = (package.yanked_reason or True) if package.is_yanked else False
        if package.has_metadata:
            entry["core-metadata"] = dict(package.metadata_digests or {}) or True
        if package.has_sig is not None:
            entry["gpg-sig"] = package.has_sig
        if package.provenance_url is not None:
            entry["provenance"] = urljoin(page_url, package.provenance_url)
        entries.append(entry)
    return entries, _html_extra(page)


def _html_extra(page: ProjectPage) -> dict[str, Any]:
    """The project-level keys of an HTML page's ``pypi:`` meta elements, as PEP 691 JSON has them."""
    extra: dict[str, Any] = {}
    if page.tracks:  # PEP 708 (``meta.tracks`` in JSON: pages put it back there)
        extra["tracks"] = list(page.tracks)
    if page.alternate_locations:
        extra["alternate-locations"] = list(page.alternate_locations)
    if page.status is not None:
        extra["project-status"] = {"status": page.status}
        if page.status_reason:
            extra["project-status"]["reason"] = page.status_reason
    return extra


def versions_of(files: list[FileEntry]) -> list[str]:
    """The versions the files belong to, for PEP 700's ``versions``."""
    found = {version_of_filename(cast("str", entry["filename"])) for entry in files}
    return sorted(v for v in found if v is not None)


def project_of_path(path: str) -> NormalizedName | None:
    """The project a served file path belongs to, from its filename (or its metadata or provenance file's)."""
    filename = path.rsplit("/", 1)[-1]
    return project_of_filename(filename.removesuffix(".metadata").removesuffix(PROVENANCE_SUFFIX))
