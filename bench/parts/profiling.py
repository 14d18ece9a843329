"""py-spy over pipdepot while wrk loads its small page (``--profile``): where the time of a request goes.

Sampled from outside the process (py-spy attaches by PID) so that the server runs exactly as in the
measured load; the raw samples are kept under ``RESULTS/profiles/`` and the top self-time frames go
into the pages results.
"""

from __future__ import annotations

import subprocess
import time
from typing import TYPE_CHECKING

from wrk import wrk

if TYPE_CHECKING:
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
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        n = int(samples)
        total += n
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + n
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:count]
    return [(name, round(100 * n / max(total, 1), 1)) for name, n in ranked]
