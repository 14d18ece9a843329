"""The benchmark harness behind ``bench/run``: pipdepot against devpi-server, proxpi, nginx and PyPI direct.

Everything it needs lives under the work directory (default ``bench/.work/``): one venv per contender
(installed from PyPI, pipdepot from this repository), the servers' data directories, logs and the nginx
config. Results go to ``bench/results/<part>.json``; ``bench/run report`` turns them into the tables of
``docs/BENCHMARKS.md`` and ``docs/benchmarks.png``.

Every server listens on 127.0.0.1 on a free port, is started by this script and stopped by its PID.
Every client (pip, uv) runs isolated from the machine's pip configuration. Every load is bounded in time.
Only the standard library is used here, so any Python 3.11 can run it; the tools venv adds pip, uv,
matplotlib and py-spy.

This module is the command line and the results documents; the rest of ``bench/`` is:

- ``common.py``: paths, progress, subprocesses, free ports, peak RSS (shared by everything);
- ``config.py``: ``Bench``, what to run and where, and the venvs it needs;
- ``web.py`` and ``wrk.py``: the harness's own HTTP requests, and wrk's load and its parsing;
- ``server.py``: one server process, started, health-checked and stopped by PID;
- ``contenders.py``: how pipdepot, devpi, proxpi and nginx are launched, in each mode;
- ``clients.py``: pip and uv installing the requirement set;
- ``warm.py``: the warm data dir of a contender, made once and reused;
- ``machine.py``: the machine and the versions recorded in every results file;
- ``parts/``: one module per part (pages, files, startup, installs, offline), plus the pages part's
  ``cold_render.py`` and ``profiling.py``;
- ``report.py``: the tables and the plot, run in the tools venv (it needs matplotlib).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from clients import CLIENTS
from common import BENCH, REPO, Json, log, normalize
from config import Bench
from contenders import CONTENDERS, PEERS
from machine import machine, versions
from parts.files import part_files
from parts.installs import part_installs
from parts.ipa import part_ipa
from parts.offline import part_offline
from parts.pages import part_pages
from parts.startup import part_startup
from server import kill_leftovers

if TYPE_CHECKING:
    from collections.abc import Callable

#: The parts, in the order they run; each writes ``RESULTS/<part>.json``.
PARTS = ("pages", "files", "startup", "installs", "offline", "ipa")

HELP = """\
parts (default: all of them, in this order; then the report):
  pages     warm cached project pages (a ~250-file page and the ~4400-file page) under wrk -t2 -c32:
            HTML and JSON, gzip as pip and uv ask; req/s, p50, p99 per contender. nginx serves
            upstream's own HTML/JSON of the same pages saved as static files (gzip_static and identity)
            and pipdepot's mirror tree. Also one cold render of the large page by pipdepot: the first
            request after an --offline restart, and in-process timings (ProjectState.from_json + render).
  files     the large cached wheel: curl xN sequential (MB/s; every server up, one download from each
            in turn), wrk -c8, and HEAD/Range correctness (Content-Length, Accept-Ranges, 206 with the
            right bytes, suffix range, 416 past the end).
  startup   spawn -> first 200 on the health URL with an empty data dir (x3), the first uncached pages,
            peak RSS (VmHWM summed over the server's processes). Every part records peak RSS too.
  installs  pip, bookworm's pip and uv installs of bench/requirements.txt into fresh venvs, client cache
            off, in paired rounds (--repeats of them): cold, PyPI direct, pipdepot and its target view
            each on an empty data dir side by side (devpi and proxpi once); warm, every server up and
            one install through each per round (nginx and pipdepot --offline over pipdepot's warm
            tree; the view on pipdepot's warm server), with the server's CPU seconds.
            Targets read the median of per-round ratios. Also the index part of a warm install (the
            set's pages one after another, keep-alive) and, with --profile, pip under py-spy.
  offline   after warming, restart with upstream unreachable (pipdepot: dead --upstream with --ttl 0,
            and --offline; devpi --offline-mode; proxpi a dead PROXPI_INDEX_URL); do pip and uv install?
  ipa       issue 17: ironic-python-agent (bench/ipa-requirements.txt) installed by bookworm's pip 23.0.1
            in paired rounds through one warm pipdepot online (/simple/ and its target view
            /+auto/simple/), pipdepot --offline and file:// over the same directory.
  report    regenerate the tables in docs/BENCHMARKS.md and docs/benchmarks.png from the results
            (also run after the other parts unless --no-report).
  setup     only create the venvs.

contenders: pipdepot pipdepot-view devpi proxpi nginx direct (direct = no mirror, PyPI; installs only;
pipdepot-view = pipdepot's target view /+auto/simple/, the installer's own target from its
User-Agent, on pipdepot's server: pages and installs only).
clients (installs): pip (the newest, the tools venv's), pip-bookworm (pip 23.0.1, in its own venv),
uv.
Warm state is kept in WORK/data/<contender>-warm (one uv install of the set through it); delete
WORK/data to start from scratch. Server logs are in WORK/logs.
"""


def parse(argv: list[str] | None) -> Bench:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark pipdepot serve against devpi-server, proxpi, nginx and PyPI direct.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "parts", nargs="*", metavar="PART", help="pages files startup installs offline ipa report setup"
    )
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated (default: all)")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated (default: all)")
    parser.add_argument(
        "--work", type=Path, default=BENCH / ".work", help="venvs, data, logs (default bench/.work)"
    )
    parser.add_argument("--results", type=Path, default=BENCH / "results", help="JSON results directory")
    parser.add_argument("--requirements", type=Path, default=BENCH / "requirements.txt")
    parser.add_argument(
        "--ipa-requirements", type=Path, default=BENCH / "ipa-requirements.txt", help="the ipa part's set"
    )
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "BENCHMARKS.md", help="doc to update")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "benchmarks.png", help="PNG to write")
    parser.add_argument("--no-report", action="store_true", help="do not regenerate the doc after the parts")
    parser.add_argument("--smoke", action="store_true", help="tiny loads (1 s wrk, 3 curls, 1 repeat)")
    parser.add_argument("--repeats", type=int, default=3, help="warm installs per client (median)")
    parser.add_argument("--wrk-seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--curl-count", type=int, default=50)
    parser.add_argument("--small-project", default="requests", help="the ~250-file page")
    parser.add_argument("--large-project", default="numpy", help="the ~4400-file page")
    parser.add_argument(
        "--big-file", default="numpy-2.4.6-cp311-cp311-manylinux*x86_64*.whl", help="glob of the large wheel"
    )
    parser.add_argument("--probe-projects", default="tomli,colorama", help="pages not in the set (startup)")
    parser.add_argument("--upstream", help="pipdepot's upstream instead of PyPI (smoke tests: a local index)")
    parser.add_argument(
        "--tools-python", type=Path, help="a Python with pip and uv beside it (skip the venv)"
    )
    parser.add_argument(
        "--pipdepot-python", type=Path, help="a Python with pipdepot installed (skip the venv)"
    )
    parser.add_argument(
        "--bookworm-pip-python", type=Path, help="a Python whose pip stands in for bookworm's (skip the venv)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy: pipdepot under the small-page load, pip in installs and ipa",
    )
    args = parser.parse_args(argv)
    parts = args.parts or [*PARTS, "report"]
    unknown = set(parts) - {*PARTS, "report", "setup"}
    contenders = [c for c in args.contenders.split(",") if c]
    clients = [c for c in args.clients.split(",") if c]
    if set(clients) - set(CLIENTS):
        parser.error(f"unknown client: {sorted(set(clients) - set(CLIENTS))}")
    if unknown or set(contenders) - set(CONTENDERS):
        parser.error(f"unknown part or contender: {sorted(unknown | (set(contenders) - set(CONTENDERS)))}")
    if args.upstream and set(contenders) - {"pipdepot", "pipdepot-view"}:
        parser.error("--upstream is for pipdepot-only runs (the peers always use PyPI)")
    smoke = bool(args.smoke)
    return Bench(
        parts=parts,
        contenders=contenders,
        clients=clients,
        work=args.work.resolve(),
        results=args.results.resolve(),
        requirements=args.requirements.resolve(),
        ipa_requirements=args.ipa_requirements.resolve(),
        smoke=smoke,
        repeats=1 if smoke else args.repeats,
        wrk_seconds=1 if smoke else args.wrk_seconds,
        wrk_connections=4 if smoke else args.connections,
        curl_count=3 if smoke else args.curl_count,
        small=normalize(args.small_project),
        large=normalize(args.large_project),
        big_file=args.big_file,
        probes=[normalize(p) for p in args.probe_projects.split(",") if p],
        upstream=args.upstream,
        tools_python=args.tools_python.absolute() if args.tools_python else None,
        pipdepot_python=args.pipdepot_python.absolute() if args.pipdepot_python else None,
        bookworm_pip_python=args.bookworm_pip_python.absolute() if args.bookworm_pip_python else None,
        profile=args.profile,
        command=shlex.join(["bench/run", *(argv if argv is not None else sys.argv[1:])]),
        doc=args.doc.resolve(),
        plot=args.plot.resolve(),
        report=not args.no_report,
    )


RUNNERS: dict[str, Callable[[Bench], Json]] = {
    "pages": part_pages,
    "files": part_files,
    "startup": part_startup,
    "installs": part_installs,
    "offline": part_offline,
    "ipa": part_ipa,
}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts, write their JSON, regenerate the report."""
    b = parse(argv)
    b.work.mkdir(parents=True, exist_ok=True)
    b.results.mkdir(parents=True, exist_ok=True)
    if "setup" in b.parts:
        b.pipdepot_py()
        b.tools()
        if "pip-bookworm" in b.clients:
            b.bookworm_pip()
        for kind, packages in PEERS.items():
            if kind in b.contenders:
                b.venv(kind, packages)
    ran = False
    for part in PARTS:
        if part not in b.parts:
            continue
        started = time.time()
        log(f"part {part}: {', '.join(b.contenders)}")
        try:
            results = RUNNERS[part](b)
        finally:
            kill_leftovers()
        document = {
            "part": part,
            "started": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
            "duration_s": round(time.time() - started, 1),
            "command": b.command,
            "smoke": b.smoke,
            "machine": machine(),
            "versions": versions(b),
            "settings": {
                "contenders": b.contenders,
                "clients": b.clients,
                "wrk_seconds": b.wrk_seconds,
                "connections": b.wrk_connections,
                "curl_count": b.curl_count,
                "repeats": b.repeats,
                "small": b.small,
                "large": b.large,
                "big_file": b.big_file,
                "requirements": len(b.names),
            },
            "results": results,
        }
        (b.results / f"{part}.json").write_text(json.dumps(document, indent=1) + "\n")
        log(f"part {part} done in {document['duration_s']} s -> {b.results / f'{part}.json'}")
        ran = True
    if "report" in b.parts or (ran and b.report):
        return report(b)
    return 0


def report(b: Bench) -> int:
    """bench/report.py in the tools venv (it needs matplotlib)."""
    python = b.tools()
    argv = [str(python), str(BENCH / "report.py"), "--results", str(b.results)]
    argv += ["--doc", str(b.doc), "--plot", str(b.plot)]
    return subprocess.run(argv, check=False).returncode
