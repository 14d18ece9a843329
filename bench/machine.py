"""What the numbers were measured on: the machine and every contender's and tool's version.

Recorded in every results file, because numbers from a 2-core VM and from a workstation, or from two
devpi releases, do not compare; the report prints them beside the tables.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from common import Json, run
from contenders import PEERS

if TYPE_CHECKING:
    from config import Bench


def machine() -> Json:
    """nproc, RAM, kernel, CPU, Python."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])  # type: ignore[index]
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kib / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "os": _os_name(),
    }


def _os_name() -> str:
    """The distribution's pretty name (else the system's)."""
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def _dist_version(python: Path, dist: str) -> str | None:
    """A distribution's version as installed for ``python`` (each contender has its own venv)."""
    done = run([str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"], timeout=60)
    return done["stdout"].strip() if done["rc"] == 0 else None


def versions(b: Bench) -> Json:
    """Every contender's and every tool's version."""
    found: Json = {"pipdepot": _dist_version(b.pipdepot_py(), "pipdepot")}
    for dist in ("aiohttp",):
        found[dist] = _dist_version(b.pipdepot_py(), dist)
    if "devpi" in b.contenders:
        python = b.venv("devpi", PEERS["devpi"]) / "python"
        for dist in ("devpi-server", "waitress"):
            found[dist] = _dist_version(python, dist)
    if "proxpi" in b.contenders:
        python = b.venv("proxpi", PEERS["proxpi"]) / "python"
        for dist in ("proxpi", "gunicorn", "flask"):
            found[dist] = _dist_version(python, dist)
    if "nginx" in b.contenders:
        found["nginx"] = run(["nginx", "-v"])["stderr"].strip().removeprefix("nginx version: nginx/")
    found["pip"] = _dist_version(b.tools(), "pip")
    if "pip-bookworm" in b.clients:
        found["pip-bookworm"] = _dist_version(b.bookworm_pip(), "pip")
    found["uv"] = " ".join(run([str(b.uv()), "--version"])["stdout"].split()[1:2])
    wrk_version = run(["wrk", "-v"])["stdout"].split() if shutil.which("wrk") else []
    found["wrk"] = wrk_version[1] if len(wrk_version) > 1 else None
    found["curl"] = " ".join(run(["curl", "--version"])["stdout"].split()[1:2])
    return found
