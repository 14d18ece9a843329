"""The mirror on an object store: every mirror command with ``--mirror s3://BUCKET/PREFIX``.

A real SeaweedFS, real pipdepot processes, a real upstream on loopback, real pip: sync fills
the bucket, check proves it offline, serve installs from it (and sees what ``add`` puts in
while it runs), export and import move it, and the bucket itself is a static PEP 503 tree.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import urllib.request
from typing import TYPE_CHECKING

import pytest

from pipdepot.storage.locate import open_store
from pipdepot.storage.store import StoreKey
from tests.conftest import clean_environ
from tests.depot import Depot, free_port, fresh_venv, get, installed, pip_install
from tests.fake_upstream import FakeUpstream
from tests.mirror_audit import audit_mirror
from tests.seaweed import Seaweed
from tests.wheels import build_sdist, build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


_HREF = re.compile(r'href="\.\./(packages/[^"#]+)#sha256=([0-9a-f]{64})"')


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dists")
    build_wheel(directory, "app", "1.0", requires=("lib>=1", "srconly"))
    build_wheel(directory, "lib", "1.0")
    build_wheel(directory, "lib", "2.0")
    build_sdist(directory, "srconly", "1.0", buildable=True, build_requires=("buildtool",))
    build_wheel(directory, "buildtool", "1.0")
    return directory


@pytest.fixture
def upstream(dists: Path) -> Iterator[FakeUpstream]:
    with FakeUpstream(with_metadata=False).serving(dists) as server:
        yield server


def pipdepot(
    seaweed: Seaweed, home: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """A pipdepot command that reaches the bucket through the standard AWS variables only."""
    env = clean_environ(HOME=str(home), **seaweed.env)
    env.pop("XDG_CACHE_HOME", None)
    result = subprocess.run(
        [sys.executable, "-m", "pipdepot", *args], env=env, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"pipdepot {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def bucket_tree(seaweed: Seaweed, location: str) -> dict[str, dict[str, str]]:
    """Every project page of the bucket's static tree: {project: {file key: sha256}}, each file checked."""

    async def read() -> dict[str, dict[str, str]]:
        store = open_store(location, environ=seaweed.env | {"HOME": "/nonexistent"})
        try:
            tree: dict[str, dict[str, str]] = {}
            for project in await store.children(""):
                if project == "packages":
                    continue
                page = await store.read(StoreKey(f"{project}/index.html"))
                if page is None:
                    continue
                files = dict(_HREF.findall(page.decode()))
                for key in files:
                    assert await store.stat(StoreKey(key)) is not None, f"{project} lists {key}, not stored"
                tree[project] = files
            return tree
        finally:
            await store.close()

    return asyncio.run(read())


def put_object(seaweed: Seaweed, location: str, key: StoreKey) -> None:
    async def put() -> None:
        store = open_store(location, environ=seaweed.env | {"HOME": "/nonexistent"})
        try:
            await store.put(key, b"parts of a large file")
        finally:
            await store.close()

    asyncio.run(put())


def stored(seaweed: Seaweed, location: str, key: StoreKey) -> bool:
    async def stat() -> bool:
        store = open_store(location, environ=seaweed.env | {"HOME": "/nonexistent"})
        try:
            return await store.stat(key) is not None
        finally:
            await store.close()

    return asyncio.run(stat())


def test_every_mirror_command_works_on_a_bucket(
    seaweed: Seaweed, upstream: FakeUpstream, dists: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    location = seaweed.location()
    wanted = tmp_path / "requirements.txt"
    wanted.write_text("app\n")

    output = pipdepot(
        seaweed, home, "sync", "-r", str(wanted), "--mirror", location, "--upstream", upstream.url
    )
    assert "synced" in output.stdout + output.stderr
    tree = bucket_tree(seaweed, location)
    assert set(tree) == {"app", "lib", "srconly", "buildtool"}
    assert any(key.endswith("srconly-1.0.tar.gz") for key in tree["srconly"])
    assert "ok:" in pipdepot(seaweed, home, "check", "-r", str(wanted), "--mirror", location).stdout
    listing = pipdepot(seaweed, home, "ls", "--mirror", location).stdout
    assert "4 projects" in listing

    serve = Depot(
        tmp_path / "unused",
        tmp_path / "serve.log",
        ("--upstream", upstream.url),
        location=location,
        env={"HOME": str(home), **seaweed.env},
    ).start()
    try:
        base = serve.url
        fetched = upstream.file_hits()
        python = fresh_venv(tmp_path / "venv")
        pip_install(python, f"{base}/simple/", "app")
        assert installed(python, "lib") == "2.0"
        assert upstream.file_hits() == fetched  # every file came from the bucket
        key = next(k for k in tree["lib"] if k.endswith("lib-2.0-py3-none-any.whl"))
        request = urllib.request.Request(f"{base}/{key}", headers={"Range": "bytes=10-19"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 206
            assert response.headers["X-Pipdepot-Cache"] == "hit"
            assert response.read() == (dists / "lib-2.0-py3-none-any.whl").read_bytes()[10:20]

        private = build_wheel(tmp_path / "private", "corp-tool", "0.1")
        pipdepot(seaweed, home, "add", str(private), "--mirror", location)  # beside the running serve
        deadline = time.monotonic() + 2.0
        while True:
            with urllib.request.urlopen(f"{base}/simple/corp-tool/", timeout=30) as response:
                page = response.read().decode()
            if "corp_tool-0.1-py3-none-any.whl" in page or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert "corp_tool-0.1-py3-none-any.whl" in page
    finally:
        serve.stop()

    archive = tmp_path / "mirror.tar"
    pipdepot(seaweed, home, "export", "--mirror", location, str(archive))
    copy = tmp_path / "copy"
    pipdepot(seaweed, home, "import", str(archive), "--mirror", str(copy))
    assert audit_mirror(copy).problems == []
    assert {p.parent.name for p in copy.glob("*/index.html")} == {*tree, "corp-tool"}
    again = seaweed.location()
    pipdepot(seaweed, home, "import", str(archive), "--mirror", again)
    assert set(bucket_tree(seaweed, again)) == {*tree, "corp-tool"}


def test_the_next_writer_sweeps_what_a_killed_upload_staged(seaweed: Seaweed, tmp_path: Path) -> None:
    """A writer killed mid-upload of a large file leaves its staging object; the next writer removes it."""
    location = seaweed.location()
    killed = StoreKey(f".pipdepot/uploads/{time.time() - 3600:.0f}-{'0' * 32}")  # an hour past its time
    live = StoreKey(f".pipdepot/uploads/{time.time() + 3600:.0f}-{'1' * 32}")  # a live upload's
    put_object(seaweed, location, killed)
    put_object(seaweed, location, live)
    home = tmp_path / "home"
    home.mkdir()
    private = build_wheel(tmp_path / "private", "corp-tool", "0.1")
    added = pipdepot(seaweed, home, "add", str(private), "--mirror", location)
    assert "removed 1 upload staging object" in added.stderr
    assert not stored(seaweed, location, killed)
    assert stored(seaweed, location, live)


def test_a_bad_location_or_unreachable_store_is_one_line(seaweed: Seaweed, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    bad = pipdepot(seaweed, home, "ls", "--mirror", "s3://No_Such/x", check=False)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert "bucket" in bad.stderr
    env = clean_environ(
        HOME=str(home), **{**seaweed.env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    )
    down = subprocess.run(
        [sys.executable, "-m", "pipdepot", "ls", "--mirror", seaweed.location()],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert down.returncode == 1
    assert down.stderr.startswith("pipdepot: error:")
    assert "Traceback" not in down.stderr


def test_a_node_answers_from_memory_while_its_store_is_down(
    upstream: FakeUpstream, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Its own SeaweedFS, stopped under a running serve: pages it holds are still served; files are a 503."""
    store = Seaweed(tmp_path_factory.mktemp("seaweed-down"))
    store.start()
    home = tmp_path / "home"
    home.mkdir()
    location = store.location()
    try:
        wanted = tmp_path / "requirements.txt"
        wanted.write_text("lib\n")
        pipdepot(store, home, "sync", "-r", str(wanted), "--mirror", location, "--upstream", upstream.url)
        depot = Depot(
            tmp_path / "unused",
            tmp_path / "serve.log",
            ("--upstream", upstream.url),
            location=location,
            env={"HOME": str(home), **store.env},
        ).start()
        try:
            status, _, page = get(f"{depot.url}/simple/lib/")
            assert status == 200
            wheel = re.search(r'href="(/packages/[^"#]+lib-2\.0-py3-none-any\.whl)', page.decode())
            assert wheel is not None
            store.stop()
            time.sleep(1.2)  # the record is due to be asked again
            status, _, again = get(f"{depot.url}/simple/lib/")
            assert (status, again) == (200, page)
            status, _, body = get(f"{depot.url}{wheel.group(1)}")
            assert status == 503
            assert body.decode().startswith("the mirror's store is unavailable: ")
            assert body.decode().count("\n") <= 1
            assert get(f"{depot.url}/+health")[0] == 200
            assert "Traceback" not in depot.log_text()
        finally:
            depot.stop()
    finally:
        store.stop()


def test_commands_on_a_bucket_end_with_their_own_status_under_load(seaweed: Seaweed, tmp_path: Path) -> None:
    """obstore's native runtime aborted about one process in five at exit under load (exit -6)."""
    home = tmp_path / "home"
    home.mkdir()
    env = clean_environ(HOME=str(home), **seaweed.env)
    location = seaweed.location()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "pipdepot", "ls", "--mirror", location],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(12)
    ]
    assert [process.wait(timeout=120) for process in processes] == [0] * 12
