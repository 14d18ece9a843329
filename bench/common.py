"""Small helpers every module of the benchmark harness shares: paths, progress, subprocesses, memory.

They sit apart from the parts so that a part reads as what it measures. Every subprocess runs with
``clean_env()`` because the machine has a site-wide pip configuration (and may have uv, pipdepot,
proxpi or devpi variables set) that would otherwise point pip, uv and the servers somewhere else than
the index under test. Only the standard library is used, so any Python 3.11 can run the harness.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: ``bench/``: the harness, its requirement set and the default results directory.
BENCH = Path(__file__).resolve().parent
#: The repository root: pipdepot is installed from here, the docs are written here.
REPO = BENCH.parent
#: A JSON object as the results files hold it.
Json = dict[str, Any]


def log(message: str) -> None:
    """Progress on stderr, with the time (stdout is left to the commands' own output)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def normalize(name: str) -> str:
    """PEP 503 normalized project name, as it appears in index URLs and pipdepot's state files."""
    return re.sub(r"[-_.]+", "-", name).lower()


def free_port() -> int:
    """A port nobody listens on now, so that servers never collide with each other or the machine's."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without what steers pip, uv or the servers (the machine has a site-wide pip config)."""
    drop = ("PIP_", "UV_", "PIPDEPOT_", "DIB_", "PROXPI_", "DEVPI", "PYPI_MIRROR_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "VIRTUAL_ENV"}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def run(
    argv: list[str], *, timeout: float = 1800, env: dict[str, str] | None = None, tail: int = 2000
) -> Json:
    """Run a command, timed; never raises on failure, so a failed install is a result, not a crash."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=timeout, env=env or clean_env()
        )
        rc, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = -1, str(exc.stdout or ""), f"timeout after {timeout} s"
    return {
        "rc": rc,
        "seconds": round(time.perf_counter() - start, 3),
        "stdout": out[-tail:],
        "stderr": err[-tail:],
    }


def _children() -> dict[int, list[int]]:
    """Every process's children, by parent PID, from /proc (no psutil: the harness is stdlib only)."""
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    tree = _children()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def peak_rss(pid: int) -> Json:
    """VmHWM of every process of the server, in MiB: their sum and the largest.

    Summed over the tree because gunicorn (proxpi) and nginx serve from worker processes: the master's
    own figure alone would flatter them.
    """
    values = []
    for each in process_tree(pid):
        with contextlib.suppress(OSError):
            lines = Path(f"/proc/{each}/status").read_text().splitlines()
            values += [int(line.split()[1]) / 1024 for line in lines if line.startswith("VmHWM:")]
    return {
        "sum_mib": round(sum(values), 1),
        "max_mib": round(max(values, default=0), 1),
        "processes": len(values),
    }


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of the server's processes so far (nginx and gunicorn have workers)."""
    ticks = 0
    for each in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")
