"""How ``serve`` answers while it counts a large mirror: ``/+health`` and a project page, polled.

Run: ``.venv/bin/python bench/census_latency.py [--projects 100000] [--scratch DIR] [--json FILE]``
(or ``--mirror DIR`` for a mirror already built by ``bench/write_cost.py``'s ``build_mirror``).

The census (``Tree.census``: the project directories listed, every file under ``packages/``
counted) runs at start-up and again when ``/+metrics`` or ``/+status`` asks and the last count is
over a minute old. It walks the whole of ``packages/``, so it is the one O(files) task a server
runs; this measures what the other requests see meanwhile, in three windows of one
``serve --offline``: from start-up until the first count is done (``/+metrics`` answers after it);
a quiet window (nothing counted); and a census that ``/+metrics`` asks for once the count is a
minute old. In each, two threads poll ``/+health`` and one project's page every ``--interval``
seconds on kept-alive connections. The server is stopped by PID; a mirror built here is removed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import clean_env, free_port, log
from write_cost import _pipdepot, build_mirror, project_name

if TYPE_CHECKING:
    from collections.abc import Callable

Json = dict[str, Any]


class Poller(threading.Thread):
    """GETs one path again and again on one kept-alive connection; the latency of each answer."""

    def __init__(self, port: int, path: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.path = path
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (sent at, seconds to the whole answer)
        self.failures = 0
        self._halt = threading.Event()

    def run(self) -> None:
        """Poll until stopped; a failed request is counted and the connection made again."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self._halt.is_set():
            sent = time.perf_counter()
            try:
                connection.request("GET", self.path)
                answer = connection.getresponse()
                answer.read()
                if answer.status == 200:
                    self.samples.append((sent, time.perf_counter() - sent))
                else:
                    self.failures += 1
            except (OSError, http.client.HTTPException):
                self.failures += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self._halt.wait(self.interval)
        connection.close()

    def stop(self) -> None:
        """Stop after the request in flight."""
        self._halt.set()
        self.join()


def _summary(samples: list[float]) -> Json:
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "over_100ms": sum(1 for s in ordered if s > 0.1),
    }


def _window(port: int, interval: float, page: str, during: Callable[[], Json]) -> Json:
    """Poll ``/+health`` and ``page`` while ``during()`` runs; their latencies and what it returned."""
    pollers = [Poller(port, "/+health", interval), Poller(port, page, interval)]
    for poller in pollers:
        poller.start()
    try:
        result: Json = during()
    finally:
        for poller in pollers:
            poller.stop()
    result["health"] = _summary([s for _, s in pollers[0].samples])
    result["page"] = _summary([s for _, s in pollers[1].samples])
    result["failures"] = pollers[0].failures + pollers[1].failures
    return result


def _get(port: int, path: str) -> tuple[float, str]:
    """Seconds to one answer on a new connection, and its body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        body = answer.read().decode()
    finally:
        connection.close()
    return time.perf_counter() - started, body


def _wait_up(port: int, started: float, timeout: float = 120) -> float:
    while time.perf_counter() - started < timeout:
        try:
            _get(port, "/+health")
            return time.perf_counter() - started
        except OSError:
            time.sleep(0.005)
    raise TimeoutError(f"serve on port {port}: no answer in {timeout} s")


def _counted(body: str) -> Json:
    """The census's two gauges, from ``/+metrics``."""
    gauges = ("pipdepot_cached_files", "pipdepot_cached_projects")
    return {g: float(v) for g, _, v in (line.partition(" ") for line in body.splitlines()) if g in gauges}


def _quiet() -> Json:
    time.sleep(5)
    return {}


def measure(root: Path, interval: float) -> Json:
    """The three windows on one ``serve --offline`` of ``root``."""
    port = free_port()
    page = f"/simple/{project_name(1)}/"
    argv = [*_pipdepot(), "serve", "--mirror", str(root), "--offline", "--host", "127.0.0.1"]
    started = time.perf_counter()
    process = subprocess.Popen(
        [*argv, "--port", str(port)], env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    results: Json = {}
    try:
        up = _wait_up(port, started)

        def first_count() -> Json:
            seconds, body = _get(port, "/+metrics")  # waits for the count start-up began
            return {"up_ms": round(up * 1000), "metrics_ms": round(seconds * 1000)} | _counted(body)

        log("start-up: polling while the first census runs")
        results["start_up"] = _window(port, interval, page, first_count)
        counted_at = time.perf_counter()
        log("quiet window")
        results["quiet"] = _window(port, interval, page, _quiet)

        def recount() -> Json:
            time.sleep(0.5)  # the pollers' own start first
            seconds, body = _get(port, "/+metrics")  # the count is over a minute old: counted again
            return {"metrics_ms": round(seconds * 1000)} | _counted(body)

        time.sleep(max(0.0, 61 - (time.perf_counter() - counted_at)))
        log("a census /+metrics asks for")
        results["metrics_census"] = _window(port, interval, page, recount)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return results


def main() -> None:
    """Build (or take) a mirror, measure, print one JSON object (and write it to ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--projects", type=int, default=100_000, help="projects in the mirror built")
    parser.add_argument("--mirror", type=Path, help="measure this mirror instead of building one")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between a poller's requests")
    parser.add_argument("--scratch", type=Path, help="build under this directory (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results: Json
    if args.mirror is not None:
        results = {"mirror": str(args.mirror), **measure(args.mirror, args.interval)}
    else:
        with tempfile.TemporaryDirectory(prefix="census-latency-", dir=args.scratch) as scratch:
            root = Path(scratch) / "mirror"
            log(f"building a mirror of {args.projects} projects")
            built = round(build_mirror(root, args.projects), 1)
            results = {"projects": args.projects, "built_s": built, **measure(root, args.interval)}
            log("removing the mirror (minutes for 100,000 projects on a slow disk)")
    text = json.dumps(results, indent=2)
    if args.json is not None:
        args.json.write_text(text + "\n")
    print(text, flush=True)


if __name__ == "__main__":
    main()
