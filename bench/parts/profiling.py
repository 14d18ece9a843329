"""py-spy (``--profile``): over pipdepot while wrk loads its small page, and over pip installing.

The server is sampled from outside (py-spy attaches by PID), so it runs exactly as in the measured
load; the top self-time frames go into the pages results. pip is sampled during one warm install
through pipdepot and one through nginx, so the installs part can say where a gap between the two
is spent: in the client or in the server. The raw samples are kept under ``RESULTS/profiles/``.
"""

from __future__ import annotations

import subprocess
import time
from typing import TYPE_CHECKING

from clients import install
from wrk import wrk

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from common import Json
    from config import Bench
    from server import Server


def profile_under_load(b: Bench, server: Server, url: str, headers: dict[str, str]) -> Json:
    """py-spy over the server while wrk loads one page: where the time goes."""
    if server.process is None:
        return {"error": "server not running"}
    py_spy = b.tools().parent / "py-spy"
    target = b.results / "profiles"
    target.mkdir(parents=True, exist_ok=True)
    raw = target / "pipdepot-small-page.txt"
    seconds = max(b.wrk_seconds, 5)
    spy = subprocess.Popen(
        [str(py_spy), "record", "--pid", str(server.process.pid), "--duration", str(seconds), "--rate", "200",
         "--format", "raw", "--output", str(raw), "--nonblocking"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    time.sleep(0.5)
    load = wrk(url, headers, seconds=seconds, connections=b.wrk_connections)
    output = spy.communicate(timeout=seconds + 60)[0].decode(errors="replace")
    result: Json = {"load": load, "py_spy": output[-1000:], "raw": str(raw)}
    if raw.exists():
        result["top_self"] = top_frames(raw)
    return result


def top_frames(raw: Path, count: int = 20) -> list[tuple[str, float]]:
    """The functions with the most samples on top of the stack (self time), as a share of all samples."""
    own: dict[str, int] = {}
    total = 0
    for frames, n in raw_stacks(raw):
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:count]
    return [(name, round(100 * n / max(total, 1), 1)) for name, n in ranked]


#: pip's phases in a warm install, by the function that spans each (inclusive samples).
PIP_PHASES = {
    "index pages: fetch, parse and evaluate every file listed": "find_all_candidates",
    "of which parsing the listed files into links": "parse_links",
    "downloading the wheels": "_http_get",
    "installing the wheels": "install_given_reqs",
}


def profile_pip_install(
    b: Bench, index: str, label: str, *, client: str = "pip", requirements: list[str] | None = None
) -> Json:
    """One pip install under py-spy (its subprocesses too): the install, and samples per phase."""
    py_spy = b.tools().parent / "py-spy"
    target = b.results / "profiles"
    target.mkdir(parents=True, exist_ok=True)
    raw = target / f"pip-install-{label}.txt"
    spy = [str(py_spy), "record", "--subprocesses", "--rate", "200", "--format", "raw"]
    spy += ["--output", str(raw), "--"]
    done = install(b, client, index, under=spy, requirements=requirements)
    result: Json = {"install": done, "raw": str(raw)}
    if raw.exists():
        result["phases"] = inclusive_samples(raw, PIP_PHASES)
    return result


def inclusive_samples(raw: Path, phases: dict[str, str]) -> Json:
    """Samples whose stack holds each phase's function (at most once per stack), and all samples."""
    counts = dict.fromkeys(phases, 0)
    total = 0
    for frames, n in raw_stacks(raw):
        total += n
        functions = {frame.split(" (", 1)[0].rsplit(".", 1)[-1] for frame in frames}
        for phase, function in phases.items():
            counts[phase] += n * (function in functions)
    return {"total": total, "rate_hz": 200, "samples": counts}


def raw_stacks(raw: Path) -> Iterator[tuple[list[str], int]]:
    """py-spy's raw format: each distinct stack (outermost frame first) and its sample count."""
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, samples = line.rpartition(" ")
        if samples.isdigit():
            yield stack.split(";"), int(samples)
