"""The files part: the large cached wheel, downloaded sequentially and under load, and its HTTP semantics.

Throughput alone would reward a server that gets HEAD or Range wrong, and clients rely on them (uv
reads a wheel's metadata with range requests when the index offers none), so every contender's
answers are checked too.
"""

from __future__ import annotations

import contextlib
import hashlib
import statistics
import urllib.parse
from typing import TYPE_CHECKING

from common import Json, log, run
from contenders import SERVERS, make_server
from warm import ensure_warm
from web import fetch, find_file
from wrk import wrk

if TYPE_CHECKING:
    from config import Bench
    from server import Server

#: What curl prints after each download: status, bytes, seconds.
CURL_WRITE_OUT = "%{http_code} %{size_download} %{time_total}"


def part_files(b: Bench) -> Json:
    """The large cached wheel: HEAD/Range correctness, curl x N sequential (interleaved), wrk -c8.

    Every server is up at once and the sequential downloads alternate between them, one each in
    turn: a figure of a few milliseconds per download moved by a quarter between parts taken a
    minute apart (nginx: 2,457 to 3,355 MB/s in one session), more than the servers differ.
    """
    out: Json = {}
    servers: dict[str, Server] = {}
    urls: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for kind in (k for k in b.contenders if k in SERVERS):
            try:
                data = ensure_warm(b, "pipdepot" if kind == "nginx" else kind)
                servers[kind] = stack.enter_context(make_server(b, kind, data, tag="-files").start())
                page = f"{servers[kind].base}/{b.large}/" if kind == "nginx" else servers[kind].page(b.large)
                urls[kind] = find_file(page, b.big_file)
                out[kind] = file_checks(urls[kind])
            except Exception as exc:  # noqa: BLE001 (one contender failing must not lose the others' numbers)
                log(f"{kind} failed: {exc!r}")
                out[kind] = {"error": repr(exc)}
                urls.pop(kind, None)
        for kind, runs in curl_rounds(urls, b.curl_count).items():
            out[kind]["curl"] = runs
        for kind, url in urls.items():
            load = wrk(url, {}, seconds=b.wrk_seconds, connections=min(8, b.wrk_connections))
            load["mb_s"] = round((load["req_s"] or 0) * (out[kind].get("size") or 0) / 1e6, 1)
            out[kind]["wrk_c8"] = load
    for kind, server in servers.items():
        out[kind]["rss"] = server.rss
    return out


def file_checks(url: str) -> Json:
    """GET, HEAD, Range: correct lengths, Accept-Ranges, 206 with the right bytes, 416 past the end."""
    status, headers, body = fetch(url)
    if status != 200:
        return {"url": url, "error": f"GET {status}", "status": status}
    size = len(body)
    checks: Json = {"get_200": status == 200, "get_length_header": headers.get("content-length") == str(size)}
    h_status, h_headers, h_body = fetch(url, method="HEAD")
    checks["head_200"] = h_status == 200
    checks["head_length"] = h_headers.get("content-length") == str(size)
    checks["head_no_body"] = h_body == b""
    checks["accept_ranges_bytes"] = h_headers.get("accept-ranges") == "bytes"
    r_status, r_headers, r_body = fetch(url, {"Range": "bytes=1000-1999"})
    checks["range_206"] = r_status == 206
    checks["range_bytes"] = r_body == body[1000:2000]
    checks["range_content_range"] = r_headers.get("content-range") == f"bytes 1000-1999/{size}"
    s_status, _, s_body = fetch(url, {"Range": "bytes=-100"})
    checks["suffix_range"] = s_status == 206 and s_body == body[-100:]
    past_status, _, _ = fetch(url, {"Range": f"bytes={size + 10}-"})
    checks["past_end_416"] = past_status == 416
    return {
        "url_path": urllib.parse.urlsplit(url).path,
        "size": size,
        "sha256": hashlib.sha256(body).hexdigest(),
        "checks": checks,
        "all_ok": all(checks.values()),
        "headers": {k: headers.get(k) for k in ("content-type", "cache-control", "etag", "last-modified")},
    }


def curl_rounds(urls: dict[str, str], count: int) -> dict[str, Json]:
    """``count`` sequential curl downloads to /dev/null per URL, one per URL in turn, the order rotated."""
    runs: dict[str, list[tuple[int, int, float]]] = {kind: [] for kind in urls}
    order = list(urls)
    for round_ in range(count):
        shift = round_ % len(order) if order else 0
        for kind in order[shift:] + order[:shift]:
            done = run(
                [
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code} %{size_download} %{time_total}",
                    urls[kind],
                ]
            )
            code, size, seconds = done["stdout"].split()
            runs[kind].append((int(code), int(size), float(seconds)))
    return {kind: curl_summary(each) for kind, each in runs.items()}


def curl_summary(runs: list[tuple[int, int, float]]) -> Json:
    """The downloads' codes, median time and MB/s (all bytes over all time, and at the median)."""
    times = [seconds for _, _, seconds in runs]
    size = max(size for _, size, _ in runs)
    return {
        "count": len(runs),
        "codes": sorted({code for code, _, _ in runs}),
        "median_ms": round(statistics.median(times) * 1000, 2),
        "mb_s_total": round(size * len(runs) / sum(times) / 1e6, 1),
        "mb_s_median": round(size / statistics.median(times) / 1e6, 1),
    }
