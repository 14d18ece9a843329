"""PyPI's JSON API (``/pypi/<project>/json``), the subset its clients read, from a project page. Pure.

pip-compile ``--generate-hashes`` takes every file's sha256 of a pinned version from
``releases``, and hashes the files itself (downloading every candidate) when the API is
missing; Renovate asks it first too. Everything here comes from the entries a page lists
and, for ``info``'s text fields, the release's stored core metadata: nothing is downloaded
to answer. What is unknown is ``null``, never made up.
"""

from __future__ import annotations

import json
import re
import string
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from email.errors import MessageError
from typing import TYPE_CHECKING

from packaging.metadata import parse_email
from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

from pipdepot.core.names import version_of_filename
from pipdepot.core.project import FileEntry, local_path_of
from pipdepot.server.pages import RenderedPage
from pipdepot.storage.store import StoreKey

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pipdepot.server.pages import Encoding

__all__ = [
    "CONTENT_TYPE",
    "ApiPath",
    "DocumentKey",
    "Documents",
    "Releases",
    "choose_version",
    "find_version",
    "latest_version",
    "metadata_keys",
    "parse_api_path",
    "releases_of",
    "render_document",
    "render_page",
]

CONTENT_TYPE = "application/json"
#: A release's files, by version as written in its filenames (normalized), oldest version first.
Releases = dict[str, list[FileEntry]]
#: PEP 691 hash names, as PyPI's JSON API names its ``digests``.
_DIGESTS = {"md5": "md5", "sha256": "sha256", "blake2b_256": "blake2b_256"}
_BLAKE2B_256_HEX = 64
#: Bytes of rendered documents kept (pydantic-core's, 15,000 files: 9.8 MB, 1.9 MB gzipped).
_DOCUMENT_BYTES = 16 * 1024 * 1024
#: What a document is made of: project, its generation, local files only, version, whether all
#: releases, the base URL, and the stored metadata read for ``info``.
DocumentKey = tuple[str, int, bool, str, bool, str, StoreKey | None]


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class ApiPath:
    """A JSON API request: the project name as typed, the version if any, and the path around the name."""

    typed: str
    version: str | None
    before: str
    after: str

    def path_for(self, name: str) -> str:
        """The same request for ``name`` (the normalized name a redirect goes to)."""
        return f"{self.before}{name}{self.after}"


class Documents:
    """Rendered documents, kept by what they are made of within a byte budget, as pages are.

    A large project's document takes a quarter of a second to make; its page's generation
    changes whenever what it lists does.
    """

    def __init__(self, budget: int = _DOCUMENT_BYTES) -> None:
        self.budget = budget
        self._kept: OrderedDict[DocumentKey, RenderedPage] = OrderedDict()
        self._bytes = 0

    def get(self, key: DocumentKey) -> RenderedPage | None:
        """The document made of ``key``, if kept."""
        page = self._kept.get(key)
        if page is not None:
            self._kept.move_to_end(key)
        return page

    def keep(self, key: DocumentKey, page: RenderedPage) -> RenderedPage:
        """Keep ``page``, dropping the least recently used beyond the budget; ``page``."""
        old = self._kept.pop(key, None)
        self._bytes += page.size - (old.size if old is not None else 0)
        self._kept[key] = page
        while self._bytes > self.budget and len(self._kept) > 1:
            _, dropped = self._kept.popitem(last=False)
            self._bytes -= dropped.size
        return page


def parse_api_path(path: str) -> ApiPath | None:
    """The JSON API request ``path`` names, or ``None`` when it is not one.

    ``/pypi/<p>/json``, ``/pypi/<p>/<v>/json`` and ``/<p>/json`` (pip-tools 7.6 derives it from
    the index URL), each also under ``/simple/`` (pip-tools 7.5 and older asks
    ``<index URL>pypi/<p>/json``) and with a trailing slash, as PyPI answers both.

    >>> parse_api_path("/pypi/Six/1.17.0/json")
    ApiPath(typed='Six', version='1.17.0', before='/pypi/', after='/1.17.0/json')
    >>> parse_api_path("/simple/six/json/").path_for("six")
    '/simple/six/json/'
    >>> parse_api_path("/six/") is None
    True
    """
    prefix = "/simple/" if path.startswith("/simple/") else "/"
    rest = path[len(prefix) :]
    slash = "/" if rest.endswith("/") else ""
    segments = rest.removesuffix("/").split("/")
    if len(segments) < 2 or segments[-1] != "json" or not all(segments):
        return None
    if len(segments) == 2:
        return ApiPath(segments[0], None, prefix, "/json" + slash)
    if segments[0] != "pypi" or len(segments) > 4:
        return None
    version = segments[2] if len(segments) == 4 else None
    after = f"/{version}/json" if version is not None else "/json"
    return ApiPath(segments[1], version, prefix + "pypi/", after + slash)


def releases_of(files: Iterable[FileEntry]) -> Releases:
    """The files grouped by version, versions in ascending order, files by filename.

    A file whose version cannot be read from its name (or is not a PEP 440 version) is left out.
    """
    grouped: dict[Version, list[FileEntry]] = {}
    parsed: dict[str, Version | None] = {}  # a large project has 15,000 files and a few hundred versions
    for entry in files:
        written = _written_version(str(entry["filename"]))
        if written is None:
            continue
        if written not in parsed:
            try:
                parsed[written] = Version(written)
            except InvalidVersion:
                parsed[written] = None
        version = parsed[written]
        if version is not None:
            grouped.setdefault(version, []).append(entry)
    return {
        str(version): sorted(grouped[version], key=lambda e: str(e["filename"]))
        for version in sorted(grouped)
    }


def choose_version(releases: Releases, wanted: str | None) -> str | None:
    """The release ``wanted`` names, or the latest when ``None``; ``None`` when there is no such release."""
    return latest_version(releases) if wanted is None else find_version(releases, wanted)


def _written_version(filename: str) -> str | None:
    """The version part of a filename: a wheel's second field (names in wheels have no dash), else parsed."""
    if filename.endswith(".whl"):
        fields = filename.split("-")
        return fields[1] if len(fields) in {5, 6} else None
    return version_of_filename(filename)


def latest_version(releases: Releases) -> str | None:
    """``info.version`` as PyPI picks it: the highest release not yanked, a final one if any.

    When every release is yanked, the highest of those (PyPI orders yanked last, not out).
    """
    if not releases:
        return None
    return max(releases, key=lambda v: (not _yanked(releases[v]), not Version(v).is_prerelease, Version(v)))


def find_version(releases: Releases, wanted: str) -> str | None:
    """The release ``wanted`` names, compared as PyPI does (``1.0`` finds ``1.0.0``); exact first."""
    if wanted in releases:
        return wanted
    try:
        canonical = canonicalize_version(wanted)
    except InvalidVersion:
        return None
    matches = [version for version in releases if canonicalize_version(version) == canonical]
    return matches[0] if len(matches) == 1 else None


def metadata_keys(files: Iterable[FileEntry]) -> list[StoreKey]:
    """Where the release's stored core metadata (PEP 658) may be, wheels first.

    Only files that announce it: the caller reads what the store has and fetches nothing.
    """
    announced = [e for e in files if e.get("core-metadata")]
    announced.sort(key=lambda e: not str(e["filename"]).endswith(".whl"))
    return [
        StoreKey(local_path_of(e["url"], e["filename"]).removeprefix("/") + ".metadata") for e in announced
    ]


def render_document(  # noqa: PLR0913 (the document's parts, each found by the caller)
    name: str,
    releases: Releases,
    version: str,
    *,
    base_url: str,
    metadata: bytes | None,
    all_releases: bool,
) -> bytes:
    """The JSON document for ``version`` of the project: ``/pypi/<p>/json`` when ``all_releases``.

    As PyPI: the per-version document has no ``releases``. ``base_url`` (scheme and host of the
    request) makes the file URLs absolute, as PyPI's are. ``last_serial`` is left out: upstream's
    serial is not kept.
    """
    files = {v: [_file(entry, base_url) for entry in entries] for v, entries in releases.items()}
    document: dict[str, object] = {
        "info": _info(name, version, releases[version], base_url=base_url, metadata=metadata),
        "urls": files[version],
        "vulnerabilities": [],
    }
    if all_releases:
        document["releases"] = files
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


def render_page(  # noqa: PLR0913 (render_document's parts, and the first client's encoding)
    name: str,
    releases: Releases,
    version: str,
    *,
    base_url: str,
    metadata: bytes | None,
    all_releases: bool,
    encoding: Encoding | None,
) -> RenderedPage:
    """:func:`render_document` as a page to serve (ETag, compressed first with ``encoding``)."""
    body = render_document(
        name, releases, version, base_url=base_url, metadata=metadata, all_releases=all_releases
    )
    return RenderedPage.of([body], CONTENT_TYPE, encoding)


def _yanked(files: list[FileEntry]) -> bool:
    """A release is yanked when every file of it is (PEP 592 yanks files; PyPI yanks releases)."""
    return all(entry.get("yanked") for entry in files)


def _yanked_reason(files: list[FileEntry]) -> str | None:
    reasons = (entry.get("yanked") for entry in files)
    return next((r for r in reasons if isinstance(r, str) and r), None)


def _info(
    name: str, version: str, files: list[FileEntry], *, base_url: str, metadata: bytes | None
) -> dict[str, object]:
    """PyPI's ``info``: from the release's files, and its core metadata when the store has it."""
    raw = _parse_metadata(metadata)
    requires_python = next((str(e["requires-python"]) for e in files if e.get("requires-python")), None)
    keywords, platforms = raw.get("keywords"), raw.get("platforms")
    yanked = _yanked(files)
    return {
        "name": raw.get("name") or name,
        "version": version,
        "summary": raw.get("summary"),
        "description": raw.get("description"),
        "description_content_type": raw.get("description_content_type"),
        "keywords": ",".join(keywords) if isinstance(keywords, list) else None,
        "license": raw.get("license"),
        "license_expression": raw.get("license_expression"),
        "license_files": raw.get("license_files")
        if _metadata_from(raw, "2.4")
        else None,  # as PyPI keeps them
        "classifiers": _sorted_classifiers(raw.get("classifiers")),
        "author": raw.get("author"),
        "author_email": raw.get("author_email"),
        "maintainer": raw.get("maintainer"),
        "maintainer_email": raw.get("maintainer_email"),
        "requires_python": requires_python or raw.get("requires_python"),
        "platform": ", ".join(platforms) if isinstance(platforms, list) and platforms else None,
        "downloads": {"last_day": -1, "last_week": -1, "last_month": -1},  # PyPI's own "not counted"
        "package_url": f"{base_url}/simple/{name}/",
        "project_url": f"{base_url}/simple/{name}/",
        "project_urls": _project_urls(raw) or None,
        "release_url": None,
        "requires_dist": raw.get("requires_dist") or None,
        "provides_extra": raw.get("provides_extra") or None,
        "docs_url": None,
        "bugtrack_url": None,
        "home_page": raw.get("home_page"),
        "download_url": raw.get("download_url"),
        "yanked": yanked,
        "yanked_reason": _yanked_reason(files) if yanked else None,
        "dynamic": raw.get("dynamic") or None,
    }


def _metadata_from(raw: dict[str, object], version: str) -> bool:
    """Whether the metadata's version is ``version`` or later."""
    try:
        return Version(str(raw.get("metadata_version"))) >= Version(version)
    except InvalidVersion:
        return False


def _sorted_classifiers(classifiers: object) -> list[str]:
    """Sorted as PyPI lists them (trove order: by name, numbers by value, ``3.9`` before ``3.10``)."""
    if not isinstance(classifiers, list):
        return []
    return sorted(
        (str(c) for c in classifiers),
        key=lambda c: [(int(part), "") if part.isdigit() else (0, part) for part in re.split(r"(\d+)", c)],
    )


def _project_urls(raw: dict[str, object]) -> dict[str, str]:
    """As PyPI lists them: Home-page and Download-URL first, then each Project-URL not naming them again."""
    urls = {}
    for label, field in (("Homepage", "home_page"), ("Download", "download_url")):
        if isinstance(value := raw.get(field), str) and value:
            urls[label] = value
    project_urls = raw.get("project_urls")
    for label, url in project_urls.items() if isinstance(project_urls, dict) else ():
        same = {"homepage": "Homepage", "downloadurl": "Download"}.get(_label_key(str(label)))
        if same is None or urls.get(same) != url:
            urls[str(label)] = str(url)
    return urls


def _label_key(label: str) -> str:
    """A project URL label compared as PEP 753 says: no punctuation or whitespace, lower case."""
    return "".join(c for c in label if c not in string.punctuation and not c.isspace()).lower()


def _parse_metadata(metadata: bytes | None) -> dict[str, object]:
    """The fields of a core metadata file that parse; none when there is none or it does not parse."""
    if metadata is None:
        return {}
    try:
        raw, _ = parse_email(metadata)
    except (MessageError, UnicodeError, ValueError):
        return {}
    return dict(raw)


def _file(entry: FileEntry, base_url: str) -> dict[str, object]:
    """One file as PyPI's JSON API lists it."""
    filename = str(entry["filename"])
    hashes = entry.get("hashes") or {}
    digests = {_DIGESTS[k]: str(v) for k, v in hashes.items() if k in _DIGESTS}
    blake2b = hashes.get("blake2b")
    if isinstance(blake2b, str) and len(blake2b) == _BLAKE2B_256_HEX:
        digests.setdefault("blake2b_256", blake2b)
    wheel = filename.endswith(".whl")
    yanked = entry.get("yanked")
    uploaded = entry.get("upload-time")
    metadata = entry.get("core-metadata")
    return {
        "filename": filename,
        "url": base_url + local_path_of(entry["url"], filename),
        "digests": digests,
        "md5_digest": digests.get("md5"),
        "packagetype": "bdist_wheel" if wheel else "sdist",
        "python_version": filename.removesuffix(".whl").split("-")[-3] if wheel else "source",
        "requires_python": entry.get("requires-python") or None,
        "size": entry.get("size"),
        "upload_time": _seconds(uploaded),
        "upload_time_iso_8601": uploaded if isinstance(uploaded, str) else None,
        "yanked": bool(yanked),
        "yanked_reason": yanked if isinstance(yanked, str) and yanked else None,
        "has_sig": False,
        "comment_text": None,
        "core-metadata": metadata if isinstance(metadata, dict) else bool(metadata),
        "downloads": -1,
    }


def _seconds(uploaded: object) -> str | None:
    """PEP 700's ``upload-time`` as the older ``upload_time`` (UTC, to the second), if it parses."""
    if not isinstance(uploaded, str):
        return None
    if len(uploaded) >= 20 and uploaded.endswith("Z") and uploaded[10] == "T" and uploaded[19] in ".Z":
        return uploaded[:19]  # already UTC, as PyPI gives it: 15,000 parses saved on a large page
    try:
        when = datetime.fromisoformat(uploaded)
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S")
