"""The adversarial suite for the network side of `pipdepot serve`, sized for CI.

A fault-injecting upstream on loopback (tests/fault_upstream.py) breaks pages and files in
every way listed there; hostile clients send malformed request lines, trickle their headers or
open too many connections. Each case checks what a client gets, that nothing half-written is
kept, and the server's peak RSS. Times are only bounded generously: they prove "not stuck for
ever", never a speed. Each case prints a ``FIGURE`` line (``pytest -s``) for docs/RELIABILITY.md.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest

from pipdepot.errors import ConfigError
from pipdepot.settings import ServeFlags, load_serve_settings
from tests.conftest import clean_environ
from tests.depot import Depot, free_port, fresh_venv, installed, pip_install, uv_install
from tests.fault_upstream import GARBAGE_MARKER, Fault, FaultUpstream
from tests.mirror_audit import audit_mirror, spool_leftovers
from tests.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: Peak RSS of `serve` allowed under any case (issue 12).
MAX_RSS_MB = 150
#: Small deadlines, so a case lasts seconds; the rules are the defaults' (30 s, 8 KiB/s).
DEADLINE = 3
MIN_RATE = 4096
FAST = ("--upstream-timeout", "2", "--upstream-deadline", str(DEADLINE), "--upstream-min-rate", str(MIN_RATE))
#: "Not stuck for ever": far above any deadline here, far below a test's patience.
BOUND_S = 45


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("wheels")
    return {
        "alpha": build_wheel(directory, "alpha", "1.0"),
        "beta": build_wheel(directory, "beta", "1.0"),
        "gamma": build_wheel(directory, "gamma", "1.0"),
        "bulky": build_wheel(directory, "bulky", "1.0", payload=600 * 1024),
    }


@pytest.fixture
def upstream(wheels: dict[str, Path]) -> Iterator[FaultUpstream]:
    server = FaultUpstream(trickle_interval=0.5)
    for path in wheels.values():
        server.add(path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def depot(tmp_path: Path, upstream: FaultUpstream) -> Iterator[Depot]:
    server = Depot(
        tmp_path / "mirror", tmp_path / "serve.log", ("--upstream", upstream.url, "--ttl", "0", *FAST)
    )
    yield server.start()
    server.stop()


class Answer:
    """What a client got: status, reason phrase, headers and body, or the error that cut it."""

    def __init__(self, url: str, *, timeout: float = 90, accept: str = "*/*") -> None:
        self.status, self.reason, self.body, self.headers = 0, "", b"", {}
        self.error: str | None = None
        started = time.monotonic()
        host, _, rest = url.removeprefix("http://").partition("/")
        connection = http.client.HTTPConnection(host, timeout=timeout)
        try:
            connection.request("GET", "/" + rest, headers={"Accept": accept})
            response = connection.getresponse()
            self.status, self.reason, self.headers = response.status, response.reason, dict(response.headers)
            self.body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.error = type(exc).__name__
        finally:
            connection.close()
        self.seconds = time.monotonic() - started


def file_url(depot: Depot, upstream: FaultUpstream, name: str) -> str:
    return depot.url + upstream.projects[name][0]


def figure(case: str, **values: object) -> None:
    print(f"FIGURE {case}: " + ", ".join(f"{k}={v}" for k, v in values.items()))  # noqa: T201


def set_page_fault(upstream: FaultUpstream, fault: Fault) -> None:
    upstream.refuse(refusing=fault == "refuse")
    upstream.page_fault = fault


# -- pages ----------------------------------------------------------------------------------

PAGE_FAULTS: list[Fault] = [
    "refuse",
    "reset",
    "hang",
    "trickle",
    "truncate",
    "lying-length",
    "garbage",
    "garbage-page",
    "5xx",
    "redirect-loop",
    "gzip-bomb",
]


@pytest.mark.parametrize("fault", PAGE_FAULTS)
def test_a_broken_page_is_served_stale_or_a_one_line_502(
    depot: Depot, upstream: FaultUpstream, wheels: dict[str, Path], fault: Fault
) -> None:
    beta = Answer(file_url(depot, upstream, "beta"))
    assert (beta.status, beta.body) == (200, wheels["beta"].read_bytes())
    assert Answer(f"{depot.index}alpha/").status == 200  # a page cached, none of its files

    set_page_fault(upstream, fault)
    first = Answer(f"{depot.index}gamma/")  # the failure itself, not the back-off after it
    stale = Answer(f"{depot.index}beta/", accept="application/vnd.pypi.simple.v1+json")
    assert (stale.status, stale.headers.get("X-Pipdepot-Cache")) == (200, "stale"), stale.body
    assert [f["filename"] for f in json.loads(stale.body)["files"]] == [wheels["beta"].name]
    assert stale.seconds < BOUND_S
    for failed in (first, Answer(f"{depot.index}alpha/")):
        assert failed.status == 502, failed.body
        assert failed.body.count(b"\n") == 1, failed.body[:300]
        assert len(failed.body) < 600
        assert GARBAGE_MARKER not in failed.body
        assert failed.reason.startswith("Bad Gateway ("), failed.reason
    assert first.seconds < BOUND_S
    rss = depot.peak_rss_mb()
    assert rss < MAX_RSS_MB
    assert spool_leftovers(depot.mirror) == []  # no spooled page left behind
    log = depot.log_text()
    assert "Traceback" not in log
    assert GARBAGE_MARKER.decode() not in log
    figure(
        f"page {fault}",
        seconds_to_502=f"{first.seconds:.1f}",
        peak_rss_mb=f"{rss:.0f}",
        body_bytes=len(first.body),
        reason=first.reason,
    )


def test_a_trickling_page_is_abandoned_and_the_project_recovers(
    depot: Depot, upstream: FaultUpstream, wheels: dict[str, Path]
) -> None:
    """At a byte every half second a read timeout never fires: only the total deadline ends it."""
    assert Answer(file_url(depot, upstream, "beta")).status == 200
    upstream.page_fault = "trickle"
    waiting = [threading.Thread(target=Answer, args=(f"{depot.index}beta/",)) for _ in range(3)]
    for thread in waiting:  # later clients join the one refresh
        thread.start()
    stale = Answer(f"{depot.index}beta/")
    failed = Answer(f"{depot.index}gamma/")
    for thread in waiting:
        thread.join(BOUND_S)
    assert stale.headers.get("X-Pipdepot-Cache") == "stale"
    assert stale.seconds < BOUND_S
    assert failed.status == 502
    assert "within 3 s" in failed.reason or "failed less than" in failed.reason, failed.reason
    upstream.page_fault = "ok"
    time.sleep(16)  # the back-off after a failure (docs/SERVER.md)
    fresh = Answer(f"{depot.index}gamma/")
    assert (fresh.status, fresh.headers.get("X-Pipdepot-Cache")) == (200, "miss")
    figure(
        "page trickle, recovery",
        seconds_to_stale=f"{stale.seconds:.1f}",
        seconds_to_502=f"{failed.seconds:.1f}",
    )


# -- files ----------------------------------------------------------------------------------

FILE_FAULTS: list[Fault] = [
    "reset",
    "hang",
    "trickle",
    "truncate",
    "overlong",
    "lying-length",
    "wrong-hash",
    "garbage",
    "5xx",
    "redirect-loop",
]


@pytest.mark.parametrize("fault", FILE_FAULTS)
def test_a_broken_download_keeps_nothing_and_the_next_client_starts_afresh(
    depot: Depot, upstream: FaultUpstream, wheels: dict[str, Path], fault: Fault
) -> None:
    assert Answer(f"{depot.index}alpha/").status == 200
    upstream.file_fault = fault
    url = file_url(depot, upstream, "alpha")
    broken = Answer(url)
    good = wheels["alpha"].read_bytes()
    assert broken.error is not None or broken.status != 200 or len(broken.body) < len(good)
    assert broken.seconds < BOUND_S
    assert not (depot.mirror / "packages").exists()
    assert spool_leftovers(depot.mirror) == []
    upstream.file_fault = "ok"
    again = Answer(url)
    assert (again.status, again.body) == (200, good)
    assert audit_mirror(depot.mirror).problems == []
    rss = depot.peak_rss_mb()
    assert rss < MAX_RSS_MB
    assert "Traceback" not in depot.log_text()
    figure(f"file {fault}", seconds_to_cut=f"{broken.seconds:.1f}", peak_rss_mb=f"{rss:.0f}")


def test_a_stalled_download_is_abandoned_and_the_next_client_starts_a_fresh_one(
    depot: Depot, upstream: FaultUpstream, wheels: dict[str, Path]
) -> None:
    """Single flight must not make every later client join a download that will never end."""
    assert Answer(f"{depot.index}alpha/").status == 200
    url = file_url(depot, upstream, "alpha")
    upstream.file_fault = "trickle"
    followers: list[Answer] = []
    threads = [threading.Thread(target=lambda: followers.append(Answer(url))) for _ in range(3)]
    for thread in threads:
        thread.start()
        time.sleep(0.2)
    upstream.file_fault = "ok"  # upstream recovers while the first download still trickles
    for thread in threads:
        thread.join(BOUND_S + 5)
    assert len(followers) == 3
    assert all(f.body != wheels["alpha"].read_bytes() for f in followers)  # all followed the stalled one
    assert max(f.seconds for f in followers) < BOUND_S
    fresh = Answer(url)
    assert (fresh.status, fresh.body) == (200, wheels["alpha"].read_bytes())
    assert upstream.hits[upstream.projects["alpha"][0]] == 2  # the stalled download, then a fresh one
    figure("file trickle, 3 followers", seconds_to_cut=f"{max(f.seconds for f in followers):.1f}")


def test_a_large_file_on_a_slow_but_steady_link_is_not_killed(
    depot: Depot, upstream: FaultUpstream, wheels: dict[str, Path]
) -> None:
    """600 KiB at 100 KiB/s lasts twice the deadline; it is above the minimum rate, so it goes on."""
    upstream.file_rate = 100 * 1024
    assert Answer(f"{depot.index}bulky/").status == 200
    answer = Answer(file_url(depot, upstream, "bulky"))
    assert (answer.status, answer.body) == (200, wheels["bulky"].read_bytes())
    assert answer.seconds > DEADLINE  # a total deadline would have killed it
    figure(
        "file at 100 KiB/s, 600 KiB",
        seconds=f"{answer.seconds:.1f}",
        peak_rss_mb=f"{depot.peak_rss_mb():.0f}",
    )


def test_pip_shows_why_a_project_is_unavailable(
    tmp_path: Path, depot: Depot, upstream: FaultUpstream
) -> None:
    """pip hides a 502's body ("from versions: none"); with -vv it shows the reason phrase."""
    upstream.refuse(refusing=True)
    result = pip_install(fresh_venv(tmp_path / "venv"), depot.index, "-vv", "gamma", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Bad Gateway (" in output, output[-3000:]
    assert "cannot connect: Connection refused" in output
    assert "502: upstream unavailable and gamma is not cached" in depot.log_text()
    uv = uv_install(fresh_venv(tmp_path / "uv"), depot.index, "gamma", check=False)  # uv: no flag needed
    assert "Bad Gateway (" in uv.stderr, uv.stderr
    assert "cannot connect: Connection refused" in uv.stderr
    assert depot.peak_rss_mb() < MAX_RSS_MB


# -- hostile clients ------------------------------------------------------------------------


def test_bad_request_lines_are_one_line_each_rate_limited_and_slow_heads_are_closed(
    tmp_path: Path, upstream: FaultUpstream, depot: Depot
) -> None:
    slow = [socket.create_connection(("127.0.0.1", depot.port), timeout=5) for _ in range(200)]
    for sock in slow:
        sock.sendall(b"GET /simple/ HTTP/1.1\r\nHost: x\r\n")
    statuses = []
    for line in (
        b"GET /\x01bad HTTP/1.1",
        b"BREW / HTCPCP/1.0",
        b"\x16\x03\x01garbage",
        b"GET / HTTP/9.9",
    ) * 15:
        with socket.create_connection(("127.0.0.1", depot.port), timeout=10) as sock:
            sock.sendall(line + b"\r\nHost: x\r\n\r\n")
            statuses.append(sock.recv(100).split(b" ")[1:2])
    assert statuses.count([b"400"]) >= 45, statuses
    assert Answer(f"{depot.url}/+health").status == 200  # 200 slow heads take nothing from others
    started = time.monotonic()
    open_slow = list(slow)
    while open_slow and time.monotonic() - started < BOUND_S:
        for sock in list(open_slow):
            if closed_by_server(sock):
                open_slow.remove(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X")  # a byte now and then does not keep a connection alive
        time.sleep(1)
    closed_after = time.monotonic() - started
    for sock in slow:
        sock.close()
    assert open_slow == [], f"{len(open_slow)} connections still open after {closed_after:.0f} s"
    log = depot.log_text()
    assert "Traceback" not in log
    assert 1 <= log.count("bad request from") <= 10
    assert "more bad requests in 10 s" in log
    figure(
        "bad request lines and slow heads",
        bad_lines=60,
        logged=log.count("bad request from"),
        slow_connections=200,
        seconds_to_close=f"{closed_after:.0f}",
        peak_rss_mb=f"{depot.peak_rss_mb():.0f}",
    )


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(100) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    finally:
        sock.settimeout(5)


def test_connections_over_the_limit_get_a_503(tmp_path: Path, upstream: FaultUpstream) -> None:
    """With 320 descriptors allowed, 64 connections at most (256 kept for files and spools)."""
    depot = Depot(
        tmp_path / "mirror",
        tmp_path / "serve.log",
        ("--upstream", upstream.url),
        prefix=("prlimit", "--nofile=320:320"),
    )
    depot.start()
    try:
        idle = [socket.create_connection(("127.0.0.1", depot.port), timeout=5) for _ in range(100)]
        time.sleep(0.5)
        busy = 0
        for sock in idle:
            sock.settimeout(0.05)
            with contextlib.suppress(TimeoutError):
                busy += sock.recv(100).startswith(b"HTTP/1.1 503")
            sock.close()
        assert 30 <= busy <= 40, busy
        time.sleep(0.5)
        assert Answer(f"{depot.url}/+health").status == 200
        figure("connections over the limit", connections=100, refused_with_503=busy)
    finally:
        depot.stop()


# -- a read-only mirror ---------------------------------------------------------------------


@pytest.mark.root
def test_a_read_only_bind_mount_is_served_offline_and_refused_online(
    tmp_path: Path, upstream: FaultUpstream, wheels: dict[str, Path]
) -> None:
    """Read-only media and read-only bind mounts are how an air-gapped machine gets its mirror."""
    mirror = tmp_path / "mirror"
    filler = Depot(mirror, tmp_path / "fill.log", ("--upstream", upstream.url)).start()
    try:
        assert Answer(file_url(filler, upstream, "alpha")).status == 200
    finally:
        filler.stop()
    read_only = tmp_path / "ro"
    read_only.mkdir()
    subprocess.run(["mount", "--bind", str(mirror), str(read_only)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(read_only)], check=True)
        before = sorted(str(p) for p in mirror.rglob("*"))
        depot = Depot(read_only, tmp_path / "ro.log", ("--offline",)).start()
        try:
            python = fresh_venv(tmp_path / "venv")
            pip_install(python, depot.index, "alpha")
            assert installed(python, "alpha") == "1.0"
            assert Answer(f"{depot.index}alpha/").headers.get("X-Pipdepot-Cache") == "offline"
            assert "serving it read-only" in depot.log_text()
            assert depot.peak_rss_mb() < MAX_RSS_MB
        finally:
            depot.stop()
        assert sorted(str(p) for p in mirror.rglob("*")) == before
        online = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipdepot",
                "serve",
                "--mirror",
                str(read_only),
                "--port",
                str(free_port()),
            ],
            env=clean_environ(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert online.returncode == 1
        assert "Read-only file system" in online.stderr
        assert "Traceback" not in online.stderr
    finally:
        subprocess.run(["umount", str(read_only)], check=True)


# -- settings -------------------------------------------------------------------------------


def test_the_deadline_and_the_minimum_rate_come_from_flags_variables_or_the_config_file(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("upstream-deadline = 45\nupstream-min-rate = 1000\n")
    defaults = load_serve_settings(ServeFlags(), {})
    assert (defaults.upstream_deadline, defaults.upstream_min_rate) == (30.0, 8192)
    from_file = load_serve_settings(ServeFlags(config=str(config)), {})
    assert (from_file.upstream_deadline, from_file.upstream_min_rate) == (45.0, 1000)
    environ = {"PIPDEPOT_UPSTREAM_DEADLINE": "60", "PIPDEPOT_UPSTREAM_MIN_RATE": "2048"}
    from_env = load_serve_settings(ServeFlags(config=str(config)), environ)
    assert (from_env.upstream_deadline, from_env.upstream_min_rate) == (60.0, 2048)
    flags = ServeFlags(upstream_deadline="5", upstream_min_rate="100", config=str(config))
    assert load_serve_settings(flags, environ).upstream_deadline == 5.0
    with pytest.raises(ConfigError, match="--upstream-min-rate"):
        load_serve_settings(ServeFlags(upstream_min_rate="fast"), {})
    with pytest.raises(ConfigError, match="PIPDEPOT_UPSTREAM_DEADLINE"):
        load_serve_settings(ServeFlags(), {"PIPDEPOT_UPSTREAM_DEADLINE": "0"})
