"""`pipdepot serve` against a real fake upstream, with real pip and uv clients."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import signal
import threading
import time
import urllib.error
import urllib.request
import zipfile
from typing import TYPE_CHECKING

import pytest
from pypi_simple import ProjectPage

from tests.depot import Depot, fresh_venv, get, installed, pip_install, uv_install
from tests.fake_upstream import FakeUpstream, Mode
from tests.mirror_audit import spool_leftovers
from tests.wheels import build_sdist, build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = f"{JSON}, {HTML}; q=0.1, text/html; q=0.01"


@pytest.fixture(scope="module")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dists")
    build_wheel(directory, "alpha", "1.0", requires=("beta",))
    build_wheel(directory, "alpha", "2.0", requires=("beta>=1",))
    build_sdist(directory, "alpha", "1.0")
    build_wheel(directory, "beta", "1.0")
    build_wheel(directory, "gamma", "0.9")
    build_wheel(directory, "gamma", "1.0")
    build_wheel(directory, "bulky", "1.0", payload=3 * 1024 * 1024)
    return directory


def make_upstream(dist_dir: Path, mode: Mode = "json", **options: object) -> FakeUpstream:
    upstream = FakeUpstream(mode=mode, **options)  # type: ignore[arg-type]
    for path in sorted(dist_dir.iterdir()):
        if path.name.startswith("alpha-2.0"):
            upstream.add(path, requires_python=">=3.8")
        elif path.name.startswith("gamma-0.9"):
            upstream.add(path, yanked="broken build")
        else:
            upstream.add(path)
    return upstream.start()


@pytest.fixture(params=["json", "html"])
def upstream(request: pytest.FixtureRequest, dist_dir: Path) -> Iterator[FakeUpstream]:
    server = make_upstream(dist_dir, request.param)
    yield server
    server.stop()


@pytest.fixture
def json_upstream(dist_dir: Path) -> Iterator[FakeUpstream]:
    server = make_upstream(dist_dir, "json")
    yield server
    server.stop()


def start_depot(tmp_path: Path, *args: str, mirror: Path | None = None) -> Depot:
    return Depot(mirror or tmp_path / "mirror", tmp_path / "serve.log", args).start()


@pytest.fixture
def depot(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Depot]:
    server = start_depot(tmp_path, "--upstream", upstream.url)
    yield server
    server.stop()


@pytest.fixture
def json_depot(tmp_path: Path, json_upstream: FakeUpstream) -> Iterator[Depot]:
    server = start_depot(tmp_path, "--upstream", json_upstream.url)
    yield server
    server.stop()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: object, **__: object) -> None:
        return None


def get_no_redirect(url: str) -> tuple[int, str | None]:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location")


# -- installs: cold, warm, upstream down, offline --------------------------------------


def test_pip_and_uv_install_cold_then_warm_then_with_upstream_down(
    tmp_path: Path, upstream: FakeUpstream, depot: Depot
) -> None:
    pip_install(fresh_venv(tmp_path / "pip-cold"), depot.index, "alpha==1.0")
    files_after_cold = upstream.file_hits()
    assert files_after_cold >= 2  # alpha and beta came from upstream once
    uv_install(fresh_venv(tmp_path / "uv-warm"), depot.index, "alpha==1.0")
    python = fresh_venv(tmp_path / "pip-warm")
    pip_install(python, depot.index, "alpha==1.0")
    assert installed(python, "alpha") == "1.0"
    assert upstream.file_hits() == files_after_cold  # warm installs took every file from the cache
    assert spool_leftovers(depot.mirror) == []  # pages and files spooled, then moved

    upstream.stop()
    depot.stop()
    restarted = start_depot(tmp_path, "--upstream", upstream.url, "--ttl", "0")
    try:
        python = fresh_venv(tmp_path / "pip-down")
        pip_install(python, restarted.index, "alpha")
        assert installed(python, "alpha") == "1.0"  # 2.0 was never cached, so it is not offered
        uv_python = fresh_venv(tmp_path / "uv-down")
        uv_install(uv_python, restarted.index, "alpha")
        assert installed(uv_python, "alpha") == "1.0"
        status, headers, body = get(f"{restarted.index}alpha/", {"Accept": JSON})
        assert status == 200
        assert headers["X-Pipdepot-Cache"] == "stale"
        assert [f["filename"] for f in json.loads(body)["files"]] == ["alpha-1.0-py3-none-any.whl"]
        refused = pip_install(fresh_venv(tmp_path / "pip-2"), restarted.index, "alpha==2.0", check=False)
        assert refused.returncode != 0
        assert "from versions: 1.0" in refused.stderr
        assert "serving alpha stale" in restarted.log_text()
    finally:
        restarted.stop()


def test_offline_never_contacts_upstream(
    tmp_path: Path, json_upstream: FakeUpstream, json_depot: Depot
) -> None:
    pip_install(fresh_venv(tmp_path / "warm"), json_depot.index, "alpha==1.0")
    json_depot.stop()
    before = sum(json_upstream.hits.values())
    offline = start_depot(tmp_path, "--upstream", json_upstream.url, "--offline")
    try:
        python = fresh_venv(tmp_path / "offline")
        uv_install(python, offline.index, "alpha")
        assert installed(python, "alpha") == "1.0"
        assert get(f"{offline.index}gamma/")[0] == 404  # never cached: unknown offline
        assert get(f"{offline.index}alpha/", {"Accept": JSON})[1]["X-Pipdepot-Cache"] == "offline"
        root = json.loads(get(offline.index, {"Accept": JSON})[2])
        assert [p["name"] for p in root["projects"]] == ["alpha", "beta"]  # remembered across restarts
        assert json.loads(get(f"{offline.url}/+status")[2])["metrics"]["cached_files"] == 2
    finally:
        offline.stop()
    assert sum(json_upstream.hits.values()) == before


def test_the_cache_is_a_static_tree_usable_with_no_server(
    tmp_path: Path, json_upstream: FakeUpstream, json_depot: Depot
) -> None:
    pip_install(fresh_venv(tmp_path / "warm"), json_depot.index, "alpha==1.0")
    json_depot.stop()
    mirror = json_depot.mirror
    listed = ProjectPage.from_html(
        "alpha", (mirror / "alpha" / "index.html").read_text(), base_url="file:///x/alpha/"
    )
    assert [p.filename for p in listed.packages] == ["alpha-1.0-py3-none-any.whl"]
    for package in listed.packages:
        local = mirror / package.url.removeprefix("file:///x/")
        assert hashlib.sha256(local.read_bytes()).hexdigest() == package.digests["sha256"]
    assert 'href="alpha/"' in (mirror / "index.html").read_text()
    page = (mirror / "alpha" / "index.html").read_text()
    assert "data-core-metadata=" in page  # extracted from the cached wheel
    assert "data-dist-info-metadata" not in page  # PEP 714: pip 22.3-23.1 misread it
    python = fresh_venv(tmp_path / "file-index")
    pip_install(python, mirror.as_uri(), "alpha")
    assert installed(python, "alpha") == "1.0"


def test_first_upstream_that_has_a_project_serves_it_alone(tmp_path: Path, dist_dir: Path) -> None:
    private = FakeUpstream(mode="json")
    private.add(dist_dir / "alpha-1.0-py3-none-any.whl")
    private.start()
    public = make_upstream(dist_dir, "json")
    server = start_depot(tmp_path, "--upstream", private.url, "--upstream", public.url)
    try:
        _, _, body = get(f"{server.index}alpha/", {"Accept": JSON})
        assert [f["filename"] for f in json.loads(body)["files"]] == ["alpha-1.0-py3-none-any.whl"]
        _, _, body = get(f"{server.index}beta/", {"Accept": JSON})
        assert [f["filename"] for f in json.loads(body)["files"]] == ["beta-1.0-py3-none-any.whl"]
    finally:
        server.stop()
        private.stop()
        public.stop()


# -- the Simple API ----------------------------------------------------------------------


def test_json_and_html_say_the_same(json_depot: Depot) -> None:
    _, headers, body = get(f"{json_depot.index}alpha/", {"Accept": JSON})
    assert headers["Content-Type"] == JSON
    data = json.loads(body)
    assert data["meta"]["api-version"] == "1.4"
    assert data["versions"] == ["1.0", "2.0"]
    from_json = ProjectPage.from_json_data(data, base_url=json_depot.index + "alpha/")
    _, headers, body = get(f"{json_depot.index}alpha/", {"Accept": HTML})
    assert headers["Content-Type"] == HTML
    from_html = ProjectPage.from_html("alpha", body, base_url=json_depot.index + "alpha/")

    def summary(page: ProjectPage) -> list[tuple[object, ...]]:
        return sorted(
            (p.filename, p.url, p.digests, p.requires_python, p.is_yanked, p.yanked_reason)
            for p in page.packages
        )

    assert summary(from_json) == summary(from_html)
    assert len(from_json.packages) == 3
    by_name = {p.filename: p for p in from_json.packages}
    assert by_name["alpha-2.0-py3-none-any.whl"].requires_python == ">=3.8"
    assert all(p.url.startswith(json_depot.url + "/packages/") for p in from_json.packages)
    file_entry = next(f for f in data["files"] if f["filename"] == "alpha-1.0.tar.gz")
    assert file_entry["x-extension"] == "kept"  # fields pipdepot does not know survive
    assert file_entry["upload-time"] == "2024-01-01T00:00:00.000000Z"
    assert isinstance(file_entry["size"], int)


def test_yanked_and_its_reason_are_kept(upstream: FakeUpstream, depot: Depot) -> None:
    _, _, body = get(f"{depot.index}gamma/", {"Accept": JSON})
    yanked = {f["filename"]: f["yanked"] for f in json.loads(body)["files"]}
    assert yanked == {"gamma-0.9-py3-none-any.whl": "broken build", "gamma-1.0-py3-none-any.whl": False}
    _, _, html_body = get(f"{depot.index}gamma/", {"Accept": "text/html"})
    assert b'data-yanked="broken build"' in html_body


@pytest.mark.parametrize(
    ("accept", "query", "expected"),
    [
        (PIP_ACCEPT, "", JSON),
        (f"{JSON};q=0.1, {HTML}", "", HTML),
        ("text/html", "", "text/html; charset=utf-8"),
        ("application/vnd.pypi.simple.latest+json", "", JSON),
        ("application/vnd.pypi.simple.latest+html", "", HTML),
        (None, "", "text/html; charset=utf-8"),
        ("*/*", "", "text/html; charset=utf-8"),
        (f"{JSON};q=0, text/html", "", "text/html; charset=utf-8"),
        ("text/html", f"?format={JSON}", JSON),
        (JSON, "?format=text/html", "text/html; charset=utf-8"),
        ("image/png", "", None),
        (PIP_ACCEPT, "?format=application/xml", None),
    ],
)
def test_content_negotiation(json_depot: Depot, accept: str | None, query: str, expected: str | None) -> None:
    status, headers, _ = get(f"{json_depot.index}beta/{query}", {"Accept": accept} if accept else {})
    if expected is None:
        assert status == 406
    else:
        assert status == 200
        assert headers["Content-Type"] == expected
        assert "Accept" in headers["Vary"]


def test_etag_and_304_and_gzip(json_depot: Depot) -> None:
    status, headers, plain = get(f"{json_depot.index}beta/", {"Accept": JSON})
    assert status == 200
    etag = headers["ETag"]
    assert etag.startswith('"')  # strong
    status, headers, _ = get(f"{json_depot.index}beta/", {"Accept": JSON, "If-None-Match": etag})
    assert status == 304
    assert headers["ETag"] == etag
    status, headers, _ = get(f"{json_depot.index}beta/", {"Accept": HTML, "If-None-Match": etag})
    assert status == 200  # another representation, another tag
    status, headers, zipped = get(f"{json_depot.index}beta/", {"Accept": JSON, "Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert headers["ETag"] != etag
    import gzip  # noqa: PLC0415

    import zstandard  # noqa: PLC0415

    assert gzip.decompress(zipped) == plain
    status, headers, squeezed = get(
        f"{json_depot.index}beta/", {"Accept": JSON, "Accept-Encoding": "gzip, zstd"}
    )
    assert headers["Content-Encoding"] == "zstd"
    assert zstandard.ZstdDecompressor().decompress(squeezed) == plain
    assert get(f"{json_depot.index}beta/", {"Accept": JSON, "If-None-Match": headers["ETag"]})[0] == 200
    zstd_etag = headers["ETag"]
    assert (
        get(
            f"{json_depot.index}beta/",
            {"Accept": JSON, "Accept-Encoding": "zstd", "If-None-Match": zstd_etag},
        )[0]
        == 304
    )


def test_names_redirects_and_both_index_roots(json_depot: Depot) -> None:
    assert get_no_redirect(f"{json_depot.index}Alpha/") == (301, "/simple/alpha/")
    assert get_no_redirect(f"{json_depot.index}alpha") == (301, "/simple/alpha/")
    assert get_no_redirect(f"{json_depot.url}/ALPHA/?format=text/html") == (301, "/alpha/?format=text/html")
    assert get(f"{json_depot.url}/alpha/")[0] == 200  # the seed's bare URL
    assert get(f"{json_depot.index}no-such-project/")[0] == 404
    assert get(f"{json_depot.index}-bad-/")[0] == 404


def test_bare_url_works_for_pip(tmp_path: Path, json_depot: Depot) -> None:
    python = fresh_venv(tmp_path / "bare")
    pip_install(python, json_depot.url + "/", "beta")
    assert installed(python, "beta") == "1.0"


def file_url(depot: Depot, name: str) -> str:
    _, _, body = get(f"{depot.index}{name.split('-', maxsplit=1)[0]}/", {"Accept": JSON})
    entry = next(f for f in json.loads(body)["files"] if f["filename"] == name)
    return f"{depot.url}{entry['url']}"


def test_head_range_and_if_range_on_cached_files(json_depot: Depot, dist_dir: Path) -> None:
    url = file_url(json_depot, "beta-1.0-py3-none-any.whl")
    data = (dist_dir / "beta-1.0-py3-none-any.whl").read_bytes()
    status, headers, body = get(url)  # caches it
    assert (status, body) == (200, data)
    status, headers, body = get(url, method="HEAD")
    assert status == 200
    assert body == b""
    assert headers["Content-Length"] == str(len(data))
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["X-Pipdepot-Cache"] == "hit"
    etag = headers["Etag"]
    status, headers, body = get(url, {"Range": "bytes=10-19"})
    assert (status, body) == (206, data[10:20])
    assert headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert get(url, {"Range": "bytes=-16"})[2] == data[-16:]
    assert get(url, {"Range": f"bytes={len(data) + 5}-"})[0] == 416
    assert get(url, {"Range": "bytes=0-3", "If-Range": etag})[0] == 206
    status, _, body = get(url, {"Range": "bytes=0-3", "If-Range": '"another-version"'})
    assert (status, body) == (200, data)


def test_range_on_an_uncached_file_passes_through_and_keeps_nothing(tmp_path: Path, dist_dir: Path) -> None:
    """A resolver reading a wheel's last bytes for its metadata must not pull the whole wheel in."""
    server = make_upstream(dist_dir, "json")
    depot = Depot(tmp_path / "mirror", tmp_path / "log", ("--upstream", server.url)).start()
    try:
        url = file_url(depot, "gamma-1.0-py3-none-any.whl")
        data = (dist_dir / "gamma-1.0-py3-none-any.whl").read_bytes()
        status, headers, body = get(url, {"Range": "bytes=-16"})
        assert (status, body) == (206, data[-16:])
        assert headers["Content-Range"] == f"bytes {len(data) - 16}-{len(data) - 1}/{len(data)}"
        assert headers["X-Pipdepot-Cache"] == "pass"
        status, headers, _ = get(url, method="HEAD")
        assert (status, headers["Content-Length"]) == (200, str(len(data)))
        assert server.file_hits() == 1  # the range only: HEAD asked upstream nothing
        bulky = (dist_dir / "bulky-1.0-py3-none-any.whl").read_bytes()
        status, headers, body = get(
            file_url(depot, "bulky-1.0-py3-none-any.whl"), {"Range": "bytes=1000-600999"}
        )
        assert (status, body) == (206, bulky[1000:601000])  # a zip's central directory can be this large
        assert headers["X-Pipdepot-Cache"] == "pass"
        assert not list((tmp_path / "mirror").glob("packages/**/gamma-1.0-py3-none-any.whl"))
        status, _, body = get(url)  # a whole file is fetched, verified and kept
        assert (status, body) == (200, data)
        assert list((tmp_path / "mirror").glob("packages/**/gamma-1.0-py3-none-any.whl"))
    finally:
        depot.stop()
        server.stop()


def test_range_on_an_uncached_file_is_answered_once_cached_when_upstream_ignores_ranges(
    tmp_path: Path, dist_dir: Path
) -> None:
    server = make_upstream(dist_dir, "json", ranges=False)
    depot = Depot(tmp_path / "mirror", tmp_path / "log", ("--upstream", server.url)).start()
    try:
        url = file_url(depot, "gamma-1.0-py3-none-any.whl")
        data = (dist_dir / "gamma-1.0-py3-none-any.whl").read_bytes()
        status, _, body = get(url, {"Range": "bytes=0-9"})
        assert (status, body) == (206, data[:10])
        assert list((tmp_path / "mirror").glob("packages/**/gamma-1.0-py3-none-any.whl"))
    finally:
        depot.stop()
        server.stop()


@pytest.mark.parametrize("upstream_metadata", [True, False])
def test_metadata_files_and_their_hashes(tmp_path: Path, dist_dir: Path, upstream_metadata: bool) -> None:
    server = make_upstream(dist_dir, "json", with_metadata=upstream_metadata)
    depot = start_depot(tmp_path, "--upstream", server.url)
    try:
        wheel = "alpha-1.0-py3-none-any.whl"
        with zipfile.ZipFile(dist_dir / wheel) as archive:
            expected = archive.read("alpha-1.0.dist-info/METADATA")
        url = file_url(depot, wheel)
        if not upstream_metadata:
            get(url)  # metadata is extracted once the wheel is cached
        _, _, body = get(f"{depot.index}alpha/", {"Accept": JSON})
        entry = next(f for f in json.loads(body)["files"] if f["filename"] == wheel)
        assert entry["core-metadata"] == {"sha256": hashlib.sha256(expected).hexdigest()}
        status, _, metadata = get(url + ".metadata")
        assert (status, metadata) == (200, expected)
        _, _, html_body = get(f"{depot.index}alpha/", {"Accept": "text/html"})
        digest = hashlib.sha256(expected).hexdigest()
        assert f'data-core-metadata="sha256={digest}"'.encode() in html_body
        assert b"data-dist-info-metadata" not in html_body  # PEP 714: pip 22.3-23.1 misread it
        assert "dist-info-metadata" not in entry  # PEP 714: JSON carries only the new key
    finally:
        depot.stop()
        server.stop()


def test_metadata_of_an_uncached_wheel_without_upstream_metadata(json_depot: Depot, dist_dir: Path) -> None:
    url = file_url(json_depot, "gamma-1.0-py3-none-any.whl")
    with zipfile.ZipFile(dist_dir / "gamma-1.0-py3-none-any.whl") as archive:
        expected = archive.read("gamma-1.0.dist-info/METADATA")
    assert get(url + ".metadata")[2] == expected


# -- concurrency, integrity, crashes -------------------------------------------------------


def test_many_clients_one_uncached_file_one_upstream_fetch(tmp_path: Path, dist_dir: Path) -> None:
    server = make_upstream(dist_dir, "json", file_delay=0.01)
    depot = start_depot(tmp_path, "--upstream", server.url)
    try:
        name = "bulky-1.0-py3-none-any.whl"
        url = file_url(depot, name)
        expected = hashlib.sha256((dist_dir / name).read_bytes()).hexdigest()
        results: list[str] = []

        def fetch() -> None:
            results.append(hashlib.sha256(get(url)[2]).hexdigest())

        threads = [threading.Thread(target=fetch) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert results == [expected] * 16
        assert sum(count for path, count in server.hits.items() if path.endswith(name)) == 1
    finally:
        depot.stop()
        server.stop()


def test_a_wrong_hash_is_an_error_and_nothing_is_kept(tmp_path: Path, dist_dir: Path) -> None:
    server = make_upstream(dist_dir, "json", behaviour="ok")
    depot = start_depot(tmp_path, "--upstream", server.url)
    try:
        name = "beta-1.0-py3-none-any.whl"
        url = file_url(depot, name)
        server.behaviour = "wrong-hash"
        with pytest.raises((urllib.error.URLError, ConnectionError, http_client_errors())):
            get(url)
        assert not list(depot.mirror.rglob(name))
        assert not (depot.mirror / "beta" / "index.html").exists()
        server.behaviour = "ok"
        assert get(url)[2] == (dist_dir / name).read_bytes()
        assert len(list(depot.mirror.rglob(name))) == 1
    finally:
        depot.stop()
        server.stop()


def http_client_errors() -> type[Exception]:
    import http.client  # noqa: PLC0415

    return http.client.HTTPException


def test_sigkill_mid_download_leaves_no_corrupt_file(tmp_path: Path, dist_dir: Path) -> None:
    server = make_upstream(dist_dir, "json", file_delay=0.05)
    depot = start_depot(tmp_path, "--upstream", server.url)
    name = "bulky-1.0-py3-none-any.whl"
    try:
        url = file_url(depot, name)
        threading.Thread(target=lambda: get_quietly(url), daemon=True).start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not spooled_bytes(depot.mirror):
            time.sleep(0.02)
        depot.stop(signal.SIGKILL)
        assert not list(depot.mirror.rglob(name))  # only a spool file, never the file itself
        assert not (depot.mirror / "bulky").exists()
        server.file_delay = 0
        restarted = start_depot(tmp_path, "--upstream", server.url, mirror=depot.mirror)
        try:
            assert spool_leftovers(depot.mirror) == []  # leftovers cleaned at start
            body = get(url.replace(depot.url, restarted.url))[2]
            assert body == (dist_dir / name).read_bytes()
        finally:
            restarted.stop()
    finally:
        depot.stop()
        server.stop()


def spooled_bytes(mirror: Path) -> int:
    """Bytes in the writers' spools now (files come and go while it looks)."""
    total = 0
    for path in spool_leftovers(mirror):
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


def get_quietly(url: str) -> None:
    with contextlib.suppress(Exception):  # the server is killed under it on purpose
        get(url)


@pytest.mark.parametrize("behaviour", ["fail", "hang", "garbage"])
def test_a_broken_upstream_is_never_a_404(tmp_path: Path, dist_dir: Path, behaviour: str) -> None:
    server = make_upstream(dist_dir, "json")
    depot = start_depot(tmp_path, "--upstream", server.url, "--ttl", "0", "--upstream-timeout", "1")
    try:
        assert get(file_url(depot, "beta-1.0-py3-none-any.whl"))[0] == 200  # page and file cached
        assert get(f"{depot.index}alpha/")[0] == 200  # page cached, but none of its files
        server.behaviour = behaviour  # type: ignore[assignment]
        status, headers, _ = get(f"{depot.index}beta/")
        assert (status, headers["X-Pipdepot-Cache"]) == (200, "stale")
        for never_installable in ("gamma", "alpha"):
            status, _, body = get(f"{depot.index}{never_installable}/")
            assert status == 502, body
        assert spool_leftovers(depot.mirror) == []  # no spooled page left behind
    finally:
        depot.stop()
        server.stop()


# -- bad input and operations -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/simple/..%2f..%2fetc%2fpasswd/", 400),
        ("/packages/%2e%2e/%2e%2e/etc/passwd", 400),
        ("/packages/a%5cb/x.whl", 400),
        ("/simple/a%00b/", 400),
        ("/simple/" + "a" * 2000 + "/", 414),
        ("/packages/00/00/0000/nothing-1.0-py3-none-any.whl", 404),
        ("/packages/not-a-distribution", 404),
        ("/simple/a/b/", 404),
        ("/+nothing", 404),
    ],
)
def test_bad_input_is_a_4xx(json_depot: Depot, path: str, status: int) -> None:
    assert get(json_depot.url + path)[0] == status


def test_dot_dot_in_the_raw_path_is_refused(json_depot: Depot) -> None:
    import http.client  # noqa: PLC0415

    connection = http.client.HTTPConnection("127.0.0.1", json_depot.port, timeout=10)
    connection.request("GET", "/packages/../../../etc/passwd")
    assert connection.getresponse().status == 400


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_get_and_head(json_depot: Depot, method: str) -> None:
    status, headers, _ = get(f"{json_depot.index}beta/", method=method)
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


def test_health_metrics_status_and_the_log(tmp_path: Path, json_depot: Depot) -> None:
    pip_install(fresh_venv(tmp_path / "v"), json_depot.index, "beta")
    pip_install(fresh_venv(tmp_path / "w"), json_depot.index, "beta")
    assert get(f"{json_depot.url}/+health")[0] == 200
    _, _, metrics = get(f"{json_depot.url}/+metrics")
    text = metrics.decode()
    assert "pipdepot_requests_total" in text
    assert "pipdepot_cached_files 1" in text
    assert "pipdepot_misses_total" in text
    status = json.loads(get(f"{json_depot.url}/+status")[2])
    assert status["metrics"]["cached_projects"] == 1
    assert status["upstreams"] == [json_depot.args[1]]
    json_depot.stop()  # access lines are written in batches: the last ones as the server stops
    log = json_depot.log_text()
    assert f"listening on {json_depot.index}" in log
    assert f"storing in {json_depot.mirror}" in log
    assert "GET /simple/beta/ 200" in log
    assert " miss " in log
    assert " hit " in log
    access = [line for line in log.splitlines() if " GET " in line]
    assert access
    assert all(
        re.fullmatch(r"\d\d:\d\d:\d\d pipdepot: GET /\S* \d{3} \d+ [a-z-]+ [\d.]+ms", a) for a in access
    )


def test_a_new_file_rewrites_the_small_local_record_not_upstreams_page(json_depot: Depot) -> None:
    """Upstream's page can be megabytes: a finished download must not parse and rewrite it."""
    url = file_url(json_depot, "gamma-1.0-py3-none-any.whl")
    page = json_depot.mirror / ".pipdepot" / "projects" / "gamma.json"
    record = json_depot.mirror / ".pipdepot" / "local" / "gamma.json"
    before = (page.read_bytes(), page.stat().st_mtime_ns)
    assert get(url)[0] == 200
    deadline = time.monotonic() + 10
    while "gamma-1.0-py3-none-any.whl" not in (record.read_text() if record.exists() else ""):
        assert time.monotonic() < deadline, "the download was never recorded"
        time.sleep(0.05)
    assert (page.read_bytes(), page.stat().st_mtime_ns) == before
    assert "gamma-1.0-py3-none-any.whl" in (json_depot.mirror / "gamma" / "index.html").read_text()


def test_offline_pages_and_files_come_from_the_local_record_alone(tmp_path: Path, json_depot: Depot) -> None:
    """Offline, upstream's stored page (megabytes for a large project) is never read: the record suffices."""
    url = file_url(json_depot, "gamma-1.0-py3-none-any.whl")
    assert get(url)[0] == 200
    json_depot.stop()
    (json_depot.mirror / ".pipdepot" / "projects" / "gamma.json").write_bytes(b"not a page")
    offline = start_depot(tmp_path, "--offline", mirror=json_depot.mirror)
    try:
        status, _, body = get(f"{offline.index}gamma/", {"Accept": JSON})
        page = json.loads(body)
        assert status == 200
        assert [f["filename"] for f in page["files"]] == ["gamma-1.0-py3-none-any.whl"]
        assert page["versions"] == ["1.0"]  # the local version only, not upstream's list
        status, _, body = get(offline.url + page["files"][0]["url"])
        assert (status, hashlib.sha256(body).hexdigest()) == (200, page["files"][0]["hashes"]["sha256"])
        python = fresh_venv(tmp_path / "venv")
        pip_install(python, offline.index, "gamma")
        assert installed(python, "gamma") == "1.0"
    finally:
        offline.stop()


def test_a_cached_file_is_found_from_the_local_record_alone(
    tmp_path: Path, json_depot: Depot, json_upstream: FakeUpstream
) -> None:
    """Online too, a cached file needs no parse of upstream's stored page to be served."""
    url = file_url(json_depot, "gamma-1.0-py3-none-any.whl")
    data = get(url)[2]
    json_depot.stop()
    json_upstream.stop()  # nothing to fall back on
    (json_depot.mirror / ".pipdepot" / "projects" / "gamma.json").write_bytes(b"not a page")
    again = start_depot(tmp_path, "--upstream", json_upstream.url, mirror=json_depot.mirror)
    try:
        status, headers, body = get(url.replace(json_depot.url, again.url))
        assert (status, body, headers["X-Pipdepot-Cache"]) == (200, data, "hit")
    finally:
        again.stop()


def _spoil_all_but(page: Path, keep: str) -> None:
    """Break every file line of a stored page except ``keep``'s: a whole parse of it would fail."""
    lines = page.read_bytes().split(b"\n")
    spoiled = [line if keep.encode() in line else b"{broken}," for line in lines[1:-1]]
    page.write_bytes(b"\n".join([lines[0], *spoiled, lines[-1]]))


def test_an_uncached_file_is_found_from_its_line_of_the_stored_page(
    tmp_path: Path, json_depot: Depot, json_upstream: FakeUpstream
) -> None:
    """A cold install asks for one file of each page it just saw: the page is not parsed again for it."""
    url = file_url(json_depot, "gamma-1.0-py3-none-any.whl")
    json_depot.stop()
    _spoil_all_but(json_depot.mirror / ".pipdepot" / "projects" / "gamma.json", "gamma-1.0-py3-none-any.whl")
    pages_before = json_upstream.hits["/simple/gamma/"]
    again = start_depot(tmp_path, "--upstream", json_upstream.url, mirror=json_depot.mirror)
    try:
        status, headers, body = get(url.replace(json_depot.url, again.url))
        assert (status, headers["X-Pipdepot-Cache"]) == (200, "miss")
        assert body == json_upstream.projects["gamma"][1].path.read_bytes()
        assert json_upstream.hits["/simple/gamma/"] == pages_before  # no refresh: the line sufficed
        assert "unreadable" not in again.log_text()
    finally:
        again.stop()


def test_a_stale_page_with_upstream_down_is_served_without_parsing_it(
    tmp_path: Path, json_depot: Depot, json_upstream: FakeUpstream
) -> None:
    """Upstream down, every page stale: what is served is the local files, so upstream's page stays unread."""
    url = file_url(json_depot, "gamma-1.0-py3-none-any.whl")
    assert get(url)[0] == 200
    json_depot.stop()
    json_upstream.stop()
    _spoil_all_but(json_depot.mirror / ".pipdepot" / "projects" / "gamma.json", "no such file")
    again = start_depot(tmp_path, "--upstream", json_upstream.url, "--ttl", "0", mirror=json_depot.mirror)
    try:
        status, headers, body = get(f"{again.index}gamma/", {"Accept": JSON})
        assert (status, headers["X-Pipdepot-Cache"]) == (200, "stale")
        assert [f["filename"] for f in json.loads(body)["files"]] == ["gamma-1.0-py3-none-any.whl"]
    finally:
        again.stop()


def test_a_page_rendered_from_its_stored_lines_is_the_page_rendered_from_its_state(
    tmp_path: Path, json_depot: Depot, json_upstream: FakeUpstream
) -> None:
    """After a restart, a fresh page is rendered from its stored lines: the same bytes, the same ETag."""
    assert get(file_url(json_depot, "gamma-1.0-py3-none-any.whl"))[0] == 200  # adds its metadata hash
    before = {}
    for accept in (JSON, "text/html"):
        deadline = time.monotonic() + 10
        while True:  # the download is recorded just after its last byte went out
            status, headers, body = get(f"{json_depot.index}gamma/", {"Accept": accept})
            if b"data-core-metadata" in body or b'"core-metadata"' in body:
                break
            assert time.monotonic() < deadline, "the extracted metadata was never listed"
            time.sleep(0.05)
        before[accept] = (status, headers["ETag"], body)
    json_depot.stop()
    stored = json_depot.mirror / ".pipdepot" / "projects" / "gamma.json"
    stored.write_bytes(stored.read_bytes() + b" not JSON as a whole")  # only a parse of the whole page fails
    pages_before = json_upstream.hits["/simple/gamma/"]
    again = start_depot(tmp_path, "--upstream", json_upstream.url, mirror=json_depot.mirror)
    try:
        for accept, (status, etag, body) in before.items():
            now = get(f"{again.index}gamma/", {"Accept": accept})
            assert (now[0], now[1]["ETag"], now[2]) == (status, etag, body)
        rendered = json.loads(get(f"{again.url}/+status")[2])["metrics"]["pages_rendered"]
        assert rendered == 2  # JSON and HTML, once each
        assert json_upstream.hits["/simple/gamma/"] == pages_before  # nothing was parsed whole, or fetched
    finally:
        again.stop()


def test_a_page_too_large_to_keep_is_served_from_its_stored_lines(tmp_path: Path, dist_dir: Path) -> None:
    """A page over the memory's budget of parsed entries is saved, dropped, and rendered line by line.

    3,001 sdists (never downloaded) and one real wheel: both formats list every file, the same
    ones; each is rendered once; pip installs the wheel from it; upstream is asked once.
    """
    upstream = make_upstream(dist_dir)
    listed = tmp_path / "listed"
    listed.mkdir()
    for patch in range(3001):
        sdist = listed / f"big-0.0.{patch}.tar.gz"
        sdist.write_bytes(b"listed, never fetched %d" % patch)
        upstream.add(sdist)
    wheel = upstream.add(build_wheel(tmp_path / "wheels", "big", "9.0"))
    depot = start_depot(tmp_path, "--upstream", upstream.url)
    try:
        status, _, body = get(f"{depot.index}big/", {"Accept": JSON})
        assert status == 200
        files = json.loads(body)["files"]
        assert len(files) == 3002
        html_page = ProjectPage.from_html("big", get(f"{depot.index}big/", {"Accept": HTML})[2])
        assert [p.filename for p in html_page.packages] == [f["filename"] for f in files]
        python = fresh_venv(tmp_path / "venv")
        pip_install(python, depot.index, "big==9.0")
        assert installed(python, "big") == "9.0"
        metrics = json.loads(get(f"{depot.url}/+status")[2])["metrics"]
        assert metrics["pages_rendered"] >= 2  # JSON and HTML; pip's own request may be a third
        assert metrics["parsed_entries_held"] == 0  # the page was not kept parsed
        assert upstream.hits["/simple/big/"] == 1
        assert upstream.hits[wheel.url_path] == 1
    finally:
        depot.stop()
        upstream.stop()
