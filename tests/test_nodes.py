"""Three ``serve`` nodes over one mirror behind a real nginx (issue 14, items 3 and 4), as real processes.

Every test runs on a shared mirror directory and on one SeaweedFS bucket (``s3://BUCKET/PREFIX``,
each node with its own local scratch). Clients use nginx's one address; nodes are SIGKILLed and
restarted under them. Each test ends with the whole mirror audited.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest

from tests.depot import get
from tests.fake_upstream import FakeUpstream
from tests.mirror_audit import Audit, audit_mirror, spool_leftovers
from tests.nodes import Nodes, render_balancer
from tests.store_audit import audit_store
from tests.test_many_writers import (
    CONVERGE,
    PROCESS_DEADLINE,
    Installs,
    Writer,
    dist_of,
    eventually,
    finish,
    install,
    pipdepot_env,
    requirements_file,
    served_as_hit,
)
from tests.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.seaweed import Seaweed

CLIENTS = 50
PIP_CLIENTS = 3
WARM = ("client-app", "client-lib", "client-tool")
COLD = tuple(f"cold-{index:02}" for index in range(12))
SOLO = tuple(f"solo-{index}" for index in range(3))
SYNCED = tuple(f"synced-{index:02}" for index in range(20))
EXPORTED = ("exported-one", "exported-two", "exported-three")


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dists")
    build_wheel(directory, "client-app", "1.0", requires=("client-lib",))
    build_wheel(directory, "client-lib", "1.0")
    build_wheel(directory, "client-tool", "1.0")
    build_wheel(directory, "contended", "1.0", payload=1024 * 1024)  # 16 chunks of 64 KiB
    build_wheel(directory, "slow", "1.0", payload=1024 * 1024)
    for name in (*COLD, *SOLO, *SYNCED, *EXPORTED):
        build_wheel(directory, name, "1.0", payload=8 * 1024)
    return directory


@pytest.fixture
def upstream(dists: Path) -> Iterator[FakeUpstream]:
    server = FakeUpstream(with_metadata=True)  # PEP 658: no client reads a wheel's tail by Range
    for path in sorted(dists.iterdir()):
        server.add(path)
    server.start()
    yield server
    server.stop()


@dataclass
class Mirror:
    """The shared store the nodes and the commands use: a directory, or a prefix in a bucket."""

    kind: Literal["directory", "s3"]
    location: str
    scratch: Path
    #: The AWS variables (S3), for every node and command.
    env: dict[str, str] = field(default_factory=dict)

    def audit(self) -> Audit:
        """The whole mirror audited: records, files, tree (waiting a moment for the tree to converge)."""
        if self.kind == "directory":
            return audit_mirror(Path(self.location))
        return audit_store(self.location, self.scratch / "audit-spool", self.env)

    def assert_clean(self, files: int) -> None:
        audit = self.audit()
        assert audit.problems == [], "\n".join(audit.problems)
        assert audit.files == files
        if self.kind == "directory":  # a node's scratch is inside the directory
            eventually(lambda: _leftovers(Path(self.location)), CONVERGE)


def _leftovers(mirror: Path) -> str | None:
    found = spool_leftovers(mirror)
    return f"left in the spools: {found}" if found else None


@pytest.fixture(params=["directory", "s3"])
def mirror(request: pytest.FixtureRequest, tmp_path: Path) -> Mirror:
    if request.param == "directory":
        return Mirror("directory", str(tmp_path / "mirror"), tmp_path)
    seaweed: Seaweed = request.getfixturevalue("seaweed")
    return Mirror("s3", seaweed.location(), tmp_path, dict(seaweed.env))


@pytest.fixture
def nodes(tmp_path: Path, mirror: Mirror, upstream: FakeUpstream) -> Iterator[Nodes]:
    group = Nodes(tmp_path / "nodes", mirror.location, upstream.url, env=mirror.env)
    try:
        group.start()
        yield group
    finally:
        group.stop()


def fetch(url: str) -> tuple[int, str, str]:
    """GET ``url``: the status, the sha256 of the body, and ``X-Pipdepot-Cache``; errors as status 0."""
    try:
        status, headers, body = get(url)
    except (OSError, http.client.HTTPException) as exc:  # a node killed mid-response: cut short
        return 0, repr(exc), ""
    return status, hashlib.sha256(body).hexdigest(), headers.get("X-Pipdepot-Cache", "")


def join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(PROCESS_DEADLINE)
    assert not any(thread.is_alive() for thread in threads), "a client did not end in time"


def command(tmp_path: Path, mirror: Mirror, name: str, *argv: str) -> Writer:
    """A ``pipdepot`` command on the shared mirror, as a user runs it (its own HOME; the AWS variables)."""
    return Writer(name, list(argv), tmp_path / f"{name}.log", {**pipdepot_env(tmp_path), **mirror.env})


def run(writer: Writer) -> str:
    """Run ``writer`` to its end (exit 0, or the test fails with its output); its output."""
    try:
        finish([writer.start()])
    finally:
        writer.kill()
    return writer.output()


def stdout_of(writer: Writer) -> str:
    """Run ``writer``'s command to its end with its standard output apart (exit 0, or the test fails)."""
    result = subprocess.run(
        [sys.executable, "-m", "pipdepot", *writer.argv],
        env=writer.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=PROCESS_DEADLINE,
    )
    assert result.returncode == 0, f"pipdepot {writer.name} exited {result.returncode}: {result.stderr}"
    return result.stdout


# -- the tests -------------------------------------------------------------------------------


def test_the_documented_nginx_config_is_the_tested_one() -> None:
    """docs/SCALE.md quotes what :func:`render_balancer` writes for three nodes, word for word."""
    doc = (Path(__file__).parent.parent / "docs" / "SCALE.md").read_text()
    rendered = render_balancer([3141, 3142, 3143], "8080", "/var/log/nginx/pipdepot-nodes.access.log")
    assert f"```nginx\n{rendered}```" in doc


def test_fifty_clients_on_one_uncached_file_make_one_upstream_fetch(
    tmp_path: Path, nodes: Nodes, upstream: FakeUpstream, mirror: Mirror
) -> None:
    """50 GETs through nginx at once (spread over the three nodes) and a few pip installs, one file.

    Every client gets the whole, right file; upstream is asked for it once across all nodes.
    """
    dist = dist_of(upstream, "contended")
    upstream.file_delay = 0.1  # 16 chunks: the download lasts 1.6 s, and every client arrives during it
    start = threading.Barrier(CLIENTS + PIP_CLIENTS)
    answers: list[tuple[int, str, str]] = []
    failures: list[str] = []

    def client() -> None:
        start.wait()
        answers.append(fetch(nodes.url + dist.url_path))

    def pip(number: int) -> None:
        start.wait()
        if (problem := install("pip", nodes.index, tmp_path / f"pip-{number}", ("contended",))) is not None:
            failures.append(problem)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    threads += [threading.Thread(target=pip, args=(number,)) for number in range(PIP_CLIENTS)]
    for thread in threads:
        thread.start()
    join_all(threads)
    wrong = [answer for answer in answers if answer[:2] != (200, dist.sha256)]
    assert (len(answers), wrong, failures) == (CLIENTS, [], [])
    assert nodes.balancer is not None
    tried = {addr for addrs in nodes.balancer.upstreams() for addr in addrs.split(", ")}
    assert tried == {f"127.0.0.1:{depot.port}" for depot in nodes.depots}  # spread over every node
    fetched = upstream.hits[dist.url_path]
    assert fetched == 1, f"{fetched} upstream fetches of one file by {len(nodes.depots)} nodes"
    nodes.stop()
    mirror.assert_clean(1)  # contended alone


def test_a_file_cached_through_any_node_is_a_hit_on_every_node(
    nodes: Nodes, upstream: FakeUpstream, mirror: Mirror
) -> None:
    """Node n caches solo-n; within a second every node lists it and sends it as a hit."""
    for name, depot in zip(SOLO, nodes.depots, strict=True):
        dist = dist_of(upstream, name)
        status, sha256, cache = fetch(depot.url + dist.url_path)
        assert (status, sha256, cache) == (200, dist.sha256, "miss")
    for name in SOLO:
        dist = dist_of(upstream, name)
        for depot in nodes.depots:
            eventually(lambda d=depot, s=dist, n=name: served_as_hit(d, n, s.path.name, s.sha256))  # type: ignore[misc]
        assert upstream.hits[dist.url_path] == 1
    nodes.stop()
    mirror.assert_clean(len(SOLO))


def test_a_node_killed_mid_download_another_node_completes_the_install(
    tmp_path: Path, nodes: Nodes, upstream: FakeUpstream, mirror: Mirror
) -> None:
    """Node 0 is SIGKILLed while it fetches a slow file; the install through nginx completes anyway.

    A client of node 1 that asked while node 0 was fetching gets the whole file too, and node 0,
    restarted on its old scratch, settles what it left.
    """
    dist = dist_of(upstream, "slow")
    upstream.file_delay = 0.2  # 16 chunks: 3.2 s
    victim, other = nodes.depots[0], nodes.depots[1]
    cut: list[tuple[int, str, str]] = []
    follower: list[tuple[int, str, str]] = []
    threads = [threading.Thread(target=lambda: cut.append(fetch(victim.url + dist.url_path)))]
    threads[0].start()
    eventually(lambda: None if upstream.hits[dist.url_path] else "node 0 has not started the download", 10)
    time.sleep(0.5)  # a few chunks in
    threads.append(threading.Thread(target=lambda: follower.append(fetch(other.url + dist.url_path))))
    threads[1].start()
    time.sleep(0.3)
    nodes.kill(0)
    problem = install("pip", nodes.index, tmp_path / "after-kill", ("slow",))
    assert problem is None, f"{problem}\n{nodes.logs()}"
    join_all(threads)
    assert len(cut) == 1
    assert cut[0][:2] != (200, dist.sha256)  # the killed node's own client was cut short
    assert follower == [(200, dist.sha256, "miss")]
    assert fetch(nodes.url + dist.url_path)[:2] == (200, dist.sha256)
    nodes.restart(0)
    eventually(lambda: served_as_hit(victim, "slow", dist.path.name, dist.sha256))
    nodes.stop()
    mirror.assert_clean(1)


def cold_installs(scratch: Path, index: str) -> Installs:
    """pip and uv in turn through nginx, a new cold project each time (``installed[-1][-1]``)."""

    def plan(turn: int) -> tuple[str, str, tuple[str, ...]]:
        return ("pip", "uv")[turn % 2], index, ("client-app", COLD[turn % len(COLD)])

    return Installs(scratch, plan)


def cold_installed(loop: Installs) -> set[str]:
    """The cold projects the loop installed."""
    return {requirements[-1] for requirements in loop.installed}


def test_each_node_killed_and_restarted_in_turn_while_installs_run(
    tmp_path: Path, nodes: Nodes, upstream: FakeUpstream, mirror: Mirror
) -> None:
    """Installs through nginx never fail while each node in turn is SIGKILLed and restarted.

    Every file a client installed is recorded, whole, listed and a hit on every node; the
    mirror verifies.
    """
    loop = cold_installs(tmp_path / "clients", nodes.index).start(first=False)
    try:
        for number in range(len(nodes.depots)):
            loop.wait_for(loop.done + 1)
            nodes.kill(number)
            loop.wait_for(loop.done + 1)  # installs go on with the node dead
            nodes.restart(number)
        loop.wait_for(loop.done + 1)
    finally:
        loop.stop()
    assert loop.failures == [], f"{loop.failures}\n{nodes.logs()}"
    installed = tuple(sorted(cold_installed(loop)))
    for name in (*installed, "client-app", "client-lib"):
        dist = dist_of(upstream, name)
        for depot in nodes.depots:
            eventually(lambda d=depot, s=dist, n=name: served_as_hit(d, n, s.path.name, s.sha256))  # type: ignore[misc]
    nodes.stop()
    mirror.assert_clean(len(installed) + 2)


def test_sync_check_ls_export_and_import_on_the_shared_mirror_while_nodes_serve(
    tmp_path: Path, nodes: Nodes, upstream: FakeUpstream, mirror: Mirror
) -> None:
    """The mirror commands work on the store the nodes serve, and the nodes serve what they wrote."""
    other = tmp_path / "other-mirror"
    archive = tmp_path / "other.tar"
    exported = requirements_file(tmp_path, "exported.txt", EXPORTED)
    run(command(tmp_path, mirror, "sync-other", "sync", "--mirror", str(other), "--upstream", upstream.url,
                "-r", str(exported)))  # fmt: skip
    run(command(tmp_path, mirror, "export-other", "export", str(archive), "--mirror", str(other)))
    fetched = {name: upstream.hits[dist_of(upstream, name).url_path] for name in EXPORTED}

    loop = cold_installs(tmp_path / "clients", nodes.index).start(first=False)
    try:
        loop.wait_for(1)
        synced = requirements_file(tmp_path, "synced.txt", SYNCED)
        shared = ("--mirror", mirror.location)
        run(command(tmp_path, mirror, "sync", "sync", *shared, "--upstream", upstream.url, "-r", str(synced)))
        out = run(command(tmp_path, mirror, "import", "import", str(archive), *shared))
        assert f"imported {len(EXPORTED)} files" in out
        run(command(tmp_path, mirror, "check", "check", *shared, "-r", str(synced)))
        run(command(tmp_path, mirror, "check-imported", "check", *shared, "-r", str(exported)))
        listing = json.loads(stdout_of(command(tmp_path, mirror, "ls", "ls", "--json", *shared)))
        whole = tmp_path / "shared.tar"
        installed_before = cold_installed(loop)
        run(command(tmp_path, mirror, "export", "export", str(whole), *shared))
        loop.wait_for(loop.done + 1)  # still installing after every command ended
    finally:
        loop.stop()
    assert loop.failures == [], loop.failures
    assert {*SYNCED, *EXPORTED} <= {project["name"] for project in listing}
    for name in (*SYNCED, *EXPORTED):
        dist = dist_of(upstream, name)
        for depot in nodes.depots:
            eventually(lambda d=depot, s=dist, n=name: served_as_hit(d, n, s.path.name, s.sha256))  # type: ignore[misc]
    assert {name: upstream.hits[dist_of(upstream, name).url_path] for name in EXPORTED} == fetched
    copy = tmp_path / "copy"  # the whole export, imported into a directory of its own: every file there
    out = run(command(tmp_path, mirror, "import-copy", "import", str(whole), "--mirror", str(copy)))
    # client-app, client-lib and each cold project installed: before the export began, at the least
    least = len(SYNCED) + len(EXPORTED) + 2 + len(installed_before)
    files = len(SYNCED) + len(EXPORTED) + 2 + len(cold_installed(loop))
    copied = audit_mirror(copy)
    assert copied.problems == []
    assert least <= copied.files <= files, out
    assert f"imported {copied.files} files" in out, out
    nodes.stop()
    mirror.assert_clean(files)
