"""Uploads with real twine and uv publish, tokens, private projects (dependency confusion), yanking."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import clean_environ
from tests.depot import Depot, fresh_venv, get, installed, pip_install, uv_install
from tests.fake_upstream import FakeUpstream
from tests.wheels import build_sdist, build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.conftest import PipdepotRunner
    from tests.seaweed import Seaweed

JSON = "application/vnd.pypi.simple.v1+json"
#: A server reads the token file again at most once a second.
TOKENS_SEEN = 1.2


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("uploads")
    build_wheel(directory / "v1", "privlib", "1.0")
    build_sdist(directory / "v1", "privlib", "1.0", buildable=True)  # twine wants more than PKG-INFO
    build_wheel(directory / "v2", "privlib", "1.1")
    build_wheel(directory / "other", "privlib", "1.0", payload=100)  # same filename, other bytes
    build_wheel(directory / "shadow-private", "shadowed", "0.0.0.1")
    build_wheel(directory / "shadow-upstream", "shadowed", "0.0.0.2")
    build_wheel(directory / "shadow-upstream", "shadowed", "0.0.0.0")  # noqa: S104 (a version)
    return directory


@pytest.fixture
def depot(tmp_path: Path) -> Iterator[Depot]:
    server = Depot(tmp_path / "mirror", tmp_path / "serve.log", ("--offline",)).start()
    yield server
    server.stop()


def twine(repository: str, token: str | None, *files: Path) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).parent / "twine"),
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
    ]
    command += ["--repository-url", repository, "-u", "__token__", "-p", token or "none-given"]
    return subprocess.run(
        [*command, *map(str, files)],
        env=clean_environ(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def uv_publish(repository: str, token: str, *files: Path) -> subprocess.CompletedProcess[str]:
    uv = Path(sys.executable).parent / "uv"
    command = [str(uv), "publish", "--no-config", "--publish-url", repository, "--token", token]
    return subprocess.run(
        [*command, *map(str, files)],
        env=clean_environ(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def said(result: subprocess.CompletedProcess[str]) -> str:
    """What a client printed, as one line (twine wraps its messages to the terminal's width)."""
    return " ".join((result.stdout + result.stderr).split())


def create_token(run_pipdepot: PipdepotRunner, mirror: Path, *projects: str) -> str:
    scope = [arg for project in projects for arg in ("--project", project)]
    token = run_pipdepot("token", "create", *scope, "--mirror", str(mirror)).stdout.strip()
    assert token.startswith("pipdepot-")
    time.sleep(TOKENS_SEEN)
    return token


def stored_files(mirror: Path) -> list[str]:
    return sorted(p.name for p in (mirror / "packages").rglob("*") if p.is_file() and "." in p.name)


def test_twine_uploads_with_a_token_and_is_refused_without(
    depot: Depot, dists: Path, run_pipdepot: PipdepotRunner, tmp_path: Path
) -> None:
    wheel, sdist = sorted((dists / "v1").iterdir(), key=lambda p: p.suffix != ".whl")
    refused = twine(depot.url + "/", None, wheel)
    assert refused.returncode != 0
    assert "403" in said(refused)
    assert "pipdepot token create" in said(refused)  # uploads are off: says how to turn them on

    token = create_token(run_pipdepot, depot.mirror, "privlib")
    wrong = twine(depot.url + "/", "pipdepot-" + "x" * 43, wheel)
    assert wrong.returncode != 0
    assert "invalid or revoked token" in said(wrong)
    assert not (depot.mirror / "packages").exists() or stored_files(depot.mirror) == []

    uploaded = twine(depot.url + "/", token, wheel, sdist)
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    again = twine(depot.url + "/", token, wheel)  # the same file again: fine
    assert again.returncode == 0, again.stdout + again.stderr
    clash = twine(depot.url + "/", token, dists / "other" / wheel.name)
    assert clash.returncode != 0
    assert "409" in said(clash)
    stored = depot.mirror / "packages" / "+local" / "privlib" / wheel.name
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(wheel.read_bytes()).digest()

    python = fresh_venv(tmp_path / "venv")
    pip_install(python, depot.index, "privlib")
    assert installed(python, "privlib") == "1.0"
    status, _, page = get(f"{depot.url}/simple/privlib/", {"Accept": JSON})
    assert status == 200
    assert sorted(f["filename"] for f in json.loads(page)["files"]) == sorted([wheel.name, sdist.name])


def test_uv_publish_and_a_token_scoped_to_another_project(
    depot: Depot, dists: Path, run_pipdepot: PipdepotRunner, tmp_path: Path
) -> None:
    elsewhere = create_token(run_pipdepot, depot.mirror, "someone-else")
    refused = uv_publish(depot.url + "/", elsewhere, *(dists / "v2").iterdir())
    assert refused.returncode != 0
    assert "may not upload to project privlib" in said(refused)
    token = create_token(run_pipdepot, depot.mirror)  # any project
    published = uv_publish(depot.url + "/", token, *(dists / "v2").iterdir())
    assert published.returncode == 0, published.stdout + published.stderr
    python = fresh_venv(tmp_path / "venv")
    uv_install(python, depot.index, "privlib")
    assert installed(python, "privlib") == "1.1"

    listed = run_pipdepot("token", "list", "--json", "--mirror", str(depot.mirror)).stdout
    ids = [t["id"] for t in json.loads(listed)]
    assert len(ids) == 2
    assert token not in listed  # only hashes are kept, and not even those are shown
    assert token not in (depot.mirror / ".pipdepot" / "tokens.json").read_text()
    run_pipdepot("token", "revoke", ids[1], "--mirror", str(depot.mirror))
    time.sleep(TOKENS_SEEN)
    revoked = uv_publish(depot.url + "/", token, *(dists / "v1").iterdir())
    assert revoked.returncode != 0
    assert "invalid or revoked token" in said(revoked)


@pytest.fixture
def upstream(dists: Path) -> Iterator[FakeUpstream]:
    """An upstream with a newer release of a name the tests publish privately."""
    server = FakeUpstream()
    for path in sorted((dists / "shadow-upstream").iterdir()):
        server.add(path)
    yield server.start()
    server.stop()


def test_a_private_project_is_never_shadowed_by_a_newer_upstream_release(
    dists: Path, upstream: FakeUpstream, run_pipdepot: PipdepotRunner, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    depot = Depot(mirror, tmp_path / "serve.log", ("--upstream", upstream.url)).start()
    try:
        before = fresh_venv(tmp_path / "before")
        pip_install(before, depot.index, "shadowed")
        assert installed(before, "shadowed") == "0.0.0.2"  # not private yet: upstream's project

        token = create_token(run_pipdepot, mirror)
        published = twine(depot.url + "/", token, *(dists / "shadow-private").iterdir())
        assert published.returncode == 0, published.stdout + published.stderr
        time.sleep(TOKENS_SEEN)  # what the server holds of the project is read again within a second
        for install, name in ((pip_install, "pip"), (uv_install, "uv")):
            python = fresh_venv(tmp_path / name)
            install(python, depot.index, "shadowed")
            assert installed(python, "shadowed") == "0.0.0.1", name
        status, _, page = get(f"{depot.url}/simple/shadowed/", {"Accept": JSON})
        assert status == 200
        listed = json.loads(page)
        assert [f["filename"] for f in listed["files"]] == ["shadowed-0.0.0.1-py3-none-any.whl"]
        assert listed["versions"] == ["0.0.0.1"]
        upstream_file = next(iter(upstream.projects["shadowed"])).url_path
        assert get(depot.url + upstream_file)[0] == 404  # an upstream file not stored is not fetched for it
        tree = (mirror / "shadowed" / "index.html").read_text()
        assert "0.0.0.1" in tree
        assert "0.0.0.2" not in tree

        ls = json.loads(run_pipdepot("ls", "--json", "--mirror", str(mirror), "--offline").stdout)
        assert {p["name"]: p["private"] for p in ls} == {"shadowed": True}

        run_pipdepot("allow-upstream", "shadowed", "--mirror", str(mirror))
        time.sleep(TOKENS_SEEN)
        merged = fresh_venv(tmp_path / "merged")
        pip_install(merged, depot.index, "shadowed")
        assert installed(merged, "shadowed") == "0.0.0.2"  # allowed: upstream's releases beside its own
        run_pipdepot("allow-upstream", "shadowed", "--off", "--mirror", str(mirror))
        time.sleep(TOKENS_SEEN)
        again = fresh_venv(tmp_path / "again")
        pip_install(again, depot.index, "shadowed")
        assert installed(again, "shadowed") == "0.0.0.1"
    finally:
        depot.stop()


def test_ls_says_whether_a_private_name_is_upstream_too(
    dists: Path, upstream: FakeUpstream, run_pipdepot: PipdepotRunner, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    run_pipdepot("add", str(dists / "shadow-private"), str(dists / "v1"), "--mirror", str(mirror))
    env = {"PIPDEPOT_UPSTREAMS": upstream.url}
    listed = json.loads(run_pipdepot("ls", "--json", "--mirror", str(mirror), env=env).stdout)
    assert {p["name"]: (p["private"], p["upstream"]) for p in listed} == {
        "privlib": (True, False),
        "shadowed": (True, True),
    }
    text = run_pipdepot("ls", "--mirror", str(mirror), env=env).stdout
    assert "[private, also upstream]" in text


def test_yanking_an_uploaded_release(
    depot: Depot, dists: Path, run_pipdepot: PipdepotRunner, tmp_path: Path
) -> None:
    token = create_token(run_pipdepot, depot.mirror)
    for version in ("v1", "v2"):
        assert twine(depot.url + "/", token, *(dists / version).glob("*.whl")).returncode == 0
    yanked = run_pipdepot(
        "yank", "privlib", "1.1", "--reason", "broken <build>", "--mirror", str(depot.mirror)
    )
    assert "privlib-1.1-py3-none-any.whl" in yanked.stdout
    time.sleep(TOKENS_SEEN)
    _, _, html = get(f"{depot.url}/simple/privlib/")
    assert 'data-yanked="broken &lt;build&gt;"' in html.decode()
    _, _, page = get(f"{depot.url}/simple/privlib/", {"Accept": JSON})
    by_name = {f["filename"]: f for f in json.loads(page)["files"]}
    assert by_name["privlib-1.1-py3-none-any.whl"]["yanked"] == "broken <build>"
    assert by_name["privlib-1.0-py3-none-any.whl"].get("yanked", False) is False
    assert "data-yanked" in (depot.mirror / "privlib" / "index.html").read_text()
    for install, name in ((pip_install, "pip"), (uv_install, "uv")):
        python = fresh_venv(tmp_path / name)
        install(python, depot.index, "privlib")
        assert installed(python, "privlib") == "1.0", name  # the yanked release is skipped
        install(python, depot.index, "privlib==1.1")
        assert installed(python, "privlib") == "1.1", name  # unless pinned exactly (PEP 592)
    static = fresh_venv(tmp_path / "static")
    pip_install(static, (depot.mirror).as_uri() + "/", "privlib")
    assert installed(static, "privlib") == "1.0"  # the static tree says so too

    run_pipdepot("unyank", "privlib", "1.1", "--mirror", str(depot.mirror))
    time.sleep(TOKENS_SEEN)
    python = fresh_venv(tmp_path / "unyanked")
    pip_install(python, depot.index, "privlib")
    assert installed(python, "privlib") == "1.1"
    missing = run_pipdepot("yank", "privlib", "9.9", "--mirror", str(depot.mirror), check=False)
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1
    assert "no uploaded or added file of version 9.9" in missing.stderr


def test_reads_can_require_a_token(dists: Path, run_pipdepot: PipdepotRunner, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    run_pipdepot("add", str(dists / "v1"), "--mirror", str(mirror))
    token = create_token(run_pipdepot, mirror)
    depot = Depot(mirror, tmp_path / "serve.log", ("--offline", "--reads-need-token")).start()
    try:
        assert get(f"{depot.url}/+health")[0] == 200
        status, headers, _ = get(f"{depot.url}/simple/privlib/")
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Basic")
        wrong = base64.b64encode(b"__token__:pipdepot-wrong").decode()
        assert get(f"{depot.url}/simple/privlib/", {"Authorization": f"Basic {wrong}"})[0] == 403
        python = fresh_venv(tmp_path / "denied")
        assert pip_install(python, depot.index, "privlib", check=False).returncode != 0
        index = f"http://__token__:{token}@127.0.0.1:{depot.port}/simple/"
        for install, name in ((pip_install, "pip"), (uv_install, "uv")):
            python = fresh_venv(tmp_path / name)
            install(python, index, "privlib")
            assert installed(python, "privlib") == "1.0", name
    finally:
        depot.stop()


def post(url: str, fields: dict[str, str], file: tuple[str, bytes] | None, token: str) -> tuple[int, str]:
    """A hand-made multipart upload, for what no client would send."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    if file is not None:
        filename, data = file
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"\r\n'
        parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    auth = base64.b64encode(f"__token__:{token}".encode()).decode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Basic {auth}"}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_bad_uploads_are_refused_in_one_line_and_leave_nothing(
    dists: Path, run_pipdepot: PipdepotRunner, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    token = create_token(run_pipdepot, mirror)
    depot = Depot(mirror, tmp_path / "serve.log", ("--offline", "--upload-limit", "1")).start()
    wheel = next((dists / "v1").glob("*.whl"))
    data = wheel.read_bytes()
    good = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": "privlib",
        "version": "1.0",
        "filetype": "bdist_wheel",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
    }
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    other_name = build_wheel(renamed, "otherlib", "1.0")
    inside = zipfile.ZipFile(other_name)
    liar = tmp_path / "privlib-1.0-py3-none-any.whl"  # named privlib, its METADATA says otherlib
    with zipfile.ZipFile(liar, "w") as archive:
        for info in inside.infolist():
            archive.writestr(info, inside.read(info))
    liar_data = liar.read_bytes()
    cases = [
        ({**good, "sha256_digest": "0" * 64}, (wheel.name, data), 400, "does not match"),
        ({**good, "name": "otherlib"}, (wheel.name, data), 400, "is not a file of project"),
        ({**good, "version": "2.0"}, (wheel.name, data), 400, "is not a file of version"),
        ({k: v for k, v in good.items() if k != "sha256_digest"}, (wheel.name, data), 400, "no digest"),
        ({**good, ":action": "submit"}, (wheel.name, data), 400, "only file_upload"),
        (good, None, 400, "no file"),
        (good, ("../escape.whl", data), 400, "unusable file name"),
        (good, (wheel.name, b"PK\x03\x04 not a wheel"), 400, "privlib-1.0-py3-none-any.whl"),
        (
            {**good, "sha256_digest": hashlib.sha256(liar_data).hexdigest()},
            (liar.name, liar_data),
            400,
            "its metadata names project",
        ),
        ({**good, "sha256_digest": "x"}, (wheel.name, data + b"\0" * (1024 * 1024)), 413, "larger than"),
        ({**good, "description": "x" * (4 * 1024 * 1024 + 1000)}, (wheel.name, data), 413, "fields exceed"),
    ]
    try:
        for fields, file, status, reason in cases:
            sent = fields
            if file is not None and file[1] is not data and fields is good:  # a damaged wheel: its own digest
                sent = {**good, "sha256_digest": hashlib.sha256(file[1]).hexdigest()}
            answer = post(depot.url + "/", sent, file, token)
            assert answer[0] == status, (reason, answer)
            assert reason in answer[1], answer
            assert answer[1].count("\n") == 1, answer
        for body, content_type in (
            (b"garbage", "multipart/form-data; boundary=xyz"),
            (
                b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\nb',
                "multipart/form-data; boundary=xyz",
            ),
            (b"--xyz\r\n\r\n\r\n--xyz--\r\n", "multipart/form-data; boundary=xyz"),
            (b"a=b", "application/x-www-form-urlencoded"),
            (b"", "multipart/form-data"),
        ):
            auth = base64.b64encode(f"__token__:{token}".encode()).decode()
            headers = {"Content-Type": content_type, "Authorization": f"Basic {auth}"}
            request = urllib.request.Request(depot.url + "/", data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            assert status == 400, (body, content_type)
        assert not (mirror / "packages").exists() or stored_files(mirror) == []
        assert not list((mirror / ".pipdepot").rglob("upload-*"))  # the staging is gone
        assert post(depot.url + "/legacy/", good, (wheel.name, data), token)[0] == 200
        assert get(f"{depot.url}/simple/privlib/", method="POST")[0] == 405
    finally:
        depot.stop()
    assert "Traceback" not in depot.log_text()


def test_uploads_to_a_bucket(
    seaweed: Seaweed, dists: Path, run_pipdepot: PipdepotRunner, tmp_path: Path
) -> None:
    location = seaweed.location()
    env = seaweed.env
    token = run_pipdepot("token", "create", "--mirror", location, env=env).stdout.strip()
    depot = Depot(
        tmp_path / "unused", tmp_path / "serve.log", ("--offline",), location=location, env=env
    ).start()
    try:
        published = twine(depot.url + "/", token, *(dists / "v1").iterdir())
        assert published.returncode == 0, published.stdout + published.stderr
        python = fresh_venv(tmp_path / "venv")
        pip_install(python, depot.index, "privlib")
        assert installed(python, "privlib") == "1.0"
    finally:
        depot.stop()
    shutil.rmtree(tmp_path / "unused", ignore_errors=True)
