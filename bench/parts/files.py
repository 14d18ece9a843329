"""The files part: the large cached wheel, downloaded sequentially and under load, and its HTTP semantics.

Throughput alone would reward a server that gets HEAD or Range wrong, and clients rely on them (uv
reads a wheel's metadata with range requests when the index offers none), so every contender's
answers are checked too.
"""

from __future__ import annotations

import hashlib
import statistics
import urllib.parse
from typing import TYPE_CHECKING

from common import Json, run
from contenders import make_server
from warm import ensure_warm
from web import fetch, find_file
from wrk import wrk

from parts import attempt

if TYPE_CHECKING:
    from config import Bench


def part_files(b: Bench) -> Json:
    """The large cached wheel: curl x N sequential, wrk -c8, and HEAD/Range correctness."""
    out: Json = {}
    for kind in b.contenders:
        if kind != "direct":
            attempt(out, kind, lambda k=kind: files_of(b, k))
    return out


def files_of(b: Bench, kind: str) -> Json:
    """The files part for one contender."""
    data = ensure_warm(b, "pipdepot" if kind == "nginx" else kind)
    with make_server(b, kind, data, tag="-files").start() as server:
        page = f"{server.base}/{b.large}/" if kind == "nginx" else server.page(b.large)
        url = find_file(page, b.big_file)
        entry = file_checks(url)
        entry["curl"] = curl_many(url, b.curl_count)
        size = entry.get("size") or 0
        load = wrk(url, {}, seconds=b.wrk_seconds, connections=min(8, b.wrk_connections))
        load["mb_s"] = round((load["req_s"] or 0) * size / 1e6, 1)
        entry["wrk_c8"] = load
    entry["rss"] = server.rss
    return entry


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


def curl_many(url: str, count: int) -> Json:
    """``count`` sequential curl downloads to /dev/null: one client at a time, as an install downloads."""
    times, codes, sizes = [], set(), set()
    for _ in range(count):
        done = run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}", url]
        )
        code, size, seconds = done["stdout"].split()
        codes.add(int(code))
        sizes.add(int(size))
        times.append(float(seconds))
    size = max(sizes)
    return {
        "count": count,
        "codes": sorted(codes),
        "median_ms": round(statistics.median(times) * 1000, 2),
        "mb_s_total": round(size * count / sum(times) / 1e6, 1),
        "mb_s_median": round(size / statistics.median(times) / 1e6, 1),
    }
