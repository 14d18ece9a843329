"""pipdepot's large page rendered cold: the cost a warm-page benchmark hides.

A restart of pipdepot reads nothing but the state file of the page asked for, so the first request
after a restart pays for parsing the state and rendering the page. Two views of that cost: the first
(and second) request to freshly started servers, and an in-process probe that times each step
(``ProjectState.from_json``, ``page_files``, render, gzip) and profiles one render.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from common import Json, run
from contenders import make_server
from web import HTML_ACCEPT, JSON_ACCEPT, page_info

if TYPE_CHECKING:
    from pathlib import Path

    from config import Bench

#: Run with pipdepot's Python on the large page's state file; prints the timings and profile as JSON.
_RENDER_PROBE = r"""
import cProfile, io, json, pstats, sys, time
from pipdepot.server import pages
from pipdepot.core.project import ProjectState
path = sys.argv[1]
def once():
    t = [time.perf_counter()]
    data = open(path, "rb").read(); t.append(time.perf_counter())
    state = ProjectState.from_json(data); t.append(time.perf_counter())
    files = pages.page_files(state, local_only=False); t.append(time.perf_counter())
    html = b"".join(pages.render_project_html(state, files)); t.append(time.perf_counter())
    body = b"".join(pages.render_project_json(state, files)); t.append(time.perf_counter())
    pages.RenderedPage.of([html], "text/html", "gzip"); t.append(time.perf_counter())
    pages.RenderedPage.of([body], pages.JSON_TYPE, "gzip"); t.append(time.perf_counter())
    steps = ["read", "from_json", "page_files", "render_html", "render_json", "gzip_html", "gzip_json"]
    out = {s: round((t[i + 1] - t[i]) * 1000, 2) for i, s in enumerate(steps)}
    out["files"] = len(files)
    out["state_bytes"] = len(data)
    out["html_bytes"] = len(html)
    out["json_bytes"] = len(body)
    return out
first = once()
runs = [once() for _ in range(5)]
profile = cProfile.Profile()
profile.enable(); once(); profile.disable()
text = io.StringIO()
pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(18)
def total(r, keys):
    return round(sum(r[k] for k in keys), 2)
json_path = ["read", "from_json", "page_files", "render_json", "gzip_json"]
html_path = ["read", "from_json", "page_files", "render_html", "gzip_html"]
print(json.dumps({
    "first": first,
    "best": {k: min(r[k] for r in runs) for k in first},
    "cold_json_page_ms": {"first": total(first, json_path), "best": min(total(r, json_path) for r in runs)},
    "cold_html_page_ms": {"first": total(first, html_path), "best": min(total(r, html_path) for r in runs)},
    "profile": text.getvalue()[-6000:],
}))
"""


def cold_render(b: Bench, data: Path) -> Json:
    """The large page rendered cold: first request after an offline restart, and in-process timings."""
    result: Json = {}
    state = data / ".pipdepot" / "projects" / f"{b.large}.json"
    probe = run([str(b.pipdepot_py()), "-c", _RENDER_PROBE, str(state)], timeout=300, tail=10**7)
    if probe["rc"] == 0:
        result["in_process"] = json.loads(probe["stdout"])
    else:
        result["in_process"] = {"error": probe["stderr"]}
    # A restart reads nothing but the state file of the page asked for: the first request is a cold render.
    # "longttl": the stored page is fresh, so the whole upstream page is rendered and upstream is not asked.
    # "offline": pipdepot lists only the files it has locally (a page of a few files).
    for mode in ("longttl", "offline"):
        for fmt, accept in (("json", JSON_ACCEPT), ("html", HTML_ACCEPT)):
            with make_server(b, "pipdepot", data, mode=mode, tag="-cold-render").start() as server:
                first = page_info(server.page(b.large), {"Accept": accept, "Accept-Encoding": "gzip"})
                second = page_info(server.page(b.large), {"Accept": accept, "Accept-Encoding": "gzip"})
            result[f"{mode}_first_request_{fmt}"] = first
            result[f"{mode}_second_request_{fmt}"] = second
    return result
