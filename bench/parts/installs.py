"""The installs part: pip and uv installing the requirement set, cold and warm, through each contender.

This is the number a user feels. Cold is a fresh server with an empty cache (the first build); warm
is the median of ``--repeats`` installs once the cache holds everything (every later build). nginx
serves pipdepot's warm tree, so it has warm runs only. PyPI direct is measured at the start and at
the end of the part, so a change in the network during the run shows. The page latency isolates
the index's share of a warm install from the downloads. pipdepot is also measured serving the same
local-only pages as nginx (``--offline`` over its warm directory): the like-for-like pairing.
"""

from __future__ import annotations

import http.client
import shutil
import statistics
import time
import urllib.parse
from typing import TYPE_CHECKING

from clients import install
from contenders import devpi_init, make_server
from warm import ensure_warm
from web import PIP_ACCEPT

from parts import attempt

#: The encodings uv takes (servers without zstd answer gzip).
UV_ENCODINGS = "gzip, zstd"

if TYPE_CHECKING:
    from pathlib import Path

    from common import Json
    from config import Bench


def part_installs(b: Bench) -> Json:
    """pip and uv, cold and warm, per contender; PyPI direct (cold only) at the start and the end."""
    out: Json = {}
    direct = "direct" in b.contenders
    if direct:
        out["direct"] = {
            "start": {"pip": install(b, "pip", None), "uv": install(b, "uv", None)},
            "page_latency": page_latency(b, b.upstream_simple()),
        }
    for kind in b.contenders:
        if kind != "direct":
            out[kind] = {}
            for client in ("pip", "uv"):
                attempt(out[kind], client, lambda k=kind, c=client: installs_through(b, k, c))
    if direct:
        out["direct"]["end"] = {"pip": install(b, "pip", None), "uv": install(b, "uv", None)}
    return out


def installs_through(b: Bench, kind: str, client: str) -> Json:
    """Cold then warm installs with one client through a fresh instance of a contender."""
    entry: Json = {}
    if kind == "nginx":
        data = ensure_warm(b, "pipdepot")
    else:
        data = b.data(f"{kind}-{client}")
        shutil.rmtree(data, ignore_errors=True)
        if kind == "devpi":
            entry["init_s"] = devpi_init(b, data)
    with make_server(b, kind, data, tag=f"-{client}").start() as server:
        entry["ready_s"] = server.ready_s
        index = server.base + server.index
        if kind != "nginx":
            entry["cold"] = install(b, client, index)
        entry["warm_runs"] = [install(b, client, index) for _ in range(b.repeats)]
        ok = [r["seconds"] for r in entry["warm_runs"] if r["rc"] == 0]
        entry["warm_median"] = statistics.median(ok) if len(ok) == len(entry["warm_runs"]) else None
        if client == "uv":
            entry["page_latency"] = page_latency(b, index)
    entry["rss"] = server.rss
    if kind == "pipdepot":
        entry["same_tree"] = same_tree_installs(b, data, client)
    return entry


def same_tree_installs(b: Bench, data: Path, client: str) -> Json:
    """Warm installs through pipdepot serving the pages nginx serves: the local files only (``--offline``).

    Online, pipdepot serves upstream's whole pages (4,415 files for numpy) that the
    client must parse; nginx serves the static tree, which lists the cached files only.
    This is the like-for-like pairing with nginx over the same directory.
    """
    with make_server(b, "pipdepot", data, mode="offline", tag=f"-{client}-same-tree").start() as server:
        index = server.base + server.index
        runs = [install(b, client, index) for _ in range(b.repeats)]
    ok = [r["seconds"] for r in runs if r["rc"] == 0]
    return {"warm_runs": runs, "warm_median": statistics.median(ok) if len(ok) == len(runs) else None}


def page_latency(b: Bench, index: str) -> Json:
    """The index part of a warm install: every project page of the set, one after another, keep-alive.

    Measured on the instance uv warmed, with the encodings uv accepts: pipdepot keeps a large page
    in the encodings clients asked for, so a first gzip request after uv's zstd ones would time a
    one-off transcode (once per page version), not a warm page.
    """
    parts = urllib.parse.urlsplit(index)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.netloc, timeout=120)
    times: dict[str, float] = {}
    statuses: set[int] = set()
    try:
        for name in b.names:
            start = time.perf_counter()
            conn.request(
                "GET", f"{parts.path}{name}/", headers={"Accept": PIP_ACCEPT, "Accept-Encoding": UV_ENCODINGS}
            )
            response = conn.getresponse()
            response.read()
            times[name] = round((time.perf_counter() - start) * 1000, 2)
            statuses.add(response.status)
    finally:
        conn.close()
    slowest = sorted(times.items(), key=lambda kv: -kv[1])[:3]
    return {
        "sum_ms": round(sum(times.values()), 1),
        "median_ms": round(statistics.median(times.values()), 2),
        "max_ms": max(times.values()),
        "slowest": slowest,
        "statuses": sorted(statuses),
        "pages": len(times),
    }
