"""The JSON API's pure parts: request paths, the release PyPI would pick, file and info fields."""

from __future__ import annotations

import doctest
import json
from typing import TYPE_CHECKING, Any

import pytest

from pipdepot.server import jsonapi
from pipdepot.server.jsonapi import ApiPath, choose_version, parse_api_path, releases_of, render_document
from pipdepot.server.pages import RenderedPage

if TYPE_CHECKING:
    from pipdepot.core.project import FileEntry

BASE = "http://mirror.test:3141"


def entry(filename: str, **fields: object) -> FileEntry:
    return {"filename": filename, "url": f"https://files.test/packages/aa/bb/cc/{filename}", **fields}


def test_doctests() -> None:
    assert doctest.testmod(jsonapi).failed == 0


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/pypi/a/json", ApiPath("a", None, "/pypi/", "/json")),
        ("/pypi/a/1.0/json/", ApiPath("a", "1.0", "/pypi/", "/1.0/json/")),
        ("/a/json", ApiPath("a", None, "/", "/json")),
        ("/simple/a/json", ApiPath("a", None, "/simple/", "/json")),
        ("/simple/pypi/a/json", ApiPath("a", None, "/simple/pypi/", "/json")),
        ("/pypi/json", ApiPath("pypi", None, "/", "/json")),  # the project named pypi
        ("/a/", None),
        ("/json", None),
        ("/a/1.0/json", None),
        ("/pypi/a/1.0/x/json", None),
        ("/pypi//json", None),
        ("/pypi/a/jsonx", None),
    ],
)
def test_request_paths(path: str, expected: ApiPath | None) -> None:
    assert parse_api_path(path) == expected


def test_the_latest_release_is_final_and_not_yanked_when_there_is_one() -> None:
    files = [
        entry("a-1.0-py3-none-any.whl"),
        entry("a-1.1-py3-none-any.whl", yanked=True),
        entry("a-1.1.tar.gz", yanked="bad"),
        entry("a-2.0b1-py3-none-any.whl"),
        entry("a-not.a.version.whl"),  # no version in the name: left out
    ]
    releases = releases_of(files)
    assert list(releases) == ["1.0", "1.1", "2.0b1"]
    assert choose_version(releases, None) == "1.0"
    assert choose_version(releases_of(files[1:4]), None) == "2.0b1"  # only a pre-release is not yanked
    assert choose_version(releases_of(files[1:3]), None) == "1.1"  # all yanked: the highest, as PyPI
    assert choose_version(releases_of(files[2:3] + files[1:2]), None) == "1.1"
    assert choose_version({}, None) is None


def test_a_version_is_found_as_pypi_finds_it() -> None:
    releases = releases_of([entry("a-1.0-py3-none-any.whl"), entry("a-2.0.0.tar.gz")])
    assert choose_version(releases, "1.0") == "1.0"
    assert choose_version(releases, "1.0.0") == "1.0"
    assert choose_version(releases, "2") == "2.0.0"
    assert choose_version(releases, "3.0") is None
    assert choose_version(releases, "not-a-version") is None
    both = releases_of([entry("a-1.0.tar.gz"), entry("a-1.0.0-py3-none-any.whl")])
    assert [len(files) for files in both.values()] == [2]  # one release, as PyPI allows only one
    assert choose_version(both, "1.0.0") == choose_version(both, "1") == next(iter(both))


def test_files_are_listed_with_what_is_known_of_them() -> None:
    wheel = entry(
        "a-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        hashes={"sha256": "1" * 64, "md5": "2" * 32, "blake2b": "3" * 64},
        size=10,
        **{"upload-time": "2024-12-04T17:35:26.475808Z", "requires-python": ">=3.11", "core-metadata": True},
    )
    sdist = entry("a-1.0.tar.gz", hashes={"blake2b": "4" * 128}, yanked="broken")
    data = json.loads(
        render_document(
            "a", releases_of([wheel, sdist]), "1.0", base_url=BASE, metadata=None, all_releases=True
        )
    )
    listed_wheel, listed_sdist = data["urls"]
    assert listed_wheel["digests"] == {"sha256": "1" * 64, "md5": "2" * 32, "blake2b_256": "3" * 64}
    assert listed_wheel["md5_digest"] == "2" * 32
    assert listed_wheel["url"] == f"{BASE}/packages/aa/bb/cc/{wheel['filename']}"
    assert (listed_wheel["packagetype"], listed_wheel["python_version"]) == ("bdist_wheel", "cp311")
    assert listed_wheel["upload_time"] == "2024-12-04T17:35:26"
    assert listed_wheel["upload_time_iso_8601"] == "2024-12-04T17:35:26.475808Z"
    assert (listed_wheel["requires_python"], listed_wheel["size"]) == (">=3.11", 10)
    assert listed_wheel["core-metadata"] is True
    assert listed_sdist["digests"] == {}  # a 512-bit blake2b is not PyPI's blake2b_256
    assert (listed_sdist["packagetype"], listed_sdist["python_version"]) == ("sdist", "source")
    assert (listed_sdist["yanked"], listed_sdist["yanked_reason"]) == (True, "broken")
    assert (listed_sdist["size"], listed_sdist["upload_time"], listed_sdist["requires_python"]) == (
        None,
        None,
        None,
    )
    assert data["info"]["requires_python"] == ">=3.11"
    assert (data["info"]["yanked"], data["info"]["yanked_reason"]) == (False, None)  # the wheel is not


def test_info_comes_from_the_core_metadata() -> None:
    metadata = b"""\
Metadata-Version: 2.1
Name: The-Project
Version: 1.0
Summary: One line
Home-page: https://home.test/
Project-URL: Home page, https://home.test/
Project-URL: Source, https://source.test/
Classifier: Programming Language :: Python :: 3.10
Classifier: Programming Language :: Python :: 3.9
Classifier: Development Status :: 5 - Production/Stable
License-File: LICENSE
Requires-Dist: b>=1

The description.
"""
    releases = releases_of([entry("the_project-1.0-py3-none-any.whl")])
    info: dict[str, Any] = json.loads(
        render_document("the-project", releases, "1.0", base_url=BASE, metadata=metadata, all_releases=False)
    )["info"]
    assert (info["name"], info["summary"], info["description"]) == (
        "The-Project",
        "One line",
        "The description.\n",
    )
    assert info["project_urls"] == {"Homepage": "https://home.test/", "Source": "https://source.test/"}
    assert info["classifiers"] == [
        "Development Status :: 5 - Production/Stable",
        "Programming Language :: Python :: 3.9",
        "Programming Language :: Python :: 3.10",
    ]
    assert info["license_files"] is None  # PyPI keeps them from metadata 2.4 on
    assert info["requires_dist"] == ["b>=1"]
    assert info["package_url"] == f"{BASE}/simple/the-project/"
    bare = json.loads(
        render_document(
            "the-project", releases, "1.0", base_url=BASE, metadata=b"\xff\x00", all_releases=False
        )
    )
    assert (bare["info"]["name"], bare["info"]["summary"]) == ("the-project", None)


def test_documents_are_kept_within_their_budget() -> None:
    documents = jsonapi.Documents(budget=250)
    keys = [("a", generation, False, "1.0", True, BASE, None) for generation in range(3)]
    for key in keys:
        documents.keep(key, RenderedPage.of([b"x" * 100], jsonapi.CONTENT_TYPE, None))
    assert documents.get(keys[0]) is None  # the least recently used went
    assert documents.get(keys[1]) is not None
    assert documents.get(keys[2]) is not None
