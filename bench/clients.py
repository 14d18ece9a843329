"""pip and uv installing the requirement set: the measurement the installs and offline parts are made of.

Every install goes into a fresh venv (its creation is not timed) with the client's cache off, so
that the time is the index's and the network's, not the client's cache. Warming a contender uses it
too (``warm.py``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

from common import Json, log, run

if TYPE_CHECKING:
    from config import Bench


def install(b: Bench, client: str, index: str | None, *, under: list[str] | None = None) -> Json:
    """One install of the set into a fresh venv, client cache off; venv creation not timed.

    ``under``: a command the client runs under (a profiler), its arguments before the client's.
    """
    venv = b.work / "venvs" / "target"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    index_args = [] if index is None else ["--index-url", index]
    if client == "pip":
        argv = [str(b.tools()), "-m", "pip", "--python", python, "install", "--no-cache-dir"]
        argv += ["--progress-bar", "off", "-q", *index_args, "-r", str(b.requirements)]
    else:
        argv = [str(b.uv()), "pip", "install", "--no-config", "--no-cache", "-q", "--python", python]
        argv += [*index_args, "-r", str(b.requirements)]
    done = run([*(under or []), *argv], timeout=900)
    log(f"{client} install via {index or 'PyPI direct'}: rc={done['rc']} {done['seconds']} s")
    result = {"rc": done["rc"], "seconds": done["seconds"]}
    if done["rc"] != 0:
        result["error"] = (done["stderr"] or done["stdout"])[-1500:]
    return result
