"""The offline part: whether pip and uv still install the set when a warm mirror loses its upstream.

A mirror in an image build is there so the build does not depend on PyPI being reachable. Each
contender is tried with the switch it offers: pipdepot with a dead ``--upstream`` and ``--ttl 0``
(every page stale, upstream failing) and with ``--offline``; devpi with ``--offline-mode``; proxpi
with a dead ``PROXPI_INDEX_URL``. Each runs on a copy of its warm data, which stays untouched.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from clients import install
from contenders import make_server
from warm import ensure_warm
from web import PIP_ACCEPT, page_info

from parts import attempt

if TYPE_CHECKING:
    from common import Json
    from config import Bench

#: (label, make_server mode) per contender; the label names the results entry ("pipdepot offline").
VARIANTS = {
    "pipdepot": [("dead-upstream-ttl0", "dead"), ("offline", "offline")],
    "devpi": [("offline-mode", "offline")],
    "proxpi": [("dead-upstream", "dead")],
}


def part_offline(b: Bench) -> Json:
    """After warming, restart with upstream unreachable: whether pip and uv still install the set."""
    out: Json = {}
    for kind in b.contenders:
        for label, mode in VARIANTS.get(kind, []):
            attempt(out, f"{kind} {label}", lambda k=kind, lb=label, m=mode: offline_of(b, k, lb, m))
    return out


def offline_of(b: Bench, kind: str, label: str, mode: str) -> Json:
    """One restart with upstream unreachable."""
    warm = ensure_warm(b, kind)
    data = b.data(f"{kind}-{label}")
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(warm, data, symlinks=True)
    entry: Json = {}
    with make_server(b, kind, data, mode=mode, tag=f"-{label}").start() as server:
        entry["ready_s"] = server.ready_s
        entry["page"] = page_info(server.page(b.small), {"Accept": PIP_ACCEPT, "Accept-Encoding": "gzip"})
        index = server.base + server.index
        entry["pip"] = install(b, "pip", index)
        entry["uv"] = install(b, "uv", index)
    entry["rss"] = server.rss
    return entry
