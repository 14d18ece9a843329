"""Turn ``bench/results/*.json`` into the tables of ``docs/BENCHMARKS.md`` and ``docs/benchmarks.png``.

Run by ``bench/run report`` (in the harness's tools venv, which has matplotlib), or directly:
``python bench/report.py [--results DIR] [--doc FILE] [--plot FILE]``. Only the text between the
markers in the doc is replaced; the prose around it is kept.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
BEGIN = "<!-- bench/report.py: begin generated tables -->"
END = "<!-- bench/report.py: end generated tables -->"
#: Issue 17's tables (target views) have a block of their own, written from any run that has them.
VIEWS_BEGIN = "<!-- bench/report.py: begin issue 17 tables -->"
VIEWS_END = "<!-- bench/report.py: end issue 17 tables -->"
#: The parts the main block is made of: it is replaced only by a run that has all of them.
MAIN_PARTS = ("pages", "files", "startup", "installs", "offline")
NAMES = {
    "pipdepot": "pipdepot",
    "pipdepot-view": "pipdepot target view (`/+auto/simple/`)",
    "devpi": "devpi-server",
    "proxpi": "proxpi",
    "nginx": "nginx (pipdepot's tree)",
    "direct": "PyPI direct",
}
PEERS = ("pipdepot", "pipdepot-view", "devpi", "proxpi", "nginx")
VIEW = "pipdepot-view"
#: The installs' clients, in order: the newest pip, bookworm's pip, uv.
CLIENTS = ("pip", "pip-bookworm", "uv")
Json = dict[str, Any]
DASH = "-"


def load(results: Path) -> dict[str, Json]:
    """Every part's document, by part name."""
    found = {}
    for path in sorted(results.glob("*.json")):
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and "part" in doc:
            found[doc["part"]] = doc
    return found


def dig(doc: Any, *keys: Any) -> Any:  # noqa: ANN401 (JSON all the way down)
    """``doc[k1][k2]...`` or None."""
    for key in keys:
        in_dict = isinstance(doc, dict) and key in doc
        in_list = isinstance(doc, list) and isinstance(key, int) and -len(doc) <= key < len(doc)
        if in_dict or in_list:
            doc = doc[key]
        else:
            return None
    return doc


def num(value: Any, digits: int = 1, unit: str = "") -> str:  # noqa: ANN401
    """A number for a table cell, or a dash."""
    if value is None:
        return DASH
    if isinstance(value, float) and digits == 0:
        return f"{value:,.0f}{unit}"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}{unit}"
    return str(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# -- extracting -----------------------------------------------------------------------------------


def install_cell(entry: Json | None) -> str:
    """Seconds of one install, or FAILED with its seconds."""
    if not entry:
        return DASH
    if entry.get("rc") != 0:
        return f"**FAILED** ({entry['seconds']:.1f} s)"
    return f"{entry['seconds']:.1f} s"


def warm_cell(entry: Json | None) -> str:
    """Median of the warm runs, and the runs."""
    if not entry or "warm_runs" not in entry:
        return DASH
    runs = runs_cell(entry["warm_runs"])
    median = entry.get("warm_median")
    return (f"**{median:.1f} s**" if median is not None else "**FAILED**") + f" ({runs})"


def runs_cell(runs: list[Json] | None) -> str:
    """The runs' seconds, a failed one marked."""
    return ", ".join(f"{r['seconds']:.1f}" + ("" if r["rc"] == 0 else "✗") for r in runs or [])


def cold_cell(entry: Json | None) -> str:
    """A cold install: the median of its rounds and the rounds, or the single run."""
    if not entry or "cold" not in entry:
        return DASH
    runs = entry.get("cold_runs")
    return install_cell(entry["cold"]) + (f" ({runs_cell(runs)})" if runs and len(runs) > 1 else "")


def server_cpu_cell(entry: Json | None) -> str:
    """The CPU seconds the server's processes used during a warm install: the median of the runs."""
    used = [r["server_cpu_s"] for r in (entry or {}).get("warm_runs", []) if "server_cpu_s" in r]
    return f"{statistics.median(used):.2f} s" if used else DASH


def direct_seconds(installs: Json, client: str) -> float | None:
    """PyPI direct: the median of its cold rounds, if they all succeeded."""
    cold = dig(installs, "direct", client, "cold")
    return cold["seconds"] if cold and cold.get("rc") == 0 else None


def peak_rss(parts: dict[str, Json], kind: str) -> float | None:
    """The largest VmHWM sum seen for a contender in any part."""
    found: list[float] = []

    def walk(node: Any) -> None:  # noqa: ANN401
        if isinstance(node, dict):
            if "sum_mib" in node and isinstance(node["sum_mib"], (int, float)):
                found.append(float(node["sum_mib"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for doc in parts.values():
        for key, value in (doc.get("results") or {}).items():
            if key == kind or key.startswith(f"{kind} "):
                walk(value)
    return max(found) if found else None


def measured_clients(installs: Json) -> list[str]:
    """The clients the installs part ran, in order."""
    return [c for c in CLIENTS if any(isinstance(e, dict) and c in e for e in installs.values())]


def client_name(parts: dict[str, Json], client: str) -> str:
    """``pip 26.3``, ``pip 23.0.1 (bookworm)``, ``uv``: a client with its version."""
    versions: Json = {}
    for doc in parts.values():
        versions.update({k: v for k, v in (doc.get("versions") or {}).items() if v})
    if client == "pip-bookworm":
        return f"pip {versions.get('pip-bookworm', '23.0.1')} (bookworm)"
    return f"{client} {versions[client]}" if client in versions else client


def page_variant(parts: dict[str, Json], kind: str, variant: str) -> Json | None:
    """One wrk result of the pages part."""
    found: Json | None = dig(parts, "pages", "results", kind, "variants", variant)
    return found


def req_cell(result: Json | None) -> str:
    """req/s (p50 / p99 ms), with errors when any."""
    if not result or result.get("req_s") is None:
        return DASH
    text = f"{result['req_s']:,.0f} ({num(result.get('p50_ms'), 1)} / {num(result.get('p99_ms'), 1)} ms)"
    bad = (result.get("non_2xx") or 0) + (result.get("socket_errors") or 0)
    return text + (f", {bad} errors" if bad else "")


# -- tables ---------------------------------------------------------------------------------------


def summary(parts: dict[str, Json]) -> str:  # noqa: C901 (one row per metric)
    """The main comparison, one column per contender."""
    installs = dig(parts, "installs", "results") or {}
    kinds = [k for k in (*PEERS, "direct") if k in installs or dig(parts, "pages", "results", k)]
    if not kinds:
        kinds = [*PEERS]
    rows: list[list[str]] = []

    def row(label: str, cell: Any) -> None:  # noqa: ANN401
        rows.append([label, *(cell(k) for k in kinds)])

    clients = measured_clients(installs)
    for client in clients:
        name = client_name(parts, client)
        row(
            f"{name} install, cold (empty mirror)",
            lambda k, c=client: cold_cell(dig(installs, k, c)),
        )
        row(
            f"{name} install, warm (median of runs)",
            lambda k, c=client: DASH if k == "direct" else warm_cell(dig(installs, k, c)),
        )
        row(
            f"{name} install, warm, pages of cached files only (nginx's tree; pipdepot `--offline`)",
            lambda k, c=client: (
                warm_cell(dig(installs, k, c, "same_tree"))
                if k == "pipdepot"
                else warm_cell(dig(installs, k, c))
                if k == "nginx"
                else DASH
            ),
        )

    for client in clients:
        row(
            f"server CPU during a warm {client_name(parts, client)} install (median)",
            lambda k, c=client: server_cpu_cell(dig(installs, k, c)),
        )

    def latency(k: str) -> str:
        lat = dig(installs, k, "page_latency") if k == "direct" else dig(installs, k, "uv", "page_latency")
        if not lat:
            return DASH
        return f"{lat['sum_ms'] / 1000:.2f} s / {lat['median_ms']:.1f} ms / {lat['max_ms']:.0f} ms"

    row("index part of a warm install: 42 pages one by one, sum / median / max", latency)
    pages = dig(parts, "pages", "settings") or {}
    small, large = pages.get("small", "requests"), pages.get("large", "numpy")
    for label, project in (("small", small), ("large", large)):
        for fmt in ("html", "json"):

            def cell(k: str, lb: str = label, f: str = fmt) -> str:
                if k == "direct":
                    return DASH
                if k == "nginx":
                    return req_cell(page_variant(parts, k, f"{lb}_upstream_{f}_gzip_static")) + (
                        " (upstream's page, gzip_static)"
                    )
                return req_cell(page_variant(parts, k, f"{lb}_{f}_gzip"))

            files = dig(page_variant(parts, "pipdepot", f"{label}_{fmt}_gzip"), "page", "files")
            row(
                f"`/{project}/` ({num(files, 0)} files), {fmt.upper()} gzip, wrk -c32: req/s (p50 / p99)",
                cell,
            )
    row(
        f"`/{small}/` HTML gzip, 1 connection: req/s (p50 / p99)",
        lambda k: req_cell(page_variant(parts, k, "small_html_gzip_c1")),
    )
    render = dig(parts, "pages", "results", "pipdepot", "cold_render")

    def cold_render(k: str) -> str:
        if k != "pipdepot" or not render:
            return DASH
        best = dig(render, "in_process", "cold_json_page_ms", "best")
        html = dig(render, "in_process", "cold_html_page_ms", "best")
        first = dig(render, "longttl_first_request_json", "ms")
        return f"JSON {num(best)} ms, HTML {num(html)} ms in-process; first HTTP request {num(first)} ms"

    row(f"cold render of `/{large}/` from stored data", cold_render)
    files = dig(parts, "files", "results") or {}
    size = next((v.get("size") for v in files.values() if v.get("size")), None)
    row(
        f"large wheel ({num((size or 0) / 1e6, 1)} MB), curl x{dig(parts, 'files', 'settings', 'curl_count')}"
        " sequential, MB/s",
        lambda k: num(dig(files, k, "curl", "mb_s_total"), 0),
    )
    row(
        "same, wrk -c8: MB/s (req/s)",
        lambda k: (
            f"{num(dig(files, k, 'wrk_c8', 'mb_s'), 0)} ({num(dig(files, k, 'wrk_c8', 'req_s'), 1)})"
            if k in files
            else DASH
        ),
    )
    row(
        "HEAD / Range / 416 correct",
        lambda k: DASH if k not in files else ("yes" if files[k].get("all_ok") else _failed_checks(files[k])),
    )
    startup = dig(parts, "startup", "results") or {}
    row("start → first 200 (median)", lambda k: num(dig(startup, k, "ready_s_median"), 2, " s"))
    row("first uncached page", lambda k: num(dig(startup, k, "uncached_pages", 0, "ms"), 0, " ms"))
    row(
        "peak RSS, VmHWM summed over processes, max over all parts",
        lambda k: num(peak_rss(parts, k), 0, " MiB"),
    )
    offline = dig(parts, "offline", "results") or {}

    def outage(k: str) -> str:
        cells = []
        for label, entry in offline.items():
            if label.split(" ", 1)[0] != k:
                continue
            pip, uv = install_cell(entry.get("pip")), install_cell(entry.get("uv"))
            cells.append(f"{label.split(' ', 1)[1]}: pip {pip}, uv {uv}")
        return "; ".join(cells) or DASH

    row("upstream unreachable after warming, restarted", outage)
    return table(["metric", *(NAMES[k] for k in kinds)], rows)


def _failed_checks(entry: Json) -> str:
    checks = entry.get("checks") or {}
    bad = [name for name, ok in checks.items() if not ok]
    return "no: " + ", ".join(bad) if bad else entry.get("error", "no")


def targets(parts: dict[str, Json]) -> str:  # noqa: C901 (one target per block)
    """Issue 5's targets against this run."""
    installs = dig(parts, "installs", "results") or {}
    rows: list[list[str]] = []

    def verdict(ok: bool | None) -> str:
        return DASH if ok is None else ("met" if ok else "**missed**")

    for client in ("pip", "uv"):
        pd = dig(installs, "pipdepot", client, "warm_median")
        ng = dig(installs, "nginx", client, "warm_median")
        paired = dig(installs, "pipdepot", client, "vs_nginx")
        peers = [dig(installs, p, client, "warm_median") for p in ("devpi", "proxpi")]
        ok = None
        if pd is not None and paired and paired["median"] is not None:
            ok = paired["median"] <= 1.05 and all(p is None or pd < p for p in peers)
        rows.append(
            [
                f"warm {client} within 5% of nginx (paired rounds), faster than devpi and proxpi",
                (
                    f"pipdepot {num(pd)} s, nginx {num(ng)} s; {_paired(paired)}; devpi {num(peers[0])} s,"
                    f" proxpi {num(peers[1])} s"
                ),
                verdict(ok),
            ]
        )
    for client in ("pip", "uv"):
        same = dig(installs, "pipdepot", client, "same_tree", "warm_median")
        ng = dig(installs, "nginx", client, "warm_median")
        paired = dig(installs, "pipdepot", client, "same_tree", "vs_nginx")
        rows.append(
            [
                f"like for like: warm {client} within 5% of nginx, both serving the tree's local-only pages",
                f"pipdepot --offline {num(same)} s, nginx {num(ng)} s; {_paired(paired)}",
                verdict(None if not paired or paired["median"] is None else paired["median"] <= 1.05),
            ]
        )
    lat = dig(installs, "pipdepot", "uv", "page_latency", "sum_ms")
    rows.append(
        [
            "index part of a warm install < 0.2 s",
            f"{num(lat, 0)} ms",
            verdict(None if lat is None else lat < 200),
        ]
    )
    for client in ("pip", "uv"):
        cold = dig(installs, "pipdepot", client, "cold")
        paired = dig(installs, "pipdepot", client, "vs_direct")
        ok = None
        if cold and paired:
            ok = cold["rc"] == 0 and paired["median"] is not None and paired["median"] <= 1.10
        rows.append(
            [
                f"cold {client} within 10% of PyPI direct (paired rounds)",
                (
                    f"pipdepot {install_cell(cold)}, direct {num(direct_seconds(installs, client))} s;"
                    f" {_paired(paired)}"
                ),
                verdict(ok),
            ]
        )
    for label, floor in (("small", 10000), ("large", 500)):
        for fmt in ("html", "json"):
            pd = dig(page_variant(parts, "pipdepot", f"{label}_{fmt}_gzip"), "req_s")
            ng = dig(page_variant(parts, "nginx", f"{label}_upstream_{fmt}_gzip_static"), "req_s")
            ok = None
            if pd is not None:
                ok = pd >= floor and (ng is None or pd >= ng / 3)
            rows.append(
                [
                    f"{label} page {fmt.upper()} gzip ≥ {floor:,} req/s and ≥ 1/3 of nginx from disk",
                    f"pipdepot {num(pd, 0)}, nginx {num(ng, 0)} ({_ratio(pd, ng)})",
                    verdict(ok),
                ]
            )
    files = dig(parts, "files", "results") or {}
    for key, label in (("curl", "curl sequential"), ("wrk_c8", "wrk -c8")):
        field = "mb_s_total" if key == "curl" else "mb_s"
        pd, ng = dig(files, "pipdepot", key, field), dig(files, "nginx", key, field)
        ok = None if pd is None or ng is None else pd >= 0.8 * ng
        rows.append(
            [f"file throughput ≥ 80% of nginx ({label})", f"{num(pd, 0)} vs {num(ng, 0)} MB/s", verdict(ok)]
        )
    rss = peak_rss(parts, "pipdepot")
    rows.append(
        ["peak RSS < 100 MB, whole run", f"{num(rss, 0)} MiB", verdict(None if rss is None else rss < 100)]
    )
    ready = dig(parts, "startup", "results", "pipdepot", "ready_s_median")
    rows.append(
        ["first 200 within 0.5 s", f"{num(ready, 2)} s", verdict(None if ready is None else ready < 0.5)]
    )
    render = dig(parts, "pages", "results", "pipdepot", "cold_render") or {}
    best_json = dig(render, "in_process", "cold_json_page_ms", "best")
    best_html = dig(render, "in_process", "cold_html_page_ms", "best")
    first = [dig(render, f"longttl_first_request_{f}", "ms") for f in ("json", "html")]
    values = [v for v in (best_json, best_html, *first) if v is not None]
    rows.append(
        [
            "4,000+ file page renders cold in < 50 ms",
            (
                f"in-process JSON {num(best_json)} ms, HTML {num(best_html)} ms;"
                f" first HTTP request after restart JSON {num(first[0])} ms, HTML {num(first[1])} ms"
            ),
            verdict(None if not values else max(values) < 50),
        ]
    )
    offline = dig(parts, "offline", "results") or {}
    for label, entry in offline.items():
        if label.startswith("pipdepot"):
            ok = dig(entry, "pip", "rc") == 0 and dig(entry, "uv", "rc") == 0
            rows.append(
                [
                    f"installs with upstream unreachable ({label})",
                    f"pip {install_cell(entry.get('pip'))}, uv {install_cell(entry.get('uv'))}",
                    verdict(ok),
                ]
            )
    return table(["target (issue 5)", "this run", "verdict"], rows)


def issue17(parts: dict[str, Json]) -> str:  # noqa: C901 (one goal per block)
    """Issue 17's goals (target views) against this run."""
    installs = dig(parts, "installs", "results") or {}
    rows: list[list[str]] = []

    def verdict(ok: bool | None) -> str:
        return DASH if ok is None else ("met" if ok else "**missed**")

    clients = measured_clients(installs)
    views = [f"{client_name(parts, c)}: `{dig(installs, VIEW, c, 'view')}`" for c in clients]
    seen = [dig(installs, VIEW, c, "view") for c in clients]
    rows.append(
        [
            "each client's own User-Agent picks its target view (`X-Pipdepot-View`)",
            "; ".join(views),
            verdict(None if not seen else all(v not in {None, "none"} for v in seen)),
        ]
    )
    for client in clients:
        name = client_name(parts, client)
        view, pd = dig(installs, VIEW, client) or {}, dig(installs, "pipdepot", client) or {}
        paired = view.get("vs_nginx")
        rows.append(
            [
                f"warm {name} through the view at most 1.0x nginx over pipdepot's tree (paired rounds)",
                (
                    f"view {num(view.get('warm_median'))} s,"
                    f" nginx {num(dig(installs, 'nginx', client, 'warm_median'))} s; {_paired(paired)};"
                    f" full pages (pipdepot) {num(pd.get('warm_median'))} s,"
                    f" {_paired(pd.get('vs_nginx'))}"
                ),
                verdict(None if not paired or paired.get("median") is None else paired["median"] <= 1.0),
            ]
        )
    for client in clients:
        name = client_name(parts, client)
        view, pd = dig(installs, VIEW, client) or {}, dig(installs, "pipdepot", client) or {}
        paired = view.get("vs_direct")
        ok = None
        if view.get("cold") and paired and paired.get("median") is not None:
            ok = view["cold"]["rc"] == 0 and paired["median"] <= 0.9
        rows.append(
            [
                f"cold {name} through the view at most 0.9x PyPI direct (paired rounds)",
                (
                    f"view {install_cell(view.get('cold'))},"
                    f" direct {num(direct_seconds(installs, client))} s; {_paired(paired)};"
                    f" full pages (pipdepot) {install_cell(pd.get('cold'))},"
                    f" {_paired(pd.get('vs_direct'))}"
                ),
                verdict(ok),
            ]
        )
    for client in clients:
        name = client_name(parts, client)
        cells, oks = [], []
        for kind in (VIEW, "pipdepot"):
            for peer in ("devpi", "proxpi"):
                ratios = dig(installs, kind, client, f"vs_{peer}", "runs")
                runs = dig(installs, peer, client, "warm_runs")
                if ratios is None or not runs:
                    continue
                complete = len(ratios) == len(runs)
                label = "view" if kind == VIEW else "full pages"
                cells.append(
                    f"{label}/{peer} "
                    + ", ".join(f"{r:.2f}" for r in ratios)
                    + ("" if complete else " (a run failed)")
                )
                if kind == VIEW:
                    oks.append(complete and all(r < 1 for r in ratios))
        rows.append(
            [
                f"warm {name} through the view faster than devpi-server and proxpi in every round",
                "; ".join(cells) or "no peers in this run",
                verdict(all(oks) if oks else None),
            ]
        )
    lat = [(k, dig(installs, k, "uv", "page_latency")) for k in ("pipdepot", VIEW, "nginx")]
    listed = [(k, dig(installs, k, "uv", "files_listed")) for k in ("pipdepot", VIEW, "nginx")]
    rows.append(
        [
            "the 42 pages one by one (uv's encodings, keep-alive): sum / median / max; files they list",
            "; ".join(
                f"{_short(k)} {v['sum_ms']:.0f} / {v['median_ms']:.1f} / {v['max_ms']:.0f} ms"
                for k, v in lat
                if v
            )
            + "; files: "
            + ", ".join(f"{_short(k)} {num(n, 0)}" for k, n in listed if n is not None),
            "shown",
        ]
    )
    rates = []
    for label in ("small", "large"):
        for fmt in ("html", "json"):
            v = dig(page_variant(parts, VIEW, f"{label}_{fmt}_gzip"), "req_s")
            f = dig(page_variant(parts, "pipdepot", f"{label}_{fmt}_gzip"), "req_s")
            files = dig(page_variant(parts, VIEW, f"{label}_{fmt}_gzip"), "page", "files")
            if v is not None:
                rates.append(
                    f"{label} {fmt.upper()} {num(v, 0)} req/s ({num(files, 0)} files; full page {num(f, 0)})"
                )
    rows.append(
        ["page rates of the view, wrk -c32, gzip", "; ".join(rates) or DASH, "shown" if rates else DASH]
    )
    ipa = dig(parts, "ipa", "results") or {}
    if ipa:
        ways = ", ".join(
            f"{way} {num(dig(ipa, way, 'median'))} s ({_paired(dig(ipa, way, 'vs_file'))})"
            for way in ("view", "serve", "offline")
        )
        ratio = dig(ipa, "view", "vs_file", "median")
        rows.append(
            [
                (
                    f"ironic-python-agent ({ipa.get('wheels')} wheels)"
                    f" with {client_name(parts, 'pip-bookworm')}"
                    " through an online serve (the view) within 10% of `file://`"
                ),
                f"file:// {num(dig(ipa, 'file', 'median'))} s; {ways}",
                verdict(None if ratio is None else ratio <= 1.10),
            ]
        )
    return table(["goal (issue 17)", "this run", "verdict"], rows)


def _short(kind: str) -> str:
    """A contender's name in a crowded cell: the view is "view"."""
    return "view" if kind == VIEW else NAMES[kind]


def rounds17(parts: dict[str, Json]) -> str:
    """Every round of every client: the installs the issue 17 ratios are made of."""
    installs = dig(parts, "installs", "results") or {}
    cold = [k for k in ("direct", "pipdepot", VIEW) if k in installs]
    warm = [k for k in ("pipdepot", VIEW, "nginx", "devpi", "proxpi") if k in installs]
    rows = []
    for client in measured_clients(installs):
        count = max((len(dig(installs, k, client, "warm_runs") or []) for k in warm), default=0)
        for i in range(count):
            cells = [client_name(parts, client), str(i + 1)]
            for kind in cold:
                run = dig(installs, kind, client, "cold_runs", i)
                cells.append(runs_cell([run]) if run else DASH)
            for kind in warm:
                run = dig(installs, kind, client, "warm_runs", i)
                cells.append(runs_cell([run]) if run else DASH)
            same = dig(installs, "pipdepot", client, "same_tree", "warm_runs", i)
            cells.append(runs_cell([same]) if same else DASH)
            ratio = dig(installs, VIEW, client, "vs_nginx", "runs", i)
            cells.append(num(ratio, 2))
            rows.append(cells)
    header = ["client", "round", *(f"cold {_short(k)}" for k in cold)]
    header += [f"warm {_short(k)}" for k in warm]
    header += ["warm pipdepot `--offline`", "view / nginx"]
    out = [table(header, rows)] if rows else []
    ipa = dig(parts, "ipa", "results") or {}
    if ipa:
        ways = {
            "view": "online serve, target view (`/+auto/simple/`)",
            "serve": "online serve, full pages (`/simple/`)",
            "offline": "`serve --offline` (cached files only)",
            "file": "`file://` over pipdepot's tree",
        }
        ipa_rows = [
            [
                label,
                runs_cell(dig(ipa, way, "runs")),
                num(dig(ipa, way, "median")),
                ", ".join(f"{r:.2f}" for r in dig(ipa, way, "vs_file", "runs") or []),
                num(dig(ipa, way, "vs_file", "median"), 2),
            ]
            for way, label in ways.items()
        ]
        out += [
            "",
            (
                f"ironic-python-agent ({ipa.get('wheels')} wheels), {client_name(parts, 'pip-bookworm')},"
                " warm, paired rounds:"
            ),
            "",
            table(["through", "runs, s", "median s", "over file:// per round", "median ratio"], ipa_rows),
        ]
        profile = ipa.get("profile") or {}
        ways_profiled = [w for w in ("view", "file") if dig(profile, w, "phases")]
        if ways_profiled:

            def seconds(way: str, phase: str | None) -> str:
                phases = profile[way]["phases"]
                samples = phases["total"] if phase is None else phases["samples"][phase]
                return num(samples / phases["rate_hz"], 2) + " s"

            prof_rows = [
                [
                    "whole install (wall clock)",
                    *(install_cell(dig(profile, w, "install")) for w in ways_profiled),
                ]
            ]
            prof_rows.append(["pip's processes, busy samples", *(seconds(w, None) for w in ways_profiled)])
            phases = profile[ways_profiled[0]]["phases"]["samples"]
            prof_rows += [[phase, *(seconds(w, phase) for w in ways_profiled)] for phase in phases]
            out += [
                "",
                "The same install under py-spy (200 Hz, pip and its subprocess), one run each:",
                "",
                table(["pip's phase (samples / 200)", *(ways[w] for w in ways_profiled)], prof_rows),
            ]
    return "\n".join(out)


def _paired(paired: Json | None) -> str:
    """The median of the per-round ratios, and the ratios."""
    if not paired or not paired.get("runs"):
        return "no paired rounds"
    runs = ", ".join(f"{r:.2f}" for r in paired["runs"])
    median = paired.get("median")
    return f"paired ratio {num(median, 2)}x ({runs})" if median is not None else f"ratios {runs}"


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return DASH
    return f"{value / reference:.2f}x"


def details(parts: dict[str, Json]) -> str:  # noqa: C901 (one table per part)
    """The detailed tables: every wrk variant, every file check, startup and offline rows."""
    out = []
    pages = dig(parts, "pages", "results") or {}
    rows = []
    for kind, entry in pages.items():
        for variant, result in (entry.get("variants") or {}).items():
            page = result.get("page") or {}
            rows.append(
                [
                    NAMES.get(kind, kind),
                    variant,
                    num(page.get("files"), 0),
                    num(page.get("bytes_sent"), 0),
                    str(page.get("content_encoding") or "identity"),
                    num(result.get("req_s"), 0),
                    num(result.get("p50_ms"), 2),
                    num(result.get("p99_ms"), 2),
                    str((result.get("non_2xx") or 0) + (result.get("socket_errors") or 0)),
                ]
            )
    if rows:
        out += [
            "### Page serving (wrk, warm cache)",
            "",
            table(
                [
                    "server",
                    "variant",
                    "files",
                    "bytes sent",
                    "encoding",
                    "req/s",
                    "p50 ms",
                    "p99 ms",
                    "errors",
                ],
                rows,
            ),
        ]
    render = dig(pages, "pipdepot", "cold_render", "in_process")
    if render and "best" in render:
        steps = [k for k in render["best"] if k not in {"files", "state_bytes", "html_bytes", "json_bytes"}]
        out += [
            "",
            "### Cold render of the large page in pipdepot (in-process, ms; first call and best of 5)",
            "",
            table(
                ["", *steps],
                [[w, *(num(render[w][s], 2) for s in steps)] for w in ("first", "best")],
            ),
            "",
            (
                f"State file {num(render['best']['state_bytes'], 0)} bytes; {render['best']['files']} files;"
                f" HTML {num(render['best']['html_bytes'], 0)} bytes,"
                f" JSON {num(render['best']['json_bytes'], 0)} bytes."
            ),
        ]
        cold = dig(pages, "pipdepot", "cold_render") or {}
        rows = []
        for mode in ("longttl", "offline"):
            for fmt in ("json", "html"):
                first, second = (
                    cold.get(f"{mode}_first_request_{fmt}"),
                    cold.get(f"{mode}_second_request_{fmt}"),
                )
                if first:
                    rows.append(
                        [
                            mode,
                            fmt,
                            num(first.get("files"), 0),
                            num(first.get("ms"), 2),
                            num(dig(second, "ms"), 2),
                            str(first.get("cache")),
                        ]
                    )
        if rows:
            out += [
                "",
                (
                    "First request after a restart (`longttl`: stored page fresh, whole upstream page"
                    " rendered; `offline`: `--offline`, only local files listed):"
                ),
                "",
                table(["restart", "format", "files", "first ms", "second ms", "X-Pipdepot-Cache"], rows),
            ]
    top = dig(pages, "pipdepot", "profile", "top_self")
    if top:
        load = dig(pages, "pipdepot", "profile", "load") or {}
        out += [
            "",
            (
                f"py-spy of pipdepot under the small-page HTML load ({num(load.get('req_s'), 0)} req/s while"
                " sampled), self time of the top frames:"
            ),
            "",
            table(["frame", "% of samples"], [[f"`{name}`", num(share, 1)] for name, share in top[:12]]),
        ]
    files = dig(parts, "files", "results") or {}
    if files:
        rows = []
        for kind, entry in files.items():
            rows.append(
                [
                    NAMES.get(kind, kind),
                    num((entry.get("size") or 0) / 1e6, 1),
                    num(dig(entry, "curl", "mb_s_total"), 0),
                    num(dig(entry, "curl", "median_ms"), 1),
                    str(dig(entry, "curl", "codes")),
                    num(dig(entry, "wrk_c8", "mb_s"), 0),
                    num(dig(entry, "wrk_c8", "req_s"), 1),
                    "yes" if entry.get("all_ok") else _failed_checks(entry),
                ]
            )
        out += [
            "",
            "### File serving (warm cache)",
            "",
            table(
                [
                    "server",
                    "MB",
                    "curl MB/s",
                    "curl median ms",
                    "codes",
                    "wrk -c8 MB/s",
                    "wrk req/s",
                    "HEAD/Range",
                ],
                rows,
            ),
        ]
    out += _startup_offline(parts)
    return "\n".join(out)


def _startup_offline(parts: dict[str, Json]) -> list[str]:
    out: list[str] = []
    startup = dig(parts, "startup", "results") or {}
    if startup:
        rows = []
        for kind, entry in startup.items():
            pages = entry.get("uncached_pages") or []
            rows.append(
                [
                    NAMES.get(kind, kind),
                    ", ".join(num(v, 2) for v in entry.get("ready_s", [])),
                    ", ".join(num(v, 2) for v in entry.get("init_s", []) if v is not None) or DASH,
                    ", ".join(f"{p['project']} {num(p.get('ms'), 0)} ms ({p.get('status')})" for p in pages)
                    or DASH,
                    num(dig(entry, "rss_after_pages", "sum_mib"), 0),
                ]
            )
        out += [
            "",
            "### Start-up (empty data dir; nginx over the warm tree)",
            "",
            table(
                ["server", "start → first 200, s", "devpi-init s", "first uncached pages", "RSS after, MiB"],
                rows,
            ),
        ]
    offline = dig(parts, "offline", "results") or {}
    if offline:
        rows = [
            [
                label,
                num(entry.get("ready_s"), 2),
                (
                    f"{dig(entry, 'page', 'status')} ({dig(entry, 'page', 'files')} files,"
                    f" cache {dig(entry, 'page', 'cache')})"
                ),
                install_cell(entry.get("pip")),
                install_cell(entry.get("uv")),
                _short_error(entry),
            ]
            for label, entry in offline.items()
        ]
        out += [
            "",
            "### Upstream unreachable (restarted on a warm data dir)",
            "",
            table(["contender, mode", "ready s", "small page", "pip", "uv", "first error"], rows),
        ]
    installs = dig(parts, "installs", "results") or {}
    rss_rows = []
    for kind in PEERS:
        for client in CLIENTS:
            entry = dig(installs, kind, client)
            if entry:
                rss_rows.append(
                    [NAMES[kind], client, num(dig(entry, "rss", "sum_mib"), 0), num(entry.get("ready_s"), 2)]
                )
    if rss_rows:
        out += [
            "",
            "### Peak RSS of the install instances (cold + warm runs)",
            "",
            table(["server", "client", "peak RSS MiB", "ready s"], rss_rows),
        ]
    return out


def _client_profile(parts: dict[str, Json]) -> list[str]:
    """pip's time by phase in one warm install through pipdepot, its view and nginx (py-spy), per pip."""
    installs = dig(parts, "installs", "results") or {}
    out: list[str] = []
    for client in ("pip", "pip-bookworm"):
        profile = dig(installs, "pipdepot", client, "client_profile") or dig(
            installs, VIEW, client, "client_profile"
        )
        kinds = [k for k in ("pipdepot", VIEW, "nginx") if dig(profile, k, "phases")]
        if not profile or "nginx" not in kinds or len(kinds) < 2:
            continue

        def seconds(kind: str, phase: str | None, profile: Json = profile) -> str:
            phases = profile[kind]["phases"]
            samples = phases["total"] if phase is None else phases["samples"][phase]
            return num(samples / phases["rate_hz"], 2)

        rows = [["whole install (wall clock)", *(install_cell(dig(profile, k, "install")) for k in kinds)]]
        busy = "pip's processes, busy samples (py-spy skips idle ones)"
        rows.append([busy, *(seconds(k, None) + " s" for k in kinds)])
        phases = profile[kinds[0]]["phases"]["samples"]
        rows += [[phase, *(seconds(k, phase) + " s" for k in kinds)] for phase in phases]
        out += [
            "",
            f"### {client_name(parts, client)} in a warm install, under py-spy (200 Hz, with its subprocess)",
            "",
            table(["pip's phase (samples / 200)", *(f"through {NAMES[k]}" for k in kinds)], rows),
        ]
    return out


def _short_error(entry: Json) -> str:
    for client in ("pip", "uv"):
        error = dig(entry, client, "error")
        if error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            text = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "")
            return f"{client}: {text[:160]}".replace("|", "\\|")
    return DASH


def header(parts: dict[str, Json]) -> str:
    """Machine, versions, commands, dates."""
    any_doc = next(iter(parts.values()))
    machine = any_doc["machine"]
    versions: Json = {}
    for doc in parts.values():
        versions.update({k: v for k, v in (doc.get("versions") or {}).items() if v})
    lines = [
        (
            f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['ram_gib']} GiB RAM, kernel"
            f" {machine['kernel']}, {machine['os']}, Python {machine['python']}. Server, load generator and"
            " clients share the same CPUs."
        ),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        "Commands (each part's JSON is in `bench/results/`):",
        "",
    ]
    lines += [
        f"- `{doc['part']}`: `{doc['command']}` — {doc['started']}, {doc['duration_s']:.0f} s"
        + (" (smoke)" if doc.get("smoke") else "")
        for doc in parts.values()
    ]
    return "\n".join(lines)


def plot(parts: dict[str, Json], path: Path) -> bool:
    """Warm/cold install times and page req/s, side by side."""
    try:
        import matplotlib as mpl  # noqa: PLC0415 (only the tools venv has it)

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False
    installs = dig(parts, "installs", "results") or {}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    kinds = [k for k in (*PEERS, "direct") if k in installs]
    bars = [("pip", "cold"), ("pip", "warm"), ("uv", "cold"), ("uv", "warm")]
    width = 0.8 / len(kinds) if kinds else 0.8
    for i, kind in enumerate(kinds):
        values = []
        for client, when in bars:
            if kind == "direct":
                values.append(direct_seconds(installs, client) if when == "cold" else 0)
            elif when == "cold":
                cold = dig(installs, kind, client, "cold")
                values.append(cold["seconds"] if cold and cold["rc"] == 0 else 0)
            else:
                values.append(dig(installs, kind, client, "warm_median") or 0)
        xs = [j + i * width for j in range(len(bars))]
        left.bar(xs, values, width, label=NAMES[kind])
    left.set_xticks([j + 0.4 - width / 2 for j in range(len(bars))], [f"{c} {w}" for c, w in bars])
    left.set_ylabel("seconds (lower is better)")
    left.set_title("Install of the 42-wheel set (0 = failed / not applicable)")
    left.legend(fontsize=8)
    variants = [("small", "html"), ("small", "json"), ("large", "html"), ("large", "json")]
    page_kinds = [k for k in PEERS if dig(parts, "pages", "results", k)]
    width = 0.8 / max(len(page_kinds), 1)
    settings = dig(parts, "pages", "settings") or {}
    for i, kind in enumerate(page_kinds):
        values = []
        for size, fmt in variants:
            name = f"{size}_upstream_{fmt}_gzip_static" if kind == "nginx" else f"{size}_{fmt}_gzip"
            values.append(dig(page_variant(parts, kind, name), "req_s") or 0)
        xs = [j + i * width for j in range(len(variants))]
        right.bar(
            xs,
            values,
            width,
            label="nginx (upstream's page from disk, gzip_static)" if kind == "nginx" else NAMES[kind],
        )
    right.set_yscale("log")
    right.set_xticks(
        [j + 0.4 - width / 2 for j in range(len(variants))],
        [f"/{settings.get(s, s)}/ {f.upper()}" for s, f in variants],
    )
    right.set_ylabel("requests/s, wrk -c32, gzip (log; higher is better)")
    right.set_title("Cached project pages")
    right.legend(fontsize=8, loc="lower left", framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def render(parts: dict[str, Json], plot_name: str | None) -> str:
    """The generated block."""
    blocks = [BEGIN, "", header(parts), "", "### Main comparison", "", summary(parts), ""]
    if plot_name:
        blocks += [f"![install times and page throughput]({plot_name})", ""]
    blocks += ["### Issue 5 targets", "", targets(parts), "", details(parts), "", END]
    return "\n".join(blocks)


def render_views(parts: dict[str, Json]) -> str:
    """Issue 17's block: the goals, every round, the view's pages beside the full ones, pip profiled."""
    blocks = [VIEWS_BEGIN, "", "### Issue 17 goals", "", issue17(parts), "", "### Issue 17 rounds", ""]
    blocks += [rounds17(parts), "", *_view_pages(parts), *_client_profile(parts), "", VIEWS_END]
    return "\n".join(blocks)


def _view_pages(parts: dict[str, Json]) -> list[str]:
    """The view's page rates and the 42 pages one by one, beside pipdepot's full pages and nginx."""
    rows = []
    for kind in ("pipdepot", VIEW, "nginx"):
        variants = dig(parts, "pages", "results", kind, "variants") or {}
        for variant, result in variants.items():
            if kind == "nginx" and "gzip_static" not in variant:
                continue
            page = result.get("page") or {}
            rows.append(
                [
                    _short(kind),
                    variant,
                    num(page.get("files"), 0),
                    num(page.get("bytes_sent"), 0),
                    str(page.get("view") or DASH),
                    num(result.get("req_s"), 0),
                    num(result.get("p50_ms"), 2),
                    num(result.get("p99_ms"), 2),
                ]
            )
    out: list[str] = []
    if rows:
        header = ["server", "variant", "files", "bytes sent", "X-Pipdepot-View", "req/s", "p50 ms", "p99 ms"]
        out += [
            "### Page rates: the view beside the full pages (wrk, warm cache)",
            "",
            table(header, rows),
            "",
        ]
    installs = dig(parts, "installs", "results") or {}
    lat_rows = []
    for kind in ("pipdepot", VIEW, "nginx", "devpi", "proxpi", "direct"):
        lat = (
            dig(installs, kind, "page_latency")
            if kind == "direct"
            else dig(installs, kind, "uv", "page_latency")
        )
        if lat:
            lat_rows.append(
                [
                    NAMES[kind],
                    num(lat["sum_ms"], 0),
                    num(lat["median_ms"], 1),
                    num(lat["max_ms"], 0),
                    ", ".join(f"{n} {num(ms, 0)} ms" for n, ms in lat.get("slowest", [])),
                    num(dig(installs, kind, "uv", "files_listed"), 0),
                ]
            )
    if lat_rows:
        header = ["server", "sum ms", "median ms", "max ms", "slowest", "files listed (JSON)"]
        out += ["### The 42 pages one by one (keep-alive, uv's encodings)", "", table(header, lat_rows), ""]
    return out


SKELETON = """# Benchmarks

pipdepot against devpi-server, proxpi, nginx serving pipdepot's own tree, and PyPI direct.
Regenerate with `bench/run` (everything) or `bench/run report` (tables only).

{block}

{views}
"""


def _replace(text: str, begin: str, end: str, block: str) -> str | None:
    """``text`` with the block between ``begin`` and ``end`` replaced; None if the markers are missing."""
    if begin not in text or end not in text:
        return None
    before, rest = text.split(begin, 1)
    return before + block + rest.split(end, 1)[1]


def main(argv: list[str] | None = None) -> int:
    """Write the doc's tables and the plot."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    parser.add_argument("--doc", type=Path, default=BENCH.parent / "docs" / "BENCHMARKS.md")
    parser.add_argument("--plot", type=Path, default=BENCH.parent / "docs" / "benchmarks.png")
    args = parser.parse_args(argv)
    parts = load(args.results)
    if not parts:
        print(f"no results in {args.results}")
        return 1
    missing = [part for part in MAIN_PARTS if part not in parts]
    plotted = not missing and plot(parts, args.plot)  # the plot belongs to the main tables
    plot_name = args.plot.name if plotted and args.plot.parent == args.doc.parent else None
    if plotted and plot_name is None:
        plot_name = str(args.plot)
    block, views = render(parts, plot_name), render_views(parts)
    if args.doc.exists():
        text = args.doc.read_text()
        if missing:  # a partial run: the main tables stay those of the last complete run
            print(f"main tables kept: the results have no {', '.join(missing)}")
        else:
            text = _replace(text, BEGIN, END, block) or f"{text}\n{block}\n"
        text = _replace(text, VIEWS_BEGIN, VIEWS_END, views) or f"{text}\n{views}\n"
        args.doc.write_text(text)
    else:
        args.doc.parent.mkdir(parents=True, exist_ok=True)
        args.doc.write_text(SKELETON.format(block=block, views=views))
    print(f"wrote {args.doc}" + (f" and {args.plot}" if plotted else " (no matplotlib: no plot)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
