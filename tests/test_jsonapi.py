"""PyPI's JSON API served by a real ``pipdepot serve`` from a fake upstream, and pip-compile through it."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import PipdepotRunner, clean_environ
from tests.depot import Depot, fresh_venv, get, pip_install
from tests.fake_upstream import FakeUpstream, Mode
from tests.test_serve import get_no_redirect
from tests.wheels import build_sdist, build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: Wheels of one version for other interpreters and platforms: what pip-compile hashed by downloading.
OTHER_TAGS = ("py2-none-any", "cp311-cp311-win_amd64", "cp312-cp312-macosx_11_0_arm64")


@pytest.fixture(scope="module")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dists")
    build_wheel(directory, "alpha", "1.0")
    build_sdist(directory, "alpha", "1.0")
    build_wheel(directory, "alpha", "2.0", summary="The second alpha")
    build_wheel(
        directory, "alpha", "2.0", tag="cp311-cp311-manylinux_2_17_x86_64", summary="The second alpha"
    )
    build_sdist(directory, "alpha", "2.0")
    build_wheel(directory, "alpha", "2.1")
    build_wheel(directory, "alpha", "3.0rc1")
    build_wheel(directory, "beta", "1.0")
    return directory


def make_upstream(dist_dir: Path, mode: Mode = "json") -> FakeUpstream:
    upstream = FakeUpstream(mode=mode)
    for path in sorted(dist_dir.iterdir()):
        if path.name.startswith("alpha-2.0"):
            upstream.add(path, requires_python=">=3.8")
        elif path.name.startswith("alpha-2.1"):
            upstream.add(path, yanked="broken build")
        else:
            upstream.add(path)
    return upstream.start()


@pytest.fixture
def upstream(dist_dir: Path) -> Iterator[FakeUpstream]:
    server = make_upstream(dist_dir)
    yield server
    server.stop()


@pytest.fixture
def depot(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Depot]:
    server = Depot(tmp_path / "mirror", tmp_path / "serve.log", ("--upstream", upstream.url)).start()
    yield server
    server.stop()


def document(url: str) -> dict[str, Any]:
    status, headers, body = get(url)
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_project_document(depot: Depot, upstream: FakeUpstream, dist_dir: Path) -> None:
    status, headers, body = get(f"{depot.url}/pypi/alpha/json")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "max-age=60, public"
    data = json.loads(body)
    info = data["info"]
    assert info["name"] == "alpha"
    assert info["version"] == "2.0"  # 2.1 is yanked, 3.0rc1 a pre-release
    assert info["requires_python"] == ">=3.8"
    assert info["summary"] is None  # no metadata stored yet, and none fetched for this
    assert (info["yanked"], info["yanked_reason"]) == (False, None)
    assert data["vulnerabilities"] == []
    assert list(data["releases"]) == ["1.0", "2.0", "2.1", "3.0rc1"]
    assert data["urls"] == data["releases"]["2.0"]
    assert [f["filename"] for f in data["urls"]] == [
        "alpha-2.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "alpha-2.0-py3-none-any.whl",
        "alpha-2.0.tar.gz",
    ]
    for release in data["releases"].values():
        for file in release:
            local = dist_dir / file["filename"]
            assert file["digests"] == {"sha256": sha256_of(local)}
            assert file["size"] == local.stat().st_size
            assert file["url"].startswith(f"{depot.url}/packages/")
            assert file["url"].endswith(f"/{file['filename']}")
            assert file["upload_time_iso_8601"] == "2024-01-01T00:00:00.000000Z"
            assert file["upload_time"] == "2024-01-01T00:00:00"
            assert file["has_sig"] is False
    wheel, sdist = data["releases"]["1.0"]
    assert (wheel["packagetype"], wheel["python_version"]) == ("bdist_wheel", "py3")
    assert (sdist["packagetype"], sdist["python_version"]) == ("sdist", "source")
    assert data["urls"][0]["python_version"] == "cp311"
    assert {f["requires_python"] for f in data["urls"]} == {">=3.8"}
    assert data["releases"]["1.0"][0]["requires_python"] is None
    (yanked,) = data["releases"]["2.1"]
    assert (yanked["yanked"], yanked["yanked_reason"]) == (True, "broken build")
    assert (wheel["yanked"], wheel["yanked_reason"]) == (False, None)
    assert upstream.file_hits() == 0  # answered from the page alone

    assert get(f"{depot.url}/pypi/alpha/json", {"If-None-Match": headers["ETag"]})[0] == 304
    head = get(f"{depot.url}/pypi/alpha/json", method="HEAD")
    assert (head[0], head[2]) == (200, b"")
    for path in ("/alpha/json", "/simple/alpha/json", "/simple/pypi/alpha/json", "/pypi/alpha/json/"):
        assert document(depot.url + path) == data, path  # the forms pip-tools derives from an index URL


def test_the_release_document(depot: Depot, upstream: FakeUpstream, dist_dir: Path) -> None:
    project = document(f"{depot.url}/pypi/alpha/json")
    release = document(f"{depot.url}/pypi/alpha/2.1/json")
    assert "releases" not in release  # as PyPI's per-version document
    assert release["urls"] == project["releases"]["2.1"]
    assert release["info"]["version"] == "2.1"
    assert (release["info"]["yanked"], release["info"]["yanked_reason"]) == (True, "broken build")
    assert document(f"{depot.url}/pypi/alpha/2/json")["info"]["version"] == "2.0"  # 2 is 2.0, as on PyPI
    assert document(f"{depot.url}/pypi/alpha/3.0rc1/json")["info"]["version"] == "3.0rc1"

    # The summary and name come from the release's core metadata once the mirror holds it.
    python = fresh_venv(depot.mirror.parent / "venv")
    pip_install(python, depot.index, "alpha==2.0")
    hits = upstream.file_hits()
    info = document(f"{depot.url}/pypi/alpha/2.0/json")["info"]
    assert (info["name"], info["summary"]) == ("alpha", "The second alpha")
    assert upstream.file_hits() == hits


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/pypi/nothing/json", "no project named nothing\n"),
        ("/pypi/alpha/9.0/json", "no release 9.0 of alpha\n"),
        ("/pypi/alpha/not-a-version/json", "no release not-a-version of alpha\n"),
        ("/pypi/-bad-/json", "not a project name\n"),
    ],
)
def test_unknown_is_a_404(depot: Depot, path: str, expected: str) -> None:
    status, _, body = get(depot.url + path)
    assert (status, body.decode()) == (404, expected)


def test_a_name_not_normalized_is_redirected(depot: Depot) -> None:
    assert get_no_redirect(f"{depot.url}/pypi/Alpha/json") == (301, "/pypi/alpha/json")
    assert get_no_redirect(f"{depot.url}/pypi/ALPHA/2.0/json") == (301, "/pypi/alpha/2.0/json")
    assert get_no_redirect(f"{depot.url}/Alpha/json") == (301, "/alpha/json")
    assert get_no_redirect(f"{depot.url}/simple/Alpha/json/") == (301, "/simple/alpha/json/")
    assert get_no_redirect(f"{depot.url}/pypi/Alpha/json?x=%00%0A") == (301, "/pypi/alpha/json?x=%00%0A")


def test_an_html_upstream_gives_what_it_knows(tmp_path: Path, dist_dir: Path) -> None:
    upstream = make_upstream(dist_dir, "html")
    depot = Depot(tmp_path / "mirror", tmp_path / "serve.log", ("--upstream", upstream.url)).start()
    try:
        data = document(f"{depot.url}/pypi/alpha/json")
    finally:
        depot.stop()
        upstream.stop()
    assert data["info"]["version"] == "2.0"
    (file,) = data["releases"]["2.1"]
    assert file["digests"] == {"sha256": sha256_of(dist_dir / file["filename"])}
    assert (file["yanked"], file["yanked_reason"]) == (True, "broken build")
    assert (file["size"], file["upload_time"], file["upload_time_iso_8601"]) == (None, None, None)  # unknown


def test_offline_and_upstream_down_answer_from_what_is_cached(
    tmp_path: Path, upstream: FakeUpstream, depot: Depot
) -> None:
    pip_install(fresh_venv(tmp_path / "venv"), depot.index, "alpha==1.0")
    depot.stop()
    offline = Depot(depot.mirror, tmp_path / "offline.log", ("--offline",)).start()
    try:
        data = document(f"{offline.url}/pypi/alpha/json")
        assert get(f"{offline.url}/pypi/beta/json")[0] == 404  # never cached: unknown offline
    finally:
        offline.stop()
    assert list(data["releases"]) == ["1.0"]
    assert [f["filename"] for f in data["urls"]] == ["alpha-1.0-py3-none-any.whl"]
    assert data["info"]["version"] == "1.0"

    upstream.stop()
    down = Depot(depot.mirror, tmp_path / "down.log", ("--upstream", upstream.url, "--ttl", "0")).start()
    try:
        stale = get(f"{down.url}/pypi/alpha/json")
        status, _, body = get(f"{down.url}/pypi/beta/json")
    finally:
        down.stop()
    assert (stale[0], stale[1]["X-Pipdepot-Cache"]) == (200, "stale")
    assert list(json.loads(stale[2])["releases"]) == ["1.0"]
    assert status == 502
    assert body.startswith(b"upstream unavailable and beta is not cached")


def test_a_private_project_shows_its_own_releases(
    tmp_path: Path, depot: Depot, run_pipdepot: PipdepotRunner
) -> None:
    own = build_wheel(tmp_path / "own", "alpha", "0.5", summary="Our own alpha")
    run_pipdepot("add", str(own), "--mirror", str(depot.mirror))
    run_pipdepot("yank", "alpha", "0.5", "--reason", "withdrawn", "--mirror", str(depot.mirror))
    deadline = time.monotonic() + 5
    while (data := document(f"{depot.url}/pypi/alpha/json"))["info"]["yanked"] is False:
        assert time.monotonic() < deadline, data  # another process's change is seen within a second
        time.sleep(0.2)
    assert list(data["releases"]) == ["0.5"]  # upstream's 1.0 to 3.0rc1 are not merged in
    (file,) = data["urls"]
    assert file["digests"] == {"sha256": sha256_of(own)}
    assert (file["yanked"], file["yanked_reason"]) == (True, "withdrawn")
    info = data["info"]
    assert (info["version"], info["summary"], info["yanked_reason"]) == ("0.5", "Our own alpha", "withdrawn")


# -- pip-compile --generate-hashes ------------------------------------------------------


@pytest.fixture(scope="module")
def compile_dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two projects of three versions, each version with four wheels and an sdist."""
    directory = tmp_path_factory.mktemp("compile-dists")
    for version in ("1.0", "2.0", "3.0"):
        build_wheel(directory, "one", version, requires=("two",), payload=64 * 1024)
        build_wheel(directory, "two", version, payload=64 * 1024)
        for name in ("one", "two"):
            for tag in OTHER_TAGS:
                build_wheel(directory, name, version, tag=tag, payload=64 * 1024)
            build_sdist(directory, name, version)
    return directory


def cached_files(mirror: Path) -> list[str]:
    """The distributions the mirror holds (not the ``.metadata`` files beside them)."""
    return sorted(p.name for p in (mirror / "packages").rglob("*") if p.is_file() and p.suffix != ".metadata")


def pip_compile(tmp_path: Path, index: str, *requirements: str) -> dict[str, tuple[str, set[str]]]:
    """Run real pip-compile with hashes, isolated; its pins: name -> (version, sha256s)."""
    source = tmp_path / "requirements.in"
    source.write_text("\n".join(requirements) + "\n")
    output = tmp_path / "requirements.txt"
    argv = [sys.executable, "-m", "piptools", "compile", "--generate-hashes", "--no-header", "--quiet"]
    argv += ["--index-url", index, "--cache-dir", str(tmp_path / "cache"), "-o", str(output), str(source)]
    env = clean_environ(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    pins: dict[str, tuple[str, set[str]]] = {}
    current = ""
    for line in output.read_text().splitlines():
        if pinned := re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line):
            current = pinned[1]
            pins[current] = (pinned[2], set())
        elif hashed := re.search(r"--hash=sha256:([0-9a-f]{64})", line):
            pins[current][1].add(hashed[1])
    return pins


def test_pip_compile_generate_hashes_caches_no_more_than_pip(tmp_path: Path, compile_dists: Path) -> None:
    upstream = FakeUpstream()
    for path in sorted(compile_dists.iterdir()):
        upstream.add(path)
    upstream.start()
    compiling = Depot(tmp_path / "compiled", tmp_path / "compile.log", ("--upstream", upstream.url)).start()
    installing = Depot(tmp_path / "installed", tmp_path / "install.log", ("--upstream", upstream.url)).start()
    try:
        pins = pip_compile(tmp_path, compiling.index, "one")
        pip_install(fresh_venv(tmp_path / "venv"), installing.index, "one")
    finally:
        compiling.stop()
        installing.stop()
        upstream.stop()
    expected = {
        name: ("3.0", {sha256_of(p) for p in compile_dists.glob(f"{name}-3.0*")}) for name in ("one", "two")
    }
    assert pins == expected  # every file of each pinned version, wheels and sdist (5 each)
    assert all(len(hashes) == 5 for _, hashes in pins.values())
    compiled, installed = cached_files(tmp_path / "compiled"), cached_files(tmp_path / "installed")
    assert installed == ["one-3.0-py3-none-any.whl", "two-3.0-py3-none-any.whl"]
    assert len(compiled) <= len(installed), compiled  # before the JSON API: all 10 files of 3.0
    assert "GET /one/json 200" in (tmp_path / "compile.log").read_text()


# -- against PyPI's own ----------------------------------------------------------------

#: One small stable release, compared field by field.
PUBLIC_PROJECT, PUBLIC_VERSION = "six", "1.17.0"
INFO_FIELDS = (
    "name",
    "version",
    "summary",
    "requires_python",
    "yanked",
    "yanked_reason",
    "author",
    "author_email",
    "maintainer",
    "license",
    "home_page",
    "download_url",
    "classifiers",
    "project_urls",
    "requires_dist",
    "description",
    "description_content_type",
    "keywords",
    "license_expression",
    "license_files",
    "maintainer_email",
    "platform",
    "provides_extra",
    "dynamic",
    "docs_url",
    "bugtrack_url",
    "downloads",
)
FILE_FIELDS = (
    "filename",
    "packagetype",
    "python_version",
    "requires_python",
    "yanked",
    "yanked_reason",
    "size",
    "upload_time",
    "upload_time_iso_8601",
    "has_sig",
    "core-metadata",
)


def public_json(path: str) -> dict[str, Any] | None:
    """PyPI's JSON API document at ``/pypi/<path>/json``; ``None`` when it answers 404."""
    from pypi_simple import PYPI_SIMPLE_ENDPOINT  # noqa: PLC0415 (only the network test needs it)

    status, _, body = get(urllib.parse.urljoin(PYPI_SIMPLE_ENDPOINT, f"/pypi/{path}/json"))
    if status == 404:
        return None
    assert status == 200, body
    parsed: dict[str, Any] = json.loads(body)
    return parsed


@pytest.mark.network
def test_the_release_document_matches_pypis(tmp_path: Path) -> None:
    depot = Depot(tmp_path / "mirror", tmp_path / "serve.log").start()  # upstream: the default, PyPI
    try:
        ours = document(f"{depot.url}/pypi/{PUBLIC_PROJECT}/{PUBLIC_VERSION}/json")
        for file in ours["urls"]:  # the release's metadata stored, as a client's install leaves it
            if file["core-metadata"]:
                assert get(file["url"] + ".metadata")[0] == 200
            elif file["packagetype"] == "bdist_wheel":  # an upstream page without PEP 658: extracted
                assert get(file["url"])[0] == 200
        ours = document(f"{depot.url}/pypi/{PUBLIC_PROJECT}/{PUBLIC_VERSION}/json")
    finally:
        depot.stop()
    theirs = public_json(f"{PUBLIC_PROJECT}/{PUBLIC_VERSION}")
    project = public_json(PUBLIC_PROJECT)
    assert project is not None
    if theirs is None:  # a PyPI proxy keeping project documents only: the release's part of one
        theirs = {"info": project["info"], "urls": project["releases"][PUBLIC_VERSION]}
    assert "releases" not in ours
    assert ours["urls"] == sorted(ours["urls"], key=lambda f: f["filename"])
    assert project["releases"][PUBLIC_VERSION] == theirs["urls"]
    assert len(ours["urls"]) == len(theirs["urls"]) > 1
    for mine, pypi in zip(ours["urls"], sorted(theirs["urls"], key=lambda f: f["filename"]), strict=True):
        for field in FILE_FIELDS:
            assert mine[field] == pypi[field], (mine["filename"], field)
        assert mine["digests"]["sha256"] == pypi["digests"]["sha256"]
        assert mine["digests"].items() <= pypi["digests"].items()
        assert urllib.parse.urlsplit(mine["url"]).path == urllib.parse.urlsplit(pypi["url"]).path
    if theirs["info"]["version"] == PUBLIC_VERSION:
        for field in INFO_FIELDS:
            assert ours["info"][field] == theirs["info"][field], field
    assert ours["vulnerabilities"] == []
