"""The warm state most parts start from: a contender's data dir after the set went through it once.

Warming is slow (a full install from PyPI), so its result is kept in ``WORK/data/<contender>-warm``
with a ``.bench-warm`` marker and reused by every later part and run; delete ``WORK/data`` to start
over. Parts that change the data (offline) work on a copy.
"""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING

from clients import install
from common import log
from contenders import devpi_init, make_server
from web import HTML_ACCEPT, JSON_ACCEPT, fetch, find_file

if TYPE_CHECKING:
    from pathlib import Path

    from config import Bench


def ensure_warm(b: Bench, kind: str) -> Path:
    """The data dir of a contender after one uv install of the set and the benchmark pages through it."""
    data = b.data(f"{kind}-warm")
    marker = data / ".bench-warm"
    if marker.exists():
        return data
    log(f"warming {kind}")
    shutil.rmtree(data, ignore_errors=True)
    init = devpi_init(b, data) if kind == "devpi" else None
    with make_server(b, kind, data, tag="-warm").start() as server:
        attempts = []
        for _ in range(3):  # devpi's cold uv install may fail with 404s; its second run succeeds
            attempts.append(install(b, "uv", server.base + server.index))
            if attempts[-1]["rc"] == 0:
                break
        for project in (b.small, b.large):
            for accept in (HTML_ACCEPT, JSON_ACCEPT):
                fetch(server.page(project), {"Accept": accept})
        fetch(find_file(server.page(b.large), b.big_file))
    if attempts[-1]["rc"] != 0:
        raise RuntimeError(f"warming {kind} failed: {attempts[-1]['stderr']}")
    marker.write_text(json.dumps({"init_s": init, "installs": [a["seconds"] for a in attempts]}))
    return data
