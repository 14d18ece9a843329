"""The pages part: warm cached project pages under wrk, HTML and JSON, gzip as pip and uv ask.

This is what a mirror does most during an image build: answer a project page it already has. Each
contender serves the small (~250 files) and the large (~4400 files) page from its warm state. nginx
serves upstream's own HTML and JSON of the same pages saved as static files, the ceiling for a
server that does no work per request, plus pipdepot's mirror tree. pipdepot also gets its large page
rendered cold (``cold_render.py``) and, with ``--profile``, py-spy under the load (``profiling.py``).
pipdepot's target view is loaded the same way, at ``/+auto/simple/`` with pip's own User-Agent (so
the page is the one pip gets), on pipdepot's warm data.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TYPE_CHECKING

from clients import user_agent
from common import Json, log
from contenders import VIEW, data_of, make_server
from warm import ensure_warm
from web import HTML_ACCEPT, JSON_ACCEPT, decoded, fetch, page_info
from wrk import wrk

from parts import attempt
from parts.cold_render import cold_render
from parts.profiling import profile_under_load

if TYPE_CHECKING:
    from config import Bench
    from server import Server


def part_pages(b: Bench) -> Json:
    """Warm cached project pages under wrk; the cold render of the large page."""
    out: Json = {}
    for kind in b.contenders:
        if kind != "direct":
            attempt(out, kind, lambda k=kind: pages_of(b, k))
    return out


def pages_of(b: Bench, kind: str) -> Json:
    """The pages part for one contender."""
    data = ensure_warm(b, data_of(kind))
    if kind == "nginx":
        save_upstream_pages(b)
    entry: Json = {"variants": {}}
    agent = {"User-Agent": user_agent(b, "pip")} if kind == VIEW else {}
    with make_server(b, kind, data, tag="-pages").start() as server:
        entry["ready_s"] = server.ready_s
        for variant, url, sent in page_targets(b, kind, server):
            headers = {**sent, **agent}
            info = page_info(url, headers)  # primes in-memory caches (proxpi keeps its index in memory)
            info = page_info(url, headers)
            connections = 1 if variant.endswith("_c1") else b.wrk_connections
            log(f"wrk {kind} {variant} -c{connections}")
            load = wrk(url, headers, seconds=b.wrk_seconds, connections=connections)
            if kind == "pipdepot" and b.profile and variant == "small_html_gzip":
                entry["profile"] = profile_under_load(b, server, url, headers)
            entry["variants"][variant] = {"page": info, **load}
    entry["rss"] = server.rss
    if kind == "pipdepot":
        attempt(entry, "cold_render", lambda: cold_render(b, data))
    return entry


def page_targets(b: Bench, kind: str, server: Server) -> list[tuple[str, str, dict[str, str]]]:
    """(variant, URL, headers) for the page benchmark.

    The variant names are the keys of the results and of the report's columns. ``_c1`` is one
    connection: the latency of a single client (pip and uv fetch pages one after another).
    """
    gz = {"Accept-Encoding": "gzip"}
    targets = []
    for label, project in (("small", b.small), ("large", b.large)):
        if kind == "nginx":
            targets += [
                (f"{label}_upstream_html_gzip_static", f"{server.base}/upstream/{project}/", gz),
                (f"{label}_upstream_html_identity", f"{server.base}/upstream/{project}/", {}),
                (f"{label}_upstream_json_gzip_static", f"{server.base}/upstream-json/{project}/", gz),
                (f"{label}_tree_html_identity", f"{server.base}/{project}/", {}),
            ]
        else:
            targets += [
                (f"{label}_html_gzip", server.page(project), {"Accept": HTML_ACCEPT, **gz}),
                (f"{label}_json_gzip", server.page(project), {"Accept": JSON_ACCEPT, **gz}),
            ]
    if kind != "nginx":
        targets.append(("small_html_gzip_c1", server.page(b.small), {"Accept": HTML_ACCEPT, **gz}))
    return targets


def save_upstream_pages(b: Bench) -> Path:
    """Upstream's own HTML and JSON of the benchmark pages as static files, with .gz beside them.

    Saved once (kept in the work directory), for nginx to serve with ``gzip_static``.
    """
    root = b.data("upstream-pages")
    upstream = b.upstream_simple()
    for project in (b.small, b.large):
        for kind, accept in (("html", HTML_ACCEPT), ("json", JSON_ACCEPT)):
            target = root / kind / project / ("index.html" if kind == "html" else "index.json")
            if target.exists():
                continue
            status, headers, body = fetch(
                f"{upstream}{project}/", {"Accept": accept, "Accept-Encoding": "gzip"}
            )
            if status != 200:
                raise RuntimeError(f"upstream page {project}: HTTP {status}")
            target.parent.mkdir(parents=True, exist_ok=True)
            body = decoded(headers, body)
            target.write_bytes(body)
            Path(f"{target}.gz").write_bytes(gzip.compress(body, compresslevel=6, mtime=0))
    return root
