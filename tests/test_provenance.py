"""PEP 708 and PEP 740 through a running ``pipdepot serve``, with a real fake upstream and real pip.

What upstream says about a project's other homes (``tracks``, ``alternate-locations``) reaches
every page form; each file's provenance is kept beside it and served at the mirror's own URL,
offline too, and a bad one never costs the file.
"""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from typing import TYPE_CHECKING

import pytest
from pypi_simple import ProjectPage

from pipdepot.core.names import NormalizedName
from pipdepot.operations.session import open_mirror
from tests.depot import Depot, fresh_venv, get, installed, pip_install, uv_install
from tests.fake_upstream import FakeUpstream, Mode
from tests.mirror_audit import audit_mirror
from tests.wheels import build_sdist, build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.conftest import PipdepotRunner

JSON = "application/vnd.pypi.simple.v1+json"
TRACKS = ["https://tracked.example/simple/signed/", "https://other.example/simple/signed/"]
ALTERNATES = ["https://alternate.example/simple/signed/"]
PROVENANCE = json.dumps(
    {"version": 1, "attestation_bundles": [{"publisher": {"kind": "test", "claims": {}}, "attestations": []}]}
).encode()
WHEEL = "signed-1.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dists")
    build_wheel(directory, "signed", "1.0", requires=("plain",))
    build_sdist(directory, "signed", "1.0")  # no provenance
    build_wheel(directory, "plain", "1.0")  # no provenance
    build_wheel(directory, "hostile", "1.0")
    build_wheel(directory, "hostile", "2.0")
    return directory


def make_upstream(dists: Path, mode: Mode) -> FakeUpstream:
    upstream = FakeUpstream(mode=mode)
    for path in sorted(dists.iterdir()):
        upstream.add(path)
    upstream.tracks["signed"] = TRACKS
    upstream.alternate_locations["signed"] = ALTERNATES
    upstream.provenances[WHEEL] = PROVENANCE
    upstream.provenances["hostile-1.0-py3-none-any.whl"] = b'{"x": "' + b"a" * (2 << 20) + b'"}'  # 2 MiB
    upstream.provenances["hostile-2.0-py3-none-any.whl"] = b"<html>not a provenance</html>"
    return upstream.start()


@pytest.fixture(params=["json", "html"])
def upstream(request: pytest.FixtureRequest, dists: Path) -> Iterator[FakeUpstream]:
    server = make_upstream(dists, request.param)
    yield server
    server.stop()


@pytest.fixture
def json_upstream(dists: Path) -> Iterator[FakeUpstream]:
    server = make_upstream(dists, "json")
    yield server
    server.stop()


def start_depot(tmp_path: Path, *args: str) -> Depot:
    return Depot(tmp_path / "mirror", tmp_path / "serve.log", args).start()


def files_by_name(depot: Depot, project: str) -> dict[str, dict[str, object]]:
    page = json.loads(get(f"{depot.index}{project}/", {"Accept": JSON})[2])
    return {entry["filename"]: entry for entry in page["files"]}


def test_pep708_and_provenance_in_every_page_form_then_offline(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    depot = start_depot(tmp_path, "--upstream", upstream.url)
    try:
        html = ProjectPage.from_html("signed", get(f"{depot.index}signed/", {"Accept": "text/html"})[2])
        assert (html.tracks, html.alternate_locations) == (TRACKS, ALTERNATES)
        page = json.loads(get(f"{depot.index}signed/", {"Accept": JSON})[2])
        assert page["meta"]["tracks"] == TRACKS
        assert page["alternate-locations"] == ALTERNATES
        files = {entry["filename"]: entry for entry in page["files"]}
        wheel_url = files[WHEEL]["url"]
        assert files[WHEEL]["provenance"] == f"{wheel_url}.provenance"  # pipdepot's, not upstream's
        assert "provenance" not in files["signed-1.0.tar.gz"]
        links = {p.filename: p for p in html.packages}
        assert links[WHEEL].provenance_url == f"{wheel_url}.provenance"
        assert links["signed-1.0.tar.gz"].provenance_url is None

        python = fresh_venv(tmp_path / "venv")
        pip_install(python, depot.index, "signed", "--only-binary", ":all:")
        assert installed(python, "signed") == "1.0"
        stored = depot.mirror / f"{wheel_url.removeprefix('/')}.provenance"
        assert stored.read_bytes() == PROVENANCE  # kept with the file's download
        assert upstream.hits[f"/integrity/{WHEEL}/provenance"] == 1
        status, headers, body = get(f"{depot.url}{wheel_url}.provenance")
        assert (status, body, headers["X-Pipdepot-Cache"]) == (200, PROVENANCE, "hit")
        assert headers["Content-Type"].startswith("application/json")
        assert upstream.hits[f"/integrity/{WHEEL}/provenance"] == 1
        assert get(f"{depot.url}{files['signed-1.0.tar.gz']['url']}.provenance")[0] == 404

        tree = depot.mirror / "signed" / "index.html"
        static = ProjectPage.from_html("signed", tree.read_bytes())
        assert (static.tracks, static.alternate_locations) == (TRACKS, ALTERNATES)
        relative = next(p for p in static.packages if p.filename == WHEEL).provenance_url
        assert relative is not None
        assert relative.startswith("../")  # like its file's link: works over file:// and nginx
        assert (tree.parent / relative).resolve() == stored.resolve()
        assert audit_mirror(depot.mirror).problems == []  # the .provenance is no orphan
    finally:
        depot.stop()
    upstream.stop()

    offline = start_depot(tmp_path, "--upstream", upstream.url, "--offline")
    try:
        status, _, body = get(f"{offline.url}{wheel_url}.provenance")
        assert (status, body) == (200, PROVENANCE)
        assert files_by_name(offline, "signed")[WHEEL]["provenance"] == f"{wheel_url}.provenance"
        html = ProjectPage.from_html("signed", get(f"{offline.index}signed/")[2])
        assert html.tracks == TRACKS
        # the census counts files, not their provenance (nor metadata)
        assert json.loads(get(f"{offline.url}/+status")[2])["metrics"]["cached_files"] == 2
    finally:
        offline.stop()


def test_provenance_asked_for_first_is_fetched_once_without_the_file(
    tmp_path: Path, json_upstream: FakeUpstream
) -> None:
    depot = start_depot(tmp_path, "--upstream", json_upstream.url)
    try:
        url = files_by_name(depot, "signed")[WHEEL]["provenance"]
        status, headers, body = get(f"{depot.url}{url}")
        assert (status, body, headers["X-Pipdepot-Cache"]) == (200, PROVENANCE, "miss")
        assert get(f"{depot.url}{url}")[1]["X-Pipdepot-Cache"] == "hit"
        assert json_upstream.hits[f"/integrity/{WHEEL}/provenance"] == 1
        assert json_upstream.file_hits() == 0  # the wheel itself was not fetched for it
        assert get(f"{depot.url}{str(url).removesuffix(WHEEL + '.provenance')}x.whl.provenance")[0] == 404
    finally:
        depot.stop()


def test_a_hostile_provenance_is_refused_and_the_wheel_installs(
    tmp_path: Path, json_upstream: FakeUpstream
) -> None:
    depot = start_depot(tmp_path, "--upstream", json_upstream.url)
    try:
        files = files_by_name(depot, "hostile")
        for version, installer in (("1.0", pip_install), ("2.0", uv_install)):
            python = fresh_venv(tmp_path / f"venv-{version}")
            installer(python, depot.index, f"hostile=={version}")
            assert installed(python, "hostile") == version
            url = str(files[f"hostile-{version}-py3-none-any.whl"]["url"])
            assert (depot.mirror / url.removeprefix("/")).is_file()
            assert not (depot.mirror / f"{url.removeprefix('/')}.provenance").exists()
            assert get(f"{depot.url}{url}.provenance")[0] == 502  # asked again, refused again
        log = depot.log_text()
        assert "provenance of hostile-1.0-py3-none-any.whl not kept" in log
        assert "over 1048576" in log
        assert "provenance of hostile-2.0-py3-none-any.whl not kept" in log
        assert "provenance refused: not JSON" in log
        assert audit_mirror(depot.mirror).problems == []
    finally:
        depot.stop()


def test_export_and_import_carry_provenance(
    run_pipdepot: PipdepotRunner, tmp_path: Path, json_upstream: FakeUpstream
) -> None:
    depot = start_depot(tmp_path, "--upstream", json_upstream.url)
    try:
        pip_install(fresh_venv(tmp_path / "venv"), depot.index, "signed", "--only-binary", ":all:")
        url = str(files_by_name(depot, "signed")[WHEEL]["url"]).removeprefix("/")
    finally:
        depot.stop()
    archive = tmp_path / "out.tar"
    run_pipdepot("export", str(archive), "--mirror", str(depot.mirror))
    with tarfile.open(archive) as tar:
        assert f"files/{url}.provenance" in tar.getnames()
    target = tmp_path / "target"
    assert "imported 2 files" in run_pipdepot("import", str(archive), "--mirror", str(target)).stdout
    assert (target / f"{url}.provenance").read_bytes() == PROVENANCE
    assert audit_mirror(target).problems == []

    async def forget() -> int:  # as sync's pruning and a rolled-back import do
        async with open_mirror(target, purpose="test", writer=True) as opened:
            return await opened.forget(NormalizedName("signed"), WHEEL)

    assert asyncio.run(forget()) > 0
    assert not (target / url).exists()
    assert not (target / f"{url}.provenance").exists()  # the file's provenance goes with it
    assert audit_mirror(target).problems == []

    forged = tmp_path / "forged.tar"  # a provenance that is not one: the import is refused whole
    with tarfile.open(archive) as tar, tarfile.open(forged, "w") as out:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith(".provenance"):
                data = b"[1, 2]"
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    result = run_pipdepot("import", str(forged), "--mirror", str(tmp_path / "other"), check=False)
    assert result.returncode == 1
    assert "not an object" in result.stderr
