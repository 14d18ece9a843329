"""Simple API pages (PEP 503 HTML, PEP 691 JSON), content negotiation, compression. Pure.

A page is rendered once per state generation and kept, compressed, by the
caller; nothing here does I/O.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import itertools
import json
import zlib
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any, Literal

import zstandard

from pipdepot.core.project import JSON_TYPE, PROVENANCE_SUFFIX, local_path_of, versions_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from pipdepot.core.project import FileEntry, LocalFile, ProjectState

__all__ = [
    "HTML_TYPE",
    "JSON_TYPE",
    "Encoding",
    "Format",
    "RenderedPage",
    "choose_encoding",
    "listed_entry",
    "listed_files",
    "negotiate",
    "page_files",
    "render_listing",
    "render_project_html",
    "render_project_json",
    "render_root_html",
    "render_root_json",
    "render_tree_html",
]

HTML_TYPE = "application/vnd.pypi.simple.v1+html"
API_VERSION = "1.4"
LEGACY_API_VERSION = "1.0"

Format = Literal["json", "html", "text/html"]
Encoding = Literal["zstd", "gzip"]
_LARGE_PAGE = 256 * 1024
#: Files rendered at a time: a large page is made in pieces, never whole.
_BATCH = 256
_COMPACT = json.JSONEncoder(separators=(",", ":"))
_OFFERS: dict[str, Format] = {JSON_TYPE: "json", HTML_TYPE: "html", "text/html": "text/html"}
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON_TYPE,
    "application/vnd.pypi.simple.latest+html": HTML_TYPE,
}
#: Extra keys not rendered at the top of a JSON page: ``versions`` is computed, ``tracks`` is ``meta``'s.
_NOT_TOP_LEVEL = frozenset({"versions", "tracks"})
CONTENT_TYPES: dict[Format, str] = {"json": JSON_TYPE, "html": HTML_TYPE, "text/html": "text/html"}


def __dir__() -> list[str]:
    return __all__


@dataclass(slots=True)
class RenderedPage:
    """One representation of a page; each compressed form is made once, when first asked for.

    A large page keeps only its compressed forms, from the first client's on (pip asks for gzip,
    uv for zstd: a mirror serving one kind never holds the other's form); the rare client that
    wants it plain gets it decompressed on the fly.
    """

    plain: bytes | None
    content_type: str
    etag: str
    encoded: dict[Encoding, bytes] = field(default_factory=dict)

    @classmethod
    def of(cls, chunks: Iterable[bytes], content_type: str, encoding: Encoding | None) -> RenderedPage:
        """Fingerprint the page and compress it with ``encoding``, the first client's, as it is rendered.

        A large page is never whole in memory: each chunk is hashed, compressed and dropped.
        """
        fingerprint = hashlib.blake2b(digest_size=12)
        compressor = None
        kept: list[bytes] | None = []
        size = 0
        for chunk in chunks:
            fingerprint.update(chunk)
            if kept is None:
                assert compressor is not None  # noqa: S101 (only a compressed page stops keeping chunks)
                compressor.feed(chunk)
                continue
            kept.append(chunk)
            size += len(chunk)
            if encoding is not None and size >= _LARGE_PAGE:  # large: compressed from here on, not kept
                compressor = _Compressor(encoding, large=True)
                for part in kept:
                    compressor.feed(part)
                kept = None
        page = cls(None if kept is None else b"".join(kept), content_type, f'"{fingerprint.hexdigest()}"')
        if compressor is not None:
            page.encoded[compressor.encoding] = compressor.finish()
        elif encoding is not None:
            page.encode(encoding)
        return page

    @property
    def body(self) -> bytes:
        """The uncompressed page."""
        if self.plain is not None:
            return self.plain
        encoding, data = next(iter(self.encoded.items()))
        if encoding == "gzip":
            return gzip.decompress(data)
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)  # a streamed frame has no size

    def encode(self, encoding: Encoding) -> bytes:
        """The body compressed with ``encoding``, made once and kept."""
        data = self.encoded.get(encoding)
        if data is None:
            body = self.body
            compressor = _Compressor(encoding, large=len(body) >= _LARGE_PAGE, size=len(body))
            compressor.feed(body)
            data = self.encoded[encoding] = compressor.finish()
            if self.plain is not None and len(self.plain) >= _LARGE_PAGE:
                self.plain = None
        return data

    @property
    def size(self) -> int:
        """Bytes held, for the cache's budget."""
        return len(self.plain or b"") + sum(len(data) for data in self.encoded.values())


class _Compressor:
    """gzip or zstd over a page's chunks, so a large page is never whole in memory."""

    def __init__(self, encoding: Encoding, *, large: bool, size: int = -1) -> None:
        """``size``: the whole page's, when known, for zstd's frame header (-1: streamed, not said)."""
        self.encoding = encoding
        self._parts: list[bytes] = []
        self._compressor: zlib._Compress | zstandard.ZstdCompressionObj
        if encoding == "zstd":
            self._compressor = zstandard.ZstdCompressor(level=3).compressobj(size=size)
        else:  # on a 4,400-file page, level 3 takes half the time of 6 for 8 % more bytes
            self._compressor = zlib.compressobj(3 if large else 6, zlib.DEFLATED, 31)  # gzip framing

    def feed(self, chunk: bytes) -> None:
        self._parts.append(self._compressor.compress(chunk))

    def finish(self) -> bytes:
        self._parts.append(self._compressor.flush())
        return b"".join(self._parts)


@functools.lru_cache(maxsize=256)  # as for negotiate: one answer per header string
def choose_encoding(accept_encoding: str) -> Encoding | None:
    """Zstd when the client takes it (smaller, faster), else gzip, else none.

    >>> choose_encoding("gzip, deflate, br, zstd")
    'zstd'
    >>> choose_encoding("gzip;q=0, identity") is None
    True
    """
    accepted = {media for media, q in _parse_accept(accept_encoding) if q > 0}
    for encoding in ("zstd", "gzip"):
        if encoding in accepted:
            return encoding
    return None


@functools.lru_cache(maxsize=256)  # clients send the same few header strings, request after request
def negotiate(accept: str | None, format_param: str | None) -> Format | None:
    """Pick the representation for ``Accept`` (q-values honoured) or ``?format=``.

    ``None`` means nothing acceptable (406). No ``Accept`` or only wildcards gives
    ``text/html``, as PyPI does, so browsers and curl see HTML.

    >>> negotiate("application/vnd.pypi.simple.v1+json, text/html;q=0.01", None)
    'json'
    >>> negotiate(None, None)
    'text/html'
    """
    if format_param is not None:
        return _OFFERS.get(_ALIASES.get(format_param, format_param))
    if not accept:
        return "text/html"
    best: tuple[float, int, int] | None = None
    chosen: Format | None = None
    for preference, (offer, fmt) in enumerate(reversed(_OFFERS.items())):
        for media, q in _parse_accept(accept):
            if _ALIASES.get(media, media) == offer:
                specificity, rank = 2, preference
            elif media.endswith("/*") and offer.startswith(media[:-1]):
                specificity, rank = 1, preference
            elif media == "*/*":
                specificity, rank = 0, -preference  # anything: HTML, as PyPI answers browsers
            else:
                continue
            score = (q, specificity, rank)
            if q > 0 and (best is None or score > best):
                best, chosen = score, fmt
    return chosen


def _parse_accept(accept: str) -> Iterable[tuple[str, float]]:
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media:
            yield media.lower(), q


def page_files(state: ProjectState, *, local_only: bool) -> list[FileEntry]:
    """The entries a page lists: all of upstream's, or only files present locally.

    A private project lists its own (added, uploaded) files only, whatever else is known.
    Entries get the local metadata hash when pipdepot extracted the metadata itself.
    """
    files = []
    for entry in state.added if state.private else state.files:
        local = state.local.get(entry["filename"])
        if (local_only or state.private) and local is None:
            continue
        files.append(listed_entry(entry, local))
    return files


def listed_files(entries: Iterable[FileEntry], record: ProjectState) -> Iterator[FileEntry]:
    """What upstream's whole page lists, one entry at a time, as :func:`page_files` does.

    ``entries`` are read from the stored page, ``record`` is the local record: no parsed state.
    """
    added = {entry["filename"] for entry in record.added}
    for entry in record.added:
        yield listed_entry(entry, record.local.get(entry["filename"]))
    for entry in entries:
        if entry["filename"] not in added:  # hidden by the added file of that name
            yield listed_entry(entry, record.local.get(entry["filename"]))


def listed_entry(entry: FileEntry, local: LocalFile | None) -> FileEntry:
    """The entry as pages list it, with the size, sha256 and metadata hash known from the local file."""
    if local is None:
        return entry
    updated = dict(entry)
    if not updated.get("core-metadata") and local.metadata_sha256:
        updated["core-metadata"] = {"sha256": local.metadata_sha256}
    if "size" not in updated:
        updated["size"] = local.size
    hashes = dict(updated.get("hashes") or {})
    hashes.setdefault("sha256", local.sha256)
    updated["hashes"] = hashes
    return updated


def render_project_json(state: ProjectState, files: list[FileEntry]) -> Iterator[bytes]:
    """PEP 691 JSON, in chunks; api-version 1.4 when every file has a size (PEP 700), else 1.0."""
    version = API_VERSION if all("size" in f for f in files) else LEGACY_API_VERSION
    # A page of local files only names only their versions: nothing uninstallable is offered.
    whole = len(files) == len(state.files) and not state.private
    versions = state.versions() if whole else versions_of(files)
    return _json(
        state.name,
        _extra_of(state),
        versions=versions,
        api_version=version,
        files=files,
        path_of=_served_path,
    )


def render_project_html(state: ProjectState, files: list[FileEntry]) -> Iterator[bytes]:
    """PEP 503 HTML in chunks, with every attribute the data allows; links are absolute paths."""
    return _html(state.name, _extra_of(state), files, _served_path)


def _extra_of(state: ProjectState) -> dict[str, Any]:
    """The page's project-level data: upstream's, which a private project's page does not show."""
    return {} if state.private else state.extra


def render_tree_html(state: ProjectState, files: list[FileEntry]) -> bytes:
    """The static tree's ``<project>/index.html``: relative links, so ``file://`` and nginx work."""
    return b"".join(_html(state.name, _extra_of(state), files, lambda e: ".." + _served_path(e)))


def render_listing(
    name: str, extra: dict[str, Any], files: Iterable[FileEntry], fmt: Format
) -> Iterator[bytes]:
    """Upstream's whole page as ``fmt``, from entries read one at a time, as the renders above make it.

    For a page whose every file has a size and whose ``extra`` holds upstream's ``versions``
    (what PyPI gives): the only cases where the page's head is known before its files.
    """
    if fmt == "json":
        versions = [str(v) for v in extra["versions"]]
        return _json(
            name,
            extra,
            versions=versions,
            api_version=API_VERSION,
            files=files,
            path_of=_served_path,
        )
    return _html(name, extra, files, _served_path)


def _served_path(entry: FileEntry) -> str:
    """Computed per entry as it is rendered: a dict of a 15,000-file page's paths is 3 MB."""
    return local_path_of(entry["url"], entry["filename"])


def _json(  # noqa: PLR0913 (the page's parts, each computed by the caller)
    name: str,
    extra: dict[str, Any],
    *,
    versions: list[str],
    api_version: str,
    files: Iterable[FileEntry],
    path_of: Callable[[FileEntry], str],
) -> Iterator[bytes]:
    meta: dict[str, object] = {"api-version": api_version}
    head: dict[str, object] = {"meta": meta, "name": name}
    head.update({k: v for k, v in extra.items() if k not in _NOT_TOP_LEVEL})
    if "tracks" in extra:  # PEP 708: the one project key that ``meta`` holds
        meta["tracks"] = extra["tracks"]
    head["versions"] = versions
    yield json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"files":['
    separator = b""
    for batch in _batches(files):
        served = []
        for entry in batch:
            item = dict(entry)
            item["url"] = path_of(entry)
            item.setdefault("hashes", {})
            if _has_provenance(entry):  # upstream's URL: served by pipdepot beside the file instead
                item["provenance"] = item["url"] + PROVENANCE_SUFFIX
            served.append(item)
        yield separator + _COMPACT.encode(served)[1:-1].encode()
        separator = b","
    yield b"]}"


def _html(
    project: str, extra: dict[str, Any], files: Iterable[FileEntry], href_of: Callable[[FileEntry], str]
) -> Iterator[bytes]:
    name = escape(project)
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        f'<meta name="pypi:repository-version" content="{API_VERSION}">',
    ]
    for key in ("tracks", "alternate-locations"):  # PEP 708: one element per URL
        lines += [f'<meta name="pypi:{key}" content="{escape(url)}">' for url in _urls(extra.get(key))]
    status = extra.get("project-status")
    if isinstance(status, dict) and status.get("status"):
        lines.append(f'<meta name="pypi:project-status" content="{escape(str(status["status"]))}">')
        if status.get("reason"):
            lines.append(
                f'<meta name="pypi:project-status-reason" content="{escape(str(status["reason"]))}">'
            )
    lines += [f"<title>Links for {name}</title>", "</head>", "<body>", f"<h1>Links for {name}</h1>", ""]
    yield "\n".join(lines).encode()
    for batch in _batches(files):
        yield ("\n".join(_anchor(entry, href_of(entry)) for entry in batch) + "\n").encode()
    yield b"</body>\n</html>\n"


def _urls(value: object) -> list[str]:
    """A PEP 708 list of URLs as upstream gave it; anything else is not rendered."""
    return [url for url in value if isinstance(url, str)] if isinstance(value, list) else []


def _has_provenance(entry: FileEntry) -> bool:
    """Whether upstream declares a PEP 740 provenance file (a URL; ``null`` or absent: none)."""
    provenance = entry.get("provenance")
    return isinstance(provenance, str) and bool(provenance)


def _batches(files: Iterable[FileEntry]) -> Iterator[list[FileEntry]]:
    iterator = iter(files)
    while batch := list(itertools.islice(iterator, _BATCH)):
        yield batch


def _anchor(entry: FileEntry, href: str) -> str:
    hashes = entry.get("hashes") or {}
    fragment = ""
    for algorithm in ("sha256", "sha384", "sha512", "sha224", "sha1", "md5"):
        if algorithm in hashes:
            fragment = f"#{algorithm}={hashes[algorithm]}"
            break
    attributes = [f'href="{escape(href + fragment)}"']
    if entry.get("requires-python"):
        attributes.append(f'data-requires-python="{escape(str(entry["requires-python"]))}"')
    yanked = entry.get("yanked")
    if yanked:
        attributes.append("data-yanked" if yanked is True else f'data-yanked="{escape(str(yanked))}"')
    metadata = entry.get("core-metadata")
    if metadata:
        value = (
            f"sha256={metadata['sha256']}" if isinstance(metadata, dict) and "sha256" in metadata else "true"
        )
        # PEP 714's name only, as PyPI: pip 22.3-23.1 read the old ``data-dist-info-metadata`` and
        # then refuse a file whose metadata Name is not normalized (pydantic_core: pypa/pip#12038).
        attributes.append(f'data-core-metadata="{value}"')
    if "gpg-sig" in entry and entry["gpg-sig"] is not None:
        attributes.append(f'data-gpg-sig="{"true" if entry["gpg-sig"] else "false"}"')
    if _has_provenance(entry):  # PEP 740, at pipdepot's own URL beside the file (relative if ``href`` is)
        attributes.append(f'data-provenance="{escape(href + PROVENANCE_SUFFIX)}"')
    return f"<a {' '.join(attributes)}>{escape(entry['filename'])}</a><br>"


def render_root_html(names: Iterable[str]) -> bytes:
    """The root page: one link per project, relative, so it works served and static."""
    links = "\n".join(f'<a href="{escape(n)}/">{escape(n)}</a><br>' for n in names)
    head = f'<meta name="pypi:repository-version" content="{API_VERSION}"><title>Simple index</title>'
    return f"<!DOCTYPE html>\n<html>\n<head>{head}</head>\n<body>\n{links}\n</body>\n</html>\n".encode()


def render_root_json(names: Iterable[str]) -> bytes:
    """The root page as PEP 691 JSON."""
    document = {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in names]}
    return json.dumps(document, separators=(",", ":")).encode()
