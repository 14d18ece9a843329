"""Many writers on one mirror directory at once, as real processes (issue 14, "Done means").

A running ``serve`` with clients installing through it the whole time, while ``sync``, ``add``
and ``import`` write the same directory; two ``serve`` on one directory; a ``sync`` SIGKILLed
mid-way. Each ends with the whole mirror audited (tests/mirror_audit.py) and the spools empty.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import pytest

from tests.conftest import clean_environ
from tests.depot import Depot, get
from tests.fake_upstream import Dist, FakeUpstream
from tests.mirror_audit import audit_mirror, spool_leftovers
from tests.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator

JSON = "application/vnd.pypi.simple.v1+json"
#: How long a running ``serve`` may take to list and serve what another process wrote.
CONVERGE = 2.0
#: Every writer process and every client install ends within this, or the test fails.
PROCESS_DEADLINE = 120.0
CLIENT_PROJECTS = ("client-app", "client-lib", "client-tool")
SYNCED = tuple(f"synced-{index:02}" for index in range(24))
EXPORTED = ("exported-one", "exported-two", "exported-three")
#: In the export as well as in the requirements: ``import`` and ``sync`` race on these files.
BOTH = SYNCED[:4]
SLOW = tuple(f"slow-{index:02}" for index in range(20))
RACED = ("race-app", *(f"race-lib-{index}" for index in range(4)))


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dists")
    build_wheel(directory, "client-app", "1.0", requires=("client-lib",))
    build_wheel(directory, "client-lib", "1.0")
    build_wheel(directory, "client-tool", "1.0")
    for name in (*SYNCED, *EXPORTED):
        build_wheel(directory, name, "1.0", payload=8 * 1024)
    for name in SLOW:  # 8 chunks of 64 KiB: with a file delay, a sync lasts long enough to be cut
        build_wheel(directory, name, "1.0", payload=512 * 1024)
    build_wheel(directory, "race-app", "1.0", requires=tuple(RACED[1:]))
    for name in RACED[1:]:
        build_wheel(directory, name, "1.0", payload=256 * 1024)
    build_wheel(directory, "first", "1.0", payload=64 * 1024)
    return directory


@pytest.fixture
def upstream(dists: Path) -> Iterator[FakeUpstream]:
    with FakeUpstream(with_metadata=True).serving(dists) as server:
        yield server


@pytest.fixture
def private_wheel(tmp_path: Path) -> Path:
    """A wheel of a project upstream does not have."""
    return build_wheel(tmp_path / "private", "private-tool", "1.0", payload=4 * 1024)


# -- processes -----------------------------------------------------------------------------


@dataclass
class Writer:
    """A ``pipdepot`` command run as its own process, its output in a file; stopped by PID."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Writer:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipdepot", *self.argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # its own group: what it started (uv) goes with it
            )
        return self

    def wait(self, deadline: float = PROCESS_DEADLINE) -> int:
        assert self.process is not None
        try:
            return self.process.wait(deadline)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"pipdepot {self.name} did not end within {deadline} s:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL the command and whatever it started; nothing of it keeps running."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def pipdepot_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = clean_environ(HOME=str(home))
    env.pop("XDG_CACHE_HOME", None)
    env.pop("XDG_CONFIG_HOME", None)
    return env


def writer(tmp_path: Path, name: str, *argv: str) -> Writer:
    return Writer(name, list(argv), tmp_path / f"{name}.log", pipdepot_env(tmp_path))


def finish(writers: list[Writer]) -> None:
    """Wait for each writer; all must exit 0 (the output of each that did not)."""
    codes = [each.wait() for each in writers]
    failed = [
        f"pipdepot {w.name} exited {code}:\n{w.output()}"
        for w, code in zip(writers, codes, strict=True)
        if code != 0
    ]
    assert failed == [], "\n".join(failed)


def run_all(writers: list[Writer]) -> None:
    """Start every writer at once and finish them all."""
    try:
        for each in writers:
            each.start()
        finish(writers)
    finally:
        for each in writers:
            each.kill()


#: What an install loop does on its ``turn``: the tool, the index, the requirements.
Plan: TypeAlias = Callable[[int], tuple[str, str, tuple[str, ...]]]


def rotating(indexes: list[str], requirements: tuple[str, ...] = ("client-app", "client-tool")) -> Plan:
    """pip, then uv, through each index in turn, the same requirements each time."""

    def plan(turn: int) -> tuple[str, str, tuple[str, ...]]:
        tool = ("pip", "uv")[(turn // len(indexes)) % 2]
        return tool, indexes[turn % len(indexes)], requirements

    return plan


@dataclass
class Installs:
    """pip and uv installing in a thread until stopped, as ``plan`` says; every success and failure kept."""

    scratch: Path
    plan: Plan
    done: int = 0
    installed: list[tuple[str, ...]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, *, first: bool = True) -> Installs:
        """Start the loop; with ``first``, return once one install has ended."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if first:
            self.wait_for(1)
        return self

    def wait_for(self, count: int) -> None:
        """Until ``count`` installs have ended (the loop is running), within a deadline."""
        deadline = time.monotonic() + PROCESS_DEADLINE
        while self.done < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.done >= count, f"{self.done} installs in {PROCESS_DEADLINE} s: {self.failures}"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(PROCESS_DEADLINE + 10)
            assert not self._thread.is_alive()
            self._thread = None

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            tool, index, requirements = self.plan(turn)
            target = self.scratch / f"install-{turn}"
            problem = install(tool, index, target, requirements)
            if problem is None:
                self.installed.append(requirements)
            else:
                self.failures.append(f"{tool} through {index} ({' '.join(requirements)}): {problem}")
            shutil.rmtree(target, ignore_errors=True)
            self.done += 1
            turn += 1


def install(tool: str, index: str, target: Path, requirements: tuple[str, ...]) -> str | None:
    """pip or uv installing ``requirements`` into ``target`` from ``index`` alone; what went wrong."""
    if tool == "pip":
        argv = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check"]
    else:
        uv = Path(sys.executable).parent / "uv"
        argv = [str(uv if uv.exists() else "uv"), "pip", "install", "--no-config", "--no-cache"]
        argv += ["--python", sys.executable]
    argv += ["--target", str(target), "--index-url", index, *requirements]
    try:
        result = subprocess.run(
            argv, env=clean_environ(), capture_output=True, text=True, check=False, timeout=PROCESS_DEADLINE
        )
    except subprocess.TimeoutExpired:
        return f"did not end within {PROCESS_DEADLINE} s"
    if result.returncode != 0:
        return f"exit {result.returncode}: {result.stderr[-2000:]}"
    missing = [r for r in requirements if not (target / r.replace("-", "_") / "__init__.py").is_file()]
    return f"not installed: {missing}" if missing else None


# -- HTTP ----------------------------------------------------------------------------------


def listed_files(depot: Depot, project: str) -> dict[str, tuple[str, str]]:
    """The project page ``serve`` gives now: filename -> (absolute URL, sha256)."""
    page = f"{depot.index}{project}/"
    status, _, body = get(page, {"Accept": JSON})
    if status != 200:
        return {}
    return {
        entry["filename"]: (urllib.parse.urljoin(page, entry["url"]), entry["hashes"]["sha256"])
        for entry in json.loads(body)["files"]
    }


def served_as_hit(depot: Depot, project: str, filename: str, sha256: str) -> str | None:
    """Why ``serve`` does not (yet) list ``filename`` and send it from the mirror, or ``None``."""
    files = listed_files(depot, project)
    if filename not in files:
        return f"{depot.url} does not list {filename} on {project}'s page: {sorted(files)}"
    url = files[filename][0]
    status, headers, _ = get(url, method="HEAD")  # a miss answered from the page: nothing fetched
    if status != 200 or headers.get("X-Pipdepot-Cache") != "hit":
        return f"{filename} through {depot.url}: {status} {headers.get('X-Pipdepot-Cache')}"
    status, headers, body = get(url)
    if status != 200 or headers.get("X-Pipdepot-Cache") != "hit":
        return f"{filename} through {depot.url}: {status} {headers.get('X-Pipdepot-Cache')} after a hit"
    if hashlib.sha256(body).hexdigest() != sha256:
        return f"{filename} through {depot.url} does not match its sha256"
    return None


def eventually(check: Callable[[], str | None], seconds: float = CONVERGE) -> None:
    """``check`` passes (returns ``None``) within ``seconds``; else the test fails with its last word."""
    deadline = time.monotonic() + seconds
    while (problem := check()) is not None:
        if time.monotonic() > deadline:
            pytest.fail(f"after {seconds} s: {problem}")
        time.sleep(0.05)


def assert_hits(depot: Depot, upstream: FakeUpstream, projects: tuple[str, ...]) -> None:
    """Each project's file listed and served from the mirror by ``depot`` within ``CONVERGE``."""
    for name in projects:
        dist = dist_of(upstream, name)
        eventually(partial(served_as_hit, depot, name, dist.path.name, dist.sha256))


def upstream_fetches(upstream: FakeUpstream, projects: tuple[str, ...]) -> dict[str, int]:
    return {name: upstream.hits[dist_of(upstream, name).url_path] for name in projects}


def dist_of(upstream: FakeUpstream, project: str) -> Dist:
    (dist,) = upstream.projects[project]
    return dist


def assert_clean(mirror: Path, files: int) -> None:
    audit = audit_mirror(mirror)
    assert audit.problems == [], "\n".join(audit.problems)
    assert audit.files == files
    assert spool_leftovers(mirror) == []


def requirements_file(tmp_path: Path, name: str, projects: tuple[str, ...]) -> Path:
    path = tmp_path / name
    path.write_text("".join(f"{project}\n" for project in projects))
    return path


# -- the tests -------------------------------------------------------------------------------


def test_sync_add_and_import_while_serve_runs_and_clients_install(
    tmp_path: Path, upstream: FakeUpstream, private_wheel: Path
) -> None:
    """The README's order, serve then fill, with builds installing through serve all along.

    Each writer's files are listed and sent as hits by the running serve within ``CONVERGE``
    of that writer's exit, with no new upstream fetch; the audit finds every record whole.
    """
    mirror = tmp_path / "mirror"
    other = tmp_path / "other-mirror"
    archive = tmp_path / "exported.tar"
    prepare = [
        writer(tmp_path, "sync-other", "sync", "--mirror", str(other), "--upstream", upstream.url, "-r",
               str(requirements_file(tmp_path, "exported.txt", (*EXPORTED, *BOTH)))),
    ]  # fmt: skip
    run_all(prepare)
    run_all([writer(tmp_path, "export", "export", str(archive), "--mirror", str(other))])

    expected = len(SYNCED) + len(EXPORTED) + 1 + len(CLIENT_PROJECTS)  # 1: the private wheel
    depot = Depot(mirror, tmp_path / "serve.log", ("--upstream", upstream.url, "--ttl", "0"))
    clients = Installs(tmp_path / "clients", rotating([depot.index]))
    # client-app too: sync writes the records of a project serve is busy with
    requirements = requirements_file(tmp_path, "requirements.txt", (*SYNCED, "client-app"))
    sync = writer(tmp_path, "sync", "sync", "--mirror", str(mirror), "--upstream", upstream.url,
                  "-r", str(requirements))  # fmt: skip
    add = writer(tmp_path, "add", "add", "--mirror", str(mirror), str(private_wheel))
    imported = writer(tmp_path, "import", "import", "--mirror", str(mirror), str(archive))
    writers = [sync, add, imported]
    try:
        depot.start()
        clients.start()
        for each in writers:
            each.start()
        finish([add, imported])
        # serve lists and serves what add and import wrote, while sync may still be writing
        exported = upstream_fetches(upstream, EXPORTED)
        sha256 = hashlib.sha256(private_wheel.read_bytes()).hexdigest()
        eventually(lambda: served_as_hit(depot, "private-tool", private_wheel.name, sha256))
        assert_hits(depot, upstream, EXPORTED)
        finish([sync])
        synced = upstream_fetches(upstream, SYNCED)
        assert all(count >= 1 for count in synced.values())  # the syncs fetched them, not serve
        assert_hits(depot, upstream, SYNCED)
        # what sync and import wrote came from the mirror: upstream was not asked for it again
        assert upstream_fetches(upstream, EXPORTED) == exported
        assert upstream_fetches(upstream, SYNCED) == synced

        clients.wait_for(clients.done + 1)  # still installing after every writer ended
        clients.stop()
        assert clients.failures == []
        assert_clean(mirror, expected)  # serve idle: nothing of its own in flight
    finally:
        for each in writers:
            each.kill()
        clients.stop()
        depot.stop()
    assert_clean(mirror, expected)


def test_two_serve_on_one_directory(tmp_path: Path, upstream: FakeUpstream) -> None:
    """A second node on the same directory: what one cached, the other sends as a hit.

    Racing installs through both fetch each file once (the download lease in the shared
    store); they succeed, and every file is whole and recorded once.
    """
    mirror = tmp_path / "mirror"
    upstream.file_delay = 0.1  # 0.4 s a race-lib file: the concurrent installs overlap
    one = Depot(mirror, tmp_path / "serve-one.log", ("--upstream", upstream.url))
    two = Depot(mirror, tmp_path / "serve-two.log", ("--upstream", upstream.url))
    try:
        one.start()
        two.start()
        first = dist_of(upstream, "first")
        assert "first-1.0-py3-none-any.whl" in listed_files(one, "first")  # both know the page...
        assert "first-1.0-py3-none-any.whl" in listed_files(two, "first")
        url, _ = listed_files(one, "first")[first.path.name]
        status, headers, body = get(url)  # ...then one fetches the file
        assert (status, headers["X-Pipdepot-Cache"]) == (200, "miss")
        assert hashlib.sha256(body).hexdigest() == first.sha256
        eventually(lambda: None if audit_mirror(mirror).files == 1 else "first not yet recorded")
        problem = served_as_hit(two, "first", first.path.name, first.sha256)
        assert problem is None, problem
        assert upstream.hits[first.url_path] == 1

        failures: list[str] = []

        def race(tool: str, depot: Depot, target: Path) -> None:
            problem = install(tool, depot.index, target, ("race-app",))
            if problem is not None:
                failures.append(f"{tool} through {depot.url}: {problem}")

        threads = [
            threading.Thread(target=race, args=(tool, depot, tmp_path / f"race-{tool}-{number}"))
            for number, depot in enumerate((one, two))
            for tool in ("pip", "uv")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(PROCESS_DEADLINE + 10)
        assert not any(thread.is_alive() for thread in threads)
        assert failures == []
        fetched = upstream_fetches(upstream, RACED)
        assert all(count == 1 for count in fetched.values()), fetched  # one fetch across both servers
        for depot in (one, two):
            assert_hits(depot, upstream, RACED)
        assert_clean(mirror, 1 + len(RACED))
    finally:
        two.stop()
        one.stop()
    assert_clean(mirror, 1 + len(RACED))


def test_a_sync_killed_mid_way_while_serve_runs(tmp_path: Path, upstream: FakeUpstream) -> None:
    """A writer dying never wedges the others: the next writer adopts and settles what it left."""
    mirror = tmp_path / "mirror"
    depot = Depot(mirror, tmp_path / "serve.log", ("--upstream", upstream.url, "--ttl", "0"))
    clients = Installs(tmp_path / "clients", rotating([depot.index]))
    requirements = requirements_file(tmp_path, "requirements.txt", SLOW)
    argv = ("sync", "--mirror", str(mirror), "--upstream", upstream.url, "-r", str(requirements))
    killed = writer(tmp_path, "sync-killed", *argv)
    try:
        depot.start()
        clients.start()  # the client projects are cached before files slow down
        upstream.file_delay = 0.1  # 0.8 s a file
        killed.start()
        assert killed.process is not None
        own = f"{killed.process.pid}-"

        def cut_mid_way() -> str | None:
            if killed.process is not None and killed.process.poll() is not None:
                pytest.fail(f"sync ended before it was cut:\n{killed.output()}")
            committed = [name for name in SLOW if (mirror / name / "index.html").exists()]
            in_flight = [p for p in spool_leftovers(mirror) if p.parent.name.startswith(own)]
            return None if committed and in_flight else f"committed {committed}, in flight {in_flight}"

        eventually(cut_mid_way, PROCESS_DEADLINE)
        killed.kill()
        upstream.file_delay = 0
        done = clients.done
        clients.wait_for(done + 1)  # serve keeps serving
        assert get(f"{depot.url}/+health")[0] == 200

        run_all([writer(tmp_path, "sync-again", *argv)])
        assert_hits(depot, upstream, SLOW)
        clients.stop()
        assert clients.failures == []
        assert_clean(mirror, len(SLOW) + len(CLIENT_PROJECTS))  # the dead sync's spool adopted, settled
    finally:
        killed.kill()
        clients.stop()
        depot.stop()
    assert_clean(mirror, len(SLOW) + len(CLIENT_PROJECTS))
