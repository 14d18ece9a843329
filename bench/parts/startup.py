"""The startup part: spawn to the first 200 on an empty data dir, and the first uncached pages.

A build root starts its mirror fresh, so the time until it answers and the first pages it has to
fetch from upstream are on every build's critical path. Three trials (one with ``--smoke``); nginx
starts over pipdepot's warm tree since it has nothing to fetch.
"""

from __future__ import annotations

import shutil
import statistics
from typing import TYPE_CHECKING

from common import Json, peak_rss
from contenders import SERVERS, devpi_init, make_server
from warm import ensure_warm
from web import PIP_ACCEPT, page_info

from parts import attempt

if TYPE_CHECKING:
    from config import Bench


def part_startup(b: Bench) -> Json:
    """Spawn to the first 200 on an empty data dir (3 times), and the first uncached pages."""
    out: Json = {}
    for kind in b.contenders:
        if kind in SERVERS:
            attempt(out, kind, lambda k=kind: startup_of(b, k))
    return out


def startup_of(b: Bench, kind: str) -> Json:
    """The startup part for one contender."""
    entry: Json = {"ready_s": [], "init_s": []}
    trials = 1 if b.smoke else 3
    for trial in range(trials):
        if kind == "nginx":
            data = ensure_warm(b, "pipdepot")
        else:
            data = b.data(f"{kind}-probe")
            shutil.rmtree(data, ignore_errors=True)
            if kind == "devpi":
                entry["init_s"].append(devpi_init(b, data))
        with make_server(b, kind, data, tag="-startup").start() as server:
            entry["ready_s"].append(server.ready_s)
            if trial == 0 and kind != "nginx":
                entry["uncached_pages"] = [
                    {
                        "project": p,
                        **page_info(server.page(p), {"Accept": PIP_ACCEPT, "Accept-Encoding": "gzip"}),
                    }
                    for p in b.probes
                ]
                entry["rss_after_pages"] = peak_rss(server.process.pid) if server.process else None
        entry.setdefault("rss", []).append(server.rss)
    entry["ready_s_median"] = statistics.median(entry["ready_s"])
    return entry
