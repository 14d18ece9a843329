"""One node against three behind nginx, on the filesystem store and on S3 (SeaweedFS), side by side.

Run: ``.venv/bin/python bench/nodes.py [--seconds 5] [--rounds 3] [--parallel 4]``. For each of
the four set-ups (store x nodes) it starts the nodes behind a real nginx (tests/nodes.py: the
configuration docs/SCALE.md quotes; one node is behind nginx too, so the hop is the same), fills
the mirror with one pip install of 20 small wheels from a local fake upstream (each set-up its own),
then measures through nginx, all four set-ups up at once and measured in rounds whose order rotates
(this machine drifts between fast and slow phases over minutes), medians of the rounds:

- a warm pip install of the 20 wheels, alone, and ``--parallel`` of them at once (installs a minute);
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
from dataclasses import dataclass, field
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


@dataclass
class Setup:
    """One store with ``count`` nodes behind nginx, and its own fake upstream (so fetches are its own)."""

    name: str
    nodes: Nodes
    upstream: FakeUpstream
    samples: dict[str, list[float]] = field(default_factory=dict)
    wrk_commands: dict[str, str] = field(default_factory=dict)
    errors: int = 0

    def add(self, key: str, value: float | None) -> None:
        """One sample of ``key`` (a wrk run that failed has none)."""
        if value is not None:
            self.samples.setdefault(key, []).append(value)

    def result(self) -> dict[str, Any]:
        """The medians, every sample, and how often upstream was asked for a wheel."""
        wheels = [d.url_path for dists in self.upstream.projects.values() for d in dists]
        medians = {key: round(statistics.median(values), 2) for key, values in self.samples.items()}
        return {
            **medians,
            "samples": self.samples,
            "wrk_errors": self.errors,
            "upstream_wheel_fetches": sum(self.upstream.hits[path] for path in wheels),
            "wrk": self.wrk_commands,
        }


def start_setup(root: Path, name: str, location: str, env: dict[str, str], count: int) -> Setup:
    """A fresh upstream and ``count`` nodes over ``location``, behind nginx."""
    upstream = FakeUpstream(with_metadata=True)
    for path in sorted((root / "wheels").iterdir()):
        upstream.add(path)
    upstream.start()
    nodes = Nodes(root / name, location, upstream.url, count=count, env=env)
    try:
        nodes.start()
    except BaseException:
        upstream.stop()
        raise
    return Setup(name, nodes, upstream)


def one_round(setups: list[Setup], number: int, root: Path, options: argparse.Namespace) -> None:
    """Each measure once on every set-up, in an order rotated each round (the machine drifts)."""
    order = setups[number % len(setups) :] + setups[: number % len(setups)]
    for setup in order:
        setup.add("install_alone_s", install(setup.nodes.index, root / "t" / f"{setup.name}-{number}"))
    for setup in order:
        started = time.perf_counter()
        with ThreadPoolExecutor(options.parallel) as pool:
            targets = [root / "t" / f"{setup.name}-{number}-{n}" for n in range(options.parallel)]
            list(pool.map(lambda target, s=setup: install(s.nodes.index, target), targets))
        setup.add("installs_per_min", options.parallel * 60 / (time.perf_counter() - started))
    for setup in order:
        (dist,) = setup.upstream.projects["bench-00"]
        headers = {"Accept": JSON, "Accept-Encoding": "gzip"}
        for key, url, sent in (
            ("page_req_s", f"{setup.nodes.index}bench-00/", headers),
            ("wheel_req_s", setup.nodes.url + dist.url_path, {}),
        ):
            answer = wrk(url, sent, options.seconds)
            setup.add(key, answer["req_s"])
            setup.add(key.replace("req_s", "p99_ms"), answer["p99_ms"])
            setup.errors += answer["non_2xx"] + answer["socket_errors"]
            setup.wrk_commands[key] = answer["command"]


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
    """Measure the four set-ups, all up at once, in rotated rounds; print the JSON and the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="each wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every measure (default 3)")
    parser.add_argument("--parallel", type=int, default=4, help="warm installs at once (default 4)")
    options = parser.parse_args()
    setups: list[Setup] = []
    with tempfile.TemporaryDirectory(prefix="nodes-bench-") as directory:
        root = Path(directory)
        for name in WHEELS:
            build_wheel(root / "wheels", name, "1.0", payload=16 * 1024)
        seaweed = Seaweed(root / "seaweed")
        seaweed.start()
        try:
            for store in ("filesystem", "s3"):
                for count in (1, 3):
                    name = f"{store}-{count}"
                    location = str(root / f"mirror-{count}") if store == "filesystem" else seaweed.location()
                    env = dict(seaweed.env) if store == "s3" else {}
                    setups.append(start_setup(root, name, location, env, count))
            for setup in setups:  # cold: fills the store from upstream; then every node has read it once
                install(setup.nodes.index, root / "t" / f"{setup.name}-fill")
                install(setup.nodes.index, root / "t" / f"{setup.name}-settle")
            for number in range(options.rounds):
                print(f"round {number + 1} of {options.rounds}...", file=sys.stderr, flush=True)
                one_round(setups, number, root, options)
        finally:
            for setup in setups:
                setup.nodes.stop()
                setup.upstream.stop()
            seaweed.stop()
    results = {setup.name: setup.result() for setup in setups}
    print(json.dumps({"cpus": os.cpu_count(), "options": vars(options), "results": results}, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
