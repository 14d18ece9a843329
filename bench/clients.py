"""pip and uv installing the requirement set: the measurement the installs and offline parts are made of.

Every install goes into a fresh venv (its creation is not timed) with the client's cache off, so
that the time is the index's and the network's, not the client's cache. Warming a contender uses it
too (``warm.py``). Three clients: the newest pip (the tools venv's), bookworm's pip 23.0.1 (the pip a
Debian build root has) and uv. A target view (``/+auto/simple/``) is chosen from the client's own
User-Agent, so ``user_agent()`` records what each one sends, from a real request.
"""

from __future__ import annotations

import contextlib
import http.server
import shutil
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

from common import Json, log, run

if TYPE_CHECKING:
    from config import Bench

#: The clients, in the order of the results: the newest pip, bookworm's pip, uv.
CLIENTS = ("pip", "pip-bookworm", "uv")


def install(
    b: Bench,
    client: str,
    index: str | None,
    *,
    under: list[str] | None = None,
    requirements: list[str] | None = None,
) -> Json:
    """One install of the set into a fresh venv, client cache off; venv creation not timed.

    ``under``: a command the client runs under (a profiler), its arguments before the client's.
    ``requirements``: what to install instead of ``-r`` the set (the user-agent probe).
    """
    venv = b.work / "venvs" / "target"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    index_args = [] if index is None else ["--index-url", index]
    wanted = requirements if requirements is not None else ["-r", str(b.requirements)]
    if client in {"pip", "pip-bookworm"}:
        pip = b.tools() if client == "pip" else b.bookworm_pip()
        argv = [str(pip), "-m", "pip", "--python", python, "install", "--no-cache-dir"]
        argv += ["--progress-bar", "off", "-q", *index_args, *wanted]
    else:
        argv = [str(b.uv()), "pip", "install", "--no-config", "--no-cache", "-q", "--python", python]
        argv += [*index_args, *wanted]
    done = run([*(under or []), *argv], timeout=900)
    log(f"{client} install via {index or 'PyPI direct'}: rc={done['rc']} {done['seconds']} s")
    result = {"rc": done["rc"], "seconds": done["seconds"]}
    if done["rc"] != 0:
        result["error"] = (done["stderr"] or done["stdout"])[-1500:]
    return result


def user_agent(b: Bench, client: str) -> str:
    """The User-Agent ``client`` sends for a project page, caught by a local server that answers 404."""
    seen: list[str] = []

    class Catch(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("User-Agent", ""))
            self.send_error(404)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Catch)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        index = f"http://127.0.0.1:{server.server_address[1]}/simple/"
        install(b, client, index, requirements=["bench-agent-probe"])
    finally:
        server.shutdown()
        server.server_close()
        with contextlib.suppress(RuntimeError):
            thread.join(5)
    return seen[0] if seen else ""
