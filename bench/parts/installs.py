"""The installs part: pip and uv installing the requirement set, cold and warm, through each contender.

This is the number a user feels. Cold is a fresh server with an empty cache (the first build); warm
is an install once the cache holds everything (every later build). nginx serves pipdepot's warm
tree, so it has warm runs only; PyPI direct has cold runs only. pipdepot is also measured serving
the same local-only pages as nginx (``--offline`` over the very tree nginx serves): the like-for-like
pairing. The page latency isolates the index's share of a warm install from the downloads.

The runs are interleaved, not taken contender after contender: this machine drifts between fast and
slow phases over minutes (nginx's own warm uv runs ranged 1.0-3.7 s), which made a ratio of two
blocks taken minutes apart mostly a measure of the drift. So, per client:

- cold rounds: PyPI direct and pipdepot (a fresh server on an empty data dir each round) side by
  side, the order alternating; devpi and proxpi once each (they take 20-30 s);
- warm rounds: every warm server up at once, one install through each per round, the order rotated
  each round. pipdepot's warm server is the one its last cold round filled.

Each pipdepot run is compared with its partner in the same round (``vs_nginx``, ``vs_direct``), and
the targets read the median of those paired ratios.

pipdepot's target view (``pipdepot-view``, issue 17) is pipdepot at ``/+auto/simple/``: cold, a
fresh pipdepot of its own in the cold rounds; warm, the very server pipdepot's warm runs use, so the
two differ only in the pages' path. Every client's User-Agent is caught once and the view pipdepot
picks for it recorded (``agent``, ``view``): a view of ``none`` would be the full page.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import statistics
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clients import install, user_agent
from common import cpu_seconds, log
from contenders import VIEW, VIEW_INDEX, devpi_init, make_server
from server import kill_leftovers
from warm import ensure_warm
from web import JSON_ACCEPT, PIP_ACCEPT, decoded, fetch

from parts.profiling import profile_pip_install

#: The encodings uv takes (servers without zstd answer gzip).
UV_ENCODINGS = "gzip, zstd"
#: The like-for-like pairing's key among the warm servers: pipdepot --offline over nginx's tree.
SAME_TREE = "pipdepot-same-tree"

if TYPE_CHECKING:
    from pathlib import Path

    from common import Json
    from config import Bench
    from server import Server


@dataclass
class Warm:
    """A warm contender in the rounds: its server, its results entry and the index path it installs from."""

    server: Server
    entry: Json
    index: str
    #: Headers a harness request sends to get the page this contender's client gets (the view: its UA).
    headers: dict[str, str]

    @property
    def url(self) -> str:
        """The index URL the clients are given."""
        return self.server.base + self.index


def part_installs(b: Bench) -> Json:
    """Per client: cold rounds (direct and pipdepot paired), then interleaved warm rounds."""
    out: Json = {kind: {} for kind in b.contenders}
    for client in b.clients:
        try:
            client_rounds(b, client, out)
        except Exception as exc:  # noqa: BLE001 (the other client's rounds still count)
            log(f"{client} rounds failed: {exc!r}")
            for kind in b.contenders:
                out[kind].setdefault(client, {}).setdefault("error", repr(exc))
        finally:
            kill_leftovers()
    if "direct" in out:
        out["direct"]["page_latency"] = page_latency(b, b.upstream_simple())
    return out


def client_rounds(b: Bench, client: str, out: Json) -> None:
    """Fill ``out[kind][client]`` for every contender; every server this starts is stopped at the end."""
    entries: Json = {kind: {} for kind in b.contenders}
    for kind, entry in entries.items():
        out[kind][client] = entry
    agent = {"User-Agent": user_agent(b, client)} if VIEW in entries else {}
    with contextlib.ExitStack() as stack:
        warm = cold_servers(b, client, entries, stack, agent)
        if "nginx" in entries or "pipdepot" in entries:
            warm |= tree_servers(b, client, entries, stack)
        if VIEW in warm:
            entries[VIEW]["agent"] = agent["User-Agent"]
            entries[VIEW]["view"] = view_of(warm[VIEW], b.names[0])
        warm_rounds(b, client, warm)
        if client != "uv" and b.profile:
            profile_pip(b, client, warm, entries)
        if client == "uv":
            for kind, each in warm.items():
                if kind != SAME_TREE:
                    each.entry["page_latency"] = page_latency(b, each.url, each.headers)
                    each.entry["files_listed"] = files_listed(b, each.url, each.headers)
    for each in warm.values():
        each.entry["rss"] = each.server.rss
    pair(entries)


def cold_servers(
    b: Bench, client: str, entries: Json, stack: contextlib.ExitStack, agent: dict[str, str]
) -> dict[str, Warm]:
    """The cold installs of every contender that has them; their servers, filled, for the warm rounds.

    The view's warm runs go through pipdepot's own warm server when pipdepot is measured too.
    """
    warm: dict[str, Warm] = {}
    if {"pipdepot", VIEW, "direct"} & set(entries):
        kept = cold_rounds(b, client, entries, stack)
        if "pipdepot" in kept:
            warm["pipdepot"] = Warm(kept["pipdepot"], entries["pipdepot"], "/simple/", {})
        server = kept.get("pipdepot") or kept.get(VIEW)
        if VIEW in entries and server is not None:
            warm[VIEW] = Warm(server, entries[VIEW], VIEW_INDEX, agent)
    for kind in ("devpi", "proxpi"):
        if kind in entries:
            server = start_cold(b, kind, client, entries[kind], stack)
            if server is not None:
                entries[kind]["cold"] = install(b, client, server.base + server.index)
                warm[kind] = Warm(server, entries[kind], server.index, {})
    return warm


def tree_servers(b: Bench, client: str, entries: Json, stack: contextlib.ExitStack) -> dict[str, Warm]:
    """nginx and pipdepot ``--offline`` over the same warm tree."""
    tree = ensure_warm(b, "pipdepot")
    warm: dict[str, Warm] = {}
    if "pipdepot" in entries:
        same: Json = {}
        entries["pipdepot"]["same_tree"] = same
        server = start(b, "pipdepot", tree, same, stack, mode="offline", tag=f"-{client}-same-tree")
        if server is not None:
            warm[SAME_TREE] = Warm(server, same, server.index, {})
    if "nginx" in entries:
        server = start(b, "nginx", tree, entries["nginx"], stack, tag=f"-{client}")
        if server is not None:
            warm["nginx"] = Warm(server, entries["nginx"], server.index, {})
    return warm


def view_of(each: Warm, project: str) -> str | None:
    """The view pipdepot picks for this client's User-Agent (``X-Pipdepot-View``; ``none``: the full page)."""
    _, headers, _ = fetch(f"{each.url}{project}/", {"Accept": PIP_ACCEPT, **each.headers})
    view = headers.get("x-pipdepot-view")
    log(f"{each.headers.get('User-Agent', '')[:60]}...: view {view}")
    return view


def start(
    b: Bench, kind: str, data: Path, entry: Json, stack: contextlib.ExitStack, **how: str
) -> Server | None:
    """A running server kept until the client's rounds end, or None with the error in ``entry``."""
    try:
        server = stack.enter_context(make_server(b, kind, data, **how).start())
    except Exception as exc:  # noqa: BLE001 (one contender failing must not lose the others' numbers)
        log(f"{kind} did not start: {exc!r}")
        entry["error"] = repr(exc)
        return None
    entry["ready_s"] = server.ready_s
    return server


def start_cold(b: Bench, kind: str, client: str, entry: Json, stack: contextlib.ExitStack) -> Server | None:
    """A contender's server on an empty data dir of its own."""
    data = b.data(f"{kind}-{client}")
    shutil.rmtree(data, ignore_errors=True)
    if kind == "devpi":
        entry["init_s"] = devpi_init(b, data)
    return start(b, kind, data, entry, stack, tag=f"-{client}")


def cold_rounds(b: Bench, client: str, entries: Json, stack: contextlib.ExitStack) -> dict[str, Server]:
    """PyPI direct, pipdepot-from-empty and its view side by side, ``repeats`` times, the order rotated.

    Each pipdepot round starts a fresh server on an empty data dir; all but the last are stopped
    after their install (their peak RSS kept), the last one goes on to the warm rounds (the view's
    only when pipdepot's is not measured: then the view's warm runs use pipdepot's).
    """
    kinds = [k for k in ("direct", "pipdepot", VIEW) if k in entries]
    for kind in kinds:
        entries[kind]["cold_runs"] = []
    kept: dict[str, Server] = {}
    failed = False
    for round_ in range(b.repeats):
        shift = round_ % len(kinds)
        for kind in kinds[shift:] + kinds[:shift]:
            if kind == "direct":
                entries[kind]["cold_runs"].append(install(b, client, None))
                continue
            last = round_ == b.repeats - 1 and (kind == "pipdepot" or "pipdepot" not in kinds)
            with contextlib.ExitStack() as this_round:
                server = start_cold(b, kind, client, entries[kind], stack if last else this_round)
                if server is None:  # the error is in the entry; the runs so far still count
                    failed = True
                    break
                entries[kind]["cold_runs"].append(install(b, client, server.base + server.index))
            if last:
                kept[kind] = server
            else:
                entries[kind].setdefault("cold_rss", []).append(server.rss)
        if failed:
            break
    for kind in kinds:
        if entries[kind]["cold_runs"]:
            entries[kind]["cold"] = summarize(entries[kind]["cold_runs"])
    return kept


def warm_rounds(b: Bench, client: str, warm: dict[str, Warm]) -> None:
    """One install through every warm server per round, the order rotated each round.

    Each run also records the CPU seconds the server's processes used during it: the server's
    share of two CPUs it splits with the client.
    """
    order = list(warm)
    for each in warm.values():
        each.entry["warm_runs"] = []
    for round_ in range(b.repeats):
        shift = round_ % len(order) if order else 0
        for kind in order[shift:] + order[:shift]:
            server, entry = warm[kind].server, warm[kind].entry
            before = cpu_seconds(server.process.pid) if server.process else 0.0
            run = install(b, client, warm[kind].url)
            if server.process:
                run["server_cpu_s"] = round(cpu_seconds(server.process.pid) - before, 3)
            entry["warm_runs"].append(run)
    for each in warm.values():
        ok = [r["seconds"] for r in each.entry["warm_runs"] if r["rc"] == 0]
        complete = ok and len(ok) == len(each.entry["warm_runs"])
        each.entry["warm_median"] = statistics.median(ok) if complete else None


def profile_pip(b: Bench, client: str, warm: dict[str, Warm], entries: Json) -> None:
    """One more warm pip install through pipdepot, its view and nginx, under py-spy: where a gap goes."""
    kinds = [kind for kind in ("pipdepot", VIEW, "nginx") if kind in warm]
    if "nginx" not in kinds or len(kinds) < 2:
        return
    owner = "pipdepot" if "pipdepot" in entries else VIEW
    entries[owner]["client_profile"] = {
        kind: profile_pip_install(b, warm[kind].url, f"{client}-{kind}", client=client) for kind in kinds
    }


def summarize(runs: list[Json]) -> Json:
    """Several runs as one: the median seconds, failed if any run failed (with the first error)."""
    failed = [r for r in runs if r["rc"] != 0]
    summary: Json = {
        "rc": failed[0]["rc"] if failed else 0,
        "seconds": statistics.median(r["seconds"] for r in runs),
    }
    if failed:
        summary["error"] = failed[0].get("error", "")
    return summary


def pair(entries: Json) -> None:
    """pipdepot's and its view's runs over their partners' of the same round: the ratios the targets read."""
    partners: list[tuple[Json | None, str, Json | None, str, str]] = []
    for kind in ("pipdepot", VIEW):
        mine = entries.get(kind)
        if not mine:
            continue
        others = [other for other in ("nginx", "devpi", "proxpi", "pipdepot") if other != kind]
        partners += [(mine, "warm_runs", entries.get(other), "warm_runs", f"vs_{other}") for other in others]
        partners.append((mine, "cold_runs", entries.get("direct"), "cold_runs", "vs_direct"))
    if "pipdepot" in entries:
        partners.append(
            (entries["pipdepot"].get("same_tree"), "warm_runs", entries.get("nginx"), "warm_runs", "vs_nginx")
        )
    for mine, runs, theirs, their_runs, key in partners:
        if not mine or not theirs or runs not in mine or their_runs not in theirs:
            continue
        ratios = [
            round(a["seconds"] / z["seconds"], 3)
            for a, z in zip(mine[runs], theirs[their_runs], strict=False)
            if a["rc"] == 0 and z["rc"] == 0
        ]
        complete = len(ratios) == len(mine[runs]) == len(theirs[their_runs])
        mine[key] = {"runs": ratios, "median": statistics.median(ratios) if complete and ratios else None}


def page_latency(b: Bench, index: str, headers: dict[str, str] | None = None) -> Json:
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
    views: set[str] = set()
    sent = {"Accept": PIP_ACCEPT, "Accept-Encoding": UV_ENCODINGS, **(headers or {})}
    try:
        for name in b.names:
            begin = time.perf_counter()
            conn.request("GET", f"{parts.path}{name}/", headers=sent)
            response = conn.getresponse()
            response.read()
            times[name] = round((time.perf_counter() - begin) * 1000, 2)
            statuses.add(response.status)
            views.add(response.getheader("X-Pipdepot-View") or "-")
    finally:
        conn.close()
    slowest = sorted(times.items(), key=lambda kv: -kv[1])[:3]
    return {
        "sum_ms": round(sum(times.values()), 1),
        "median_ms": round(statistics.median(times.values()), 2),
        "max_ms": max(times.values()),
        "slowest": slowest,
        "statuses": sorted(statuses),
        "views": sorted(views),
        "pages": len(times),
    }


def files_listed(b: Bench, index: str, headers: dict[str, str]) -> int | None:
    """How many files the set's pages list in all (JSON, as pip prefers it); None if a page has none."""
    total = 0
    for name in b.names:
        status, got, body = fetch(
            f"{index}{name}/", {"Accept": JSON_ACCEPT, "Accept-Encoding": "gzip", **headers}
        )
        if status != 200 or "json" not in got.get("content-type", ""):
            return None
        total += len(json.loads(decoded(got, body))["files"])
    return total
