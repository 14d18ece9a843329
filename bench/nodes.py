"""One node against three behind nginx, on the filesystem store and on S3 (SeaweedFS), side by side.

Run: ``.venv/bin/python bench/nodes.py [--seconds 5] [--rounds 3] [--parallel 4]``. For each of
the four set-ups (store x nodes) it starts the nodes behind a real nginx (tests/nodes.py: the
configuration docs/SCALE.md quotes; one node is behind nginx too, so the hop is the same), fills
the mirror with one pip install of 20 small wheels from a local fake upstream, then measures,
through nginx:

- a warm pip install of the 20 wheels, alone (median of ``--rounds``), and ``--parallel`` of them
  at once (installs a minute);
- page rate: wrk ``-t2 -c32`` on one project page (PEP 691 JSON, gzip), and on one cached wheel.

It starts its own SeaweedFS (the test extra's ``weed``) and stops everything by PID. Server,
nginx, SeaweedFS and clients share the machine's cores. Prints one JSON object, then a Markdown
table of the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from wrk import parse_wrk

from tests.conftest import clean_environ
from tests.fake_upstream import FakeUpstream
from tests.nodes import Nodes
from tests.seaweed import Seaweed
from tests.wheels import build_wheel

WHEELS = tuple(f"bench-{index:02}" for index in range(20))
JSON = "application/vnd.pypi.simple.v1+json"


def install(index: str, target: Path) -> float:
    """One isolated pip install of the 20 wheels into ``target``, timed.

    :raises RuntimeError: pip failed.
    """
    argv = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check"]
    argv += ["--target", str(target), "--index-url", index, *WHEELS]
    started = time.perf_counter()
    done = subprocess.run(argv, env=clean_environ(), capture_output=True, text=True, check=False, timeout=600)
    elapsed = time.perf_counter() - started
    shutil.rmtree(target, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip failed: {done.stderr[-2000:]}")
    return elapsed


def wrk(url: str, headers: dict[str, str], seconds: int) -> dict[str, Any]:
    """A bounded wrk run through nginx (``-t2 -c32``), its command kept beside its numbers."""
    argv = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for key, value in headers.items():
        argv += ["-H", f"{key}: {value}"]
    done = subprocess.run([*argv, url], capture_output=True, text=True, check=False, timeout=seconds + 60)
    result: dict[str, Any] = parse_wrk(done.stdout)
    result["command"] = shlex.join([*argv, url])
    return result


def measure(nodes: Nodes, scratch: Path, file_path: str, options: argparse.Namespace) -> dict[str, Any]:
    """Fill the mirror through the nodes, then time warm installs and page and file rates."""
    install(nodes.index, scratch / "fill")  # cold: fills the store from upstream
    install(nodes.index, scratch / "settle")  # every node has now read the records once
    alone = [install(nodes.index, scratch / f"alone-{n}") for n in range(options.rounds)]
    started = time.perf_counter()
    with ThreadPoolExecutor(options.parallel) as pool:
        list(pool.map(lambda n: install(nodes.index, scratch / f"parallel-{n}"), range(options.parallel)))
    parallel = time.perf_counter() - started
    page = wrk(f"{nodes.index}bench-00/", {"Accept": JSON, "Accept-Encoding": "gzip"}, options.seconds)
    wheel = wrk(nodes.url + file_path, {}, options.seconds)
    return {
        "install_alone_s": round(statistics.median(alone), 2),
        "install_alone_runs_s": [round(s, 2) for s in alone],
        "installs_parallel": options.parallel,
        "installs_per_min": round(options.parallel * 60 / parallel, 1),
        "page_req_s": page["req_s"],
        "page_p99_ms": page["p99_ms"],
        "page_errors": page["non_2xx"] + page["socket_errors"],
        "wheel_req_s": wheel["req_s"],
        "wheel_p99_ms": wheel["p99_ms"],
        "wheel_errors": wheel["non_2xx"] + wheel["socket_errors"],
        "wrk_page": page["command"],
    }


def run_setup(  # noqa: PLR0913 (one set-up: where, what, how many)
    root: Path, store: str, location: str, env: dict[str, str], *, count: int, options: argparse.Namespace
) -> dict[str, Any]:
    """Start a fresh upstream and ``count`` nodes over ``location``; measure; stop them all by PID."""
    upstream = FakeUpstream(with_metadata=True)
    for path in sorted((root / "wheels").iterdir()):
        upstream.add(path)
    upstream.start()
    scratch = root / f"{store}-{count}"
    nodes = Nodes(scratch / "nodes", location, upstream.url, count=count, env=env)
    try:
        nodes.start()
        (dist,) = upstream.projects["bench-00"]
        result = measure(nodes, scratch, dist.url_path, options)
        wheels = [d.url_path for dists in upstream.projects.values() for d in dists]
        result["upstream_wheel_fetches"] = sum(upstream.hits[path] for path in wheels)
        return result
    finally:
        nodes.stop()
        upstream.stop()


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown: each set-up's numbers, then 3 nodes over 1 and S3 over the filesystem."""
    keys = [
        ("install_alone_s", "warm pip install, alone (s)"),
        ("installs_per_min", "warm pip installs a minute, in parallel"),
        ("page_req_s", "page req/s (JSON gzip, wrk -c32)"),
        ("wheel_req_s", "cached wheel req/s (wrk -c32)"),
    ]
    lines = [
        "| measure | fs, 1 node | fs, 3 nodes | 3/1 | S3, 1 node | S3, 3 nodes | 3/1 | S3/fs, 1 | S3/fs, 3 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label in keys:
        fs1, fs3 = results["filesystem-1"][key], results["filesystem-3"][key]
        s31, s33 = results["s3-1"][key], results["s3-3"][key]
        lines.append(
            f"| {label} | {fs1:,} | {fs3:,} | {_ratio(fs3, fs1)} | {s31:,} | {s33:,} | {_ratio(s33, s31)} "
            f"| {_ratio(s31, fs1)} | {_ratio(s33, fs3)} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Measure the four set-ups and print the JSON and the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="each wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="warm installs alone (default 3)")
    parser.add_argument("--parallel", type=int, default=4, help="warm installs at once (default 4)")
    options = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="nodes-bench-") as directory:
        root = Path(directory)
        for name in WHEELS:
            build_wheel(root / "wheels", name, "1.0", payload=16 * 1024)
        seaweed = Seaweed(root / "seaweed")
        seaweed.start()
        try:
            for count in (1, 3):
                for store in ("filesystem", "s3"):
                    location = str(root / f"mirror-{count}") if store == "filesystem" else seaweed.location()
                    env = dict(seaweed.env) if store == "s3" else {}
                    print(f"{store}, {count} node(s)...", file=sys.stderr, flush=True)
                    results[f"{store}-{count}"] = run_setup(
                        root, store, location, env, count=count, options=options
                    )
        finally:
            seaweed.stop()
    print(json.dumps({"cpus": os.cpu_count(), "options": vars(options), "results": results}, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
