"""Target views: pages trimmed to one target, by name or from the installer's own User-Agent."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, ClassVar

import pytest
from packaging import tags

from tests.conftest import clean_environ
from tests.depot import Depot, fresh_venv, get, installed, pip_install, uv_install
from tests.fake_upstream import FakeUpstream
from tests.wheels import build_sdist, build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.conftest import PipdepotRunner

JSON = "application/vnd.pypi.simple.v1+json"
HERE = f"cp{sys.version_info[0]}{sys.version_info[1]}"
#: This machine as a target: its Python and its newest manylinux tag.
HOST_PLATFORM = next(t.platform for t in tags.sys_tags() if t.platform.startswith("manylinux_"))
VIEW = f"{HERE}-{HOST_PLATFORM}"
OTHER = "cp399" if HERE != "cp399" else "cp398"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstream]:
    directory = tmp_path_factory.mktemp("views")
    server = FakeUpstream()
    for tag in (
        f"{HERE}-{HERE}-manylinux_2_17_x86_64",
        f"{HERE}-abi3-manylinux_2_17_x86_64",
        f"{OTHER}-{OTHER}-manylinux_2_17_x86_64",
        f"{HERE}-{HERE}-win_amd64",
        f"{HERE}-{HERE}-musllinux_1_2_x86_64",
        f"{HERE}-{HERE}-macosx_11_0_arm64",
        "py3-none-any",
    ):
        server.add(build_wheel(directory, "multi", "1.0", tag=tag))
    server.add(build_sdist(directory, "multi", "1.0"))
    server.add(build_wheel(directory, "multi", "2.0", tag=f"{OTHER}-{OTHER}-manylinux_2_17_x86_64"))
    server.add(build_wheel(directory, "multi", "3.0"), requires_python=">=3.99")
    server.add(build_wheel(directory, "multi", "0.9"), yanked="bad")
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    server.add(build_wheel(directory, "micro", "1.0"))
    server.add(build_wheel(directory, "micro", "1.5"), requires_python=">=3.8, <4")
    server.add(build_wheel(directory, "micro", "2.0"), requires_python=f">={minor}.5")
    yield server.start()
    server.stop()


@pytest.fixture
def depot(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Depot]:
    server = Depot(tmp_path / "mirror", tmp_path / "serve.log", ("--upstream", upstream.url)).start()
    yield server
    server.stop()


def listed(depot: Depot, index: str, headers: dict[str, str] | None = None) -> tuple[dict[str, str], dict]:  # type: ignore[type-arg]
    status, answer, body = get(f"{depot.url}{index}multi/", {"Accept": JSON, **(headers or {})})
    assert status == 200, body
    return answer, json.loads(body)


def test_a_named_view_lists_what_its_target_can_install(depot: Depot) -> None:
    _, full = listed(depot, "/simple/")
    headers, view = listed(depot, f"/+target/{VIEW}/simple/")
    assert headers["X-Pipdepot-View"] == VIEW
    names = [f["filename"] for f in view["files"]]
    assert names == [
        f"multi-1.0-{HERE}-{HERE}-manylinux_2_17_x86_64.whl",
        f"multi-1.0-{HERE}-abi3-manylinux_2_17_x86_64.whl",
        "multi-1.0-py3-none-any.whl",
        "multi-1.0.tar.gz",
        "multi-0.9-py3-none-any.whl",
    ]
    assert view["versions"] == ["0.9", "1.0"]  # 2.0 (another Python) and 3.0 (Requires-Python) are gone
    assert len(full["files"]) == 11
    by_name = {f["filename"]: f for f in full["files"]}
    assert all(by_name[f["filename"]] == f for f in view["files"])  # hashes, yanked, urls: unchanged
    _, _, html = get(f"{depot.url}/+target/{VIEW}/simple/multi/", {"Accept": "text/html"})
    assert html.count(b"<a ") == 5
    assert b'data-yanked="bad"' in html


def test_views_cache_and_refuse_as_pages_do(depot: Depot) -> None:
    first, _ = listed(depot, f"/+target/{VIEW}/simple/")
    again, _ = listed(depot, f"/+target/{VIEW}/simple/")
    assert first["ETag"] == again["ETag"]
    assert again["X-Pipdepot-Cache"] == "hit"
    status, _, _ = get(
        f"{depot.url}/+target/{VIEW}/simple/multi/", {"If-None-Match": first["ETag"], "Accept": JSON}
    )
    assert status == 304
    for bad in ("cp311-nonsense_1", "py3-none", "cp311-host", "cp2-manylinux_2_17_x86_64"):
        status, _, body = get(f"{depot.url}/+target/{bad}/simple/multi/")
        assert status == 404, bad
        assert body.decode().count("\n") == 1
    status, _, _ = get(f"{depot.url}/+target/{VIEW}/simple/Multi/")
    assert status == 200  # redirected to the normalized name, inside the view
    status, _, _ = get(f"{depot.url}/+target/{VIEW}/simple/no-such-project/")
    assert status == 404
    assert get(f"{depot.url}/+target/{VIEW}/simple/")[0] == 200  # the root page


def real_user_agents(tmp_path: Path) -> dict[str, str]:
    """The User-Agent real pip and uv send, caught by a server that answers 404 to everything."""
    caught: dict[str, str] = {}

    class Catch(BaseHTTPRequestHandler):
        seen: ClassVar[dict[str, str]] = caught

        def do_GET(self) -> None:
            agent = self.headers.get("User-Agent", "")
            self.seen[agent.split("/", 1)[0]] = agent
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Catch)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    index = f"http://127.0.0.1:{server.server_address[1]}/simple/"
    try:
        python = fresh_venv(tmp_path / "agents")
        pip_install(python, index, "nothing-at-all", check=False)
        uv_install(python, index, "nothing-at-all", check=False)
    finally:
        server.shutdown()
        server.server_close()
    return caught


def test_the_auto_view_reads_pip_and_uvs_own_user_agents(depot: Depot, tmp_path: Path) -> None:
    agents = real_user_agents(tmp_path)
    assert set(agents) >= {"pip", "uv"}, agents
    for client, agent in agents.items():
        headers, view = listed(depot, "/+auto/simple/", {"User-Agent": agent})
        assert headers["X-Pipdepot-View"] == VIEW, (client, agent)
        assert len(view["files"]) == 5
        assert "User-Agent" in headers["Vary"]
    headers, full = listed(depot, "/+auto/simple/", {"User-Agent": "curl/8"})
    assert headers["X-Pipdepot-View"] == "none"  # not an installer that says where it runs: the full page
    assert len(full["files"]) == 11


def agent(python: str) -> str:
    """A pip User-Agent as pip sends it, for this machine with Python ``python``."""
    libc = HOST_PLATFORM.split("_")
    details = {
        "implementation": {"name": "CPython", "version": python},
        "python": python,
        "cpu": "x86_64",
        "distro": {"libc": {"lib": "glibc", "version": f"{libc[1]}.{libc[2]}"}},
        "system": {"name": "Linux"},
    }
    return f"pip/26.3 {json.dumps(details)}"


def test_a_views_pages_do_not_depend_on_which_client_asked_first(depot: Depot) -> None:
    """The view is rendered once for all clients of a target: not trimmed to the first one's micro version."""
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for python in (f"{minor}.2", f"{minor}.7"):
        status, headers, body = get(
            f"{depot.url}/+auto/simple/micro/", {"Accept": JSON, "User-Agent": agent(python)}
        )
        assert status == 200
        assert headers["X-Pipdepot-View"] == VIEW
        assert json.loads(body)["versions"] == ["1.0", "1.5", "2.0"], python
    _, _, body = get(f"{depot.url}/+target/{VIEW}/simple/micro/", {"Accept": JSON})
    assert json.loads(body)["versions"] == ["1.0", "1.5", "2.0"]


def test_a_view_leaves_out_a_requires_python_every_micro_version_meets(depot: Depot) -> None:
    """pip before 24 parses each file's Requires-Python anew: one the target always meets is dropped."""
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    _, _, body = get(f"{depot.url}/simple/micro/", {"Accept": JSON})
    full = {f["filename"]: f.get("requires-python") for f in json.loads(body)["files"]}
    assert full == {
        "micro-1.0-py3-none-any.whl": None,
        "micro-1.5-py3-none-any.whl": ">=3.8, <4",
        "micro-2.0-py3-none-any.whl": f">={minor}.5",
    }
    _, _, body = get(f"{depot.url}/+target/{VIEW}/simple/micro/", {"Accept": JSON})
    view = {f["filename"]: f.get("requires-python") for f in json.loads(body)["files"]}
    assert view == {**full, "micro-1.5-py3-none-any.whl": None}  # 2.0's is kept: not every 3.x.N meets it
    _, _, html = get(f"{depot.url}/+target/{VIEW}/simple/micro/", {"Accept": "text/html"})
    assert html.count(b"data-requires-python") == 1
    assert html.count(b"<a ") == 3


def test_pip_and_uv_install_through_the_views(depot: Depot, tmp_path: Path) -> None:
    for install, name in ((pip_install, "pip"), (uv_install, "uv")):
        for index in (f"{depot.url}/+auto/simple/", f"{depot.url}/+target/{VIEW}/simple/"):
            python = fresh_venv(tmp_path / f"{name}-{len(index)}")
            install(python, index, "multi")
            assert installed(python, "multi") == "1.0", (name, index)


def test_the_plan_points_a_root_at_a_running_servers_view(
    depot: Depot, upstream: FakeUpstream, run_pipdepot: PipdepotRunner, tmp_path: Path
) -> None:
    mirror_dir = str(tmp_path / "nothing")
    plan = run_pipdepot("plan", "--mirror-url", depot.url + "/", "--mirror-dir", mirror_dir).stdout
    assert f"index-url = {depot.url}/+auto/simple/" in plan
    assert "is pipdepot serve: pip and uv read" in plan
    for off in (("--no-target-view",), ()):
        env = {} if off else {"PIPDEPOT_TARGET_VIEW": "0"}
        plain = run_pipdepot(
            "plan", "--mirror-url", depot.index, *off, "--mirror-dir", mirror_dir, env=env
        ).stdout
        assert f"index-url = {depot.index}\n" in plain
        assert "its target view is not used" in plain
    other = run_pipdepot("plan", "--mirror-url", upstream.url, "--mirror-dir", mirror_dir).stdout
    assert f"index-url = {upstream.url}\n" in other  # not pipdepot: used as given
    gone = run_pipdepot("plan", "--mirror-url", "http://127.0.0.1:9/", "--mirror-dir", mirror_dir).stdout
    assert "index-url = http://127.0.0.1:9/\n" in gone


@pytest.mark.root
@pytest.mark.slow
def test_a_debian_roots_own_pip_reads_the_view(debian_root: Path, depot: Depot, tmp_path: Path) -> None:
    """bookworm's pip 23.0.1, in a venv of the root, through the URL `chroot` writes for a pipdepot mirror."""
    script = (
        "python3 -m venv /opt/view && /opt/view/bin/pip install --no-cache-dir --no-input multi "
        "&& /opt/view/bin/python -c 'import multi; print(\"VERSION\", multi.VERSION)' "
        "&& /opt/view/bin/python -c 'from pip._internal.network.session import user_agent; "
        'print("AGENT", user_agent())\'; rc=$?; rm -rf /opt/view; exit $rc'
    )
    command = [sys.executable, "-m", "pipdepot", "chroot", str(debian_root), "--no-pypi"]
    command += [
        "--mirror-url",
        depot.url + "/",
        "--mirror-dir",
        str(tmp_path / "none"),
        "--",
        "sh",
        "-c",
        script,
    ]
    result = subprocess.run(
        command,
        env=clean_environ(HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VERSION 1.0" in result.stdout
    assert "GET /+auto/simple/multi/ 200" in depot.log_text()
    agent = next(line for line in result.stdout.splitlines() if line.startswith("AGENT ")).removeprefix(
        "AGENT "
    )
    headers, _ = listed(depot, "/+auto/simple/", {"User-Agent": agent})
    assert headers["X-Pipdepot-View"].startswith("cp311-manylinux_2_36_"), (
        agent
    )  # bookworm: CPython 3.11, glibc 2.36


def test_the_json_api_answers_under_a_view(depot: Depot) -> None:
    """pip-tools asks ``<index URL><project>/json``: a view's index URL gets the project's hashes too."""
    status, _, body = get(f"{depot.url}/+target/{VIEW}/simple/multi/json")
    assert status == 200, body
    assert "1.0" in json.loads(body)["releases"]
