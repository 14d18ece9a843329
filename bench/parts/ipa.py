"""The ipa part: ironic-python-agent installed by bookworm's pip, online ``serve`` against ``file://``.

Issue 17's last goal: a build root's pip (Debian bookworm's 23.0.1) installing ironic-python-agent
(``bench/ipa-requirements.txt``: its 49 wheels, pinned) through an online pipdepot within 10% of
the same pip reading pipdepot's static tree from disk (``file://``), the way diskimage-builder's
offline builds do. Measured on one warm data dir (one install through pipdepot filled it), in paired
rounds, the order rotated, through:

- ``serve``: pipdepot online at ``/simple/`` (upstream's whole pages);
- ``view``: the same server at ``/+auto/simple/`` (the pages trimmed to pip's own target);
- ``offline``: pipdepot ``--offline`` over the same directory (pages of the cached files only);
- ``file``: pip with ``--index-url file://<the data dir>/`` (the static tree, no server).

Each run is compared with ``file`` of its round (``vs_file``). With ``--profile``, one more install
through the view and one from ``file://`` run under py-spy (``profile``): where the gap goes.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import statistics
from typing import TYPE_CHECKING

from clients import install
from common import log
from contenders import VIEW, VIEW_INDEX, make_server

from parts.profiling import profile_pip_install

if TYPE_CHECKING:
    from pathlib import Path

    from common import Json
    from config import Bench

#: The client of this part: the pip a Debian bookworm build root has.
CLIENT = "pip-bookworm"
#: The ways to the same warm data, in the order of the results.
WAYS = ("serve", "view", "offline", "file")


def part_ipa(b: Bench) -> Json:
    """Paired rounds of the ironic-python-agent install through every way to the same warm data."""
    if not {"pipdepot", VIEW} & set(b.contenders):
        return {}
    data = ensure_ipa_warm(b)
    wanted = ["-r", str(b.ipa_requirements)]
    out: Json = {way: {"runs": []} for way in WAYS}
    with contextlib.ExitStack() as stack:
        online = stack.enter_context(make_server(b, "pipdepot", data, tag="-ipa").start())
        offline = stack.enter_context(
            make_server(b, "pipdepot", data, mode="offline", tag="-ipa-offline").start()
        )
        urls = {
            "serve": online.base + online.index,
            "view": online.base + VIEW_INDEX,
            "offline": offline.base + offline.index,
            "file": f"{data.as_uri()}/",
        }
        for round_ in range(b.repeats):
            shift = round_ % len(WAYS)
            for way in WAYS[shift:] + WAYS[:shift]:
                out[way]["runs"].append(install(b, CLIENT, urls[way], requirements=wanted))
        if b.profile:
            out["profile"] = {
                way: profile_pip_install(b, urls[way], f"ipa-{way}", client=CLIENT, requirements=wanted)
                for way in ("view", "file")
            }
    out["serve"]["rss"], out["offline"]["rss"] = online.rss, offline.rss
    files = out["file"]["runs"]
    for way in WAYS:
        runs = out[way]["runs"]
        ok = [r["seconds"] for r in runs if r["rc"] == 0]
        out[way]["median"] = statistics.median(ok) if ok and len(ok) == len(runs) else None
        ratios = [
            round(a["seconds"] / z["seconds"], 3)
            for a, z in zip(runs, files, strict=True)
            if a["rc"] == 0 and z["rc"] == 0
        ]
        complete = len(ratios) == len(runs)
        out[way]["vs_file"] = {
            "runs": ratios,
            "median": statistics.median(ratios) if complete and ratios else None,
        }
    out["client"] = CLIENT
    out["contender"] = VIEW
    out["wheels"] = len([line for line in b.ipa_requirements.read_text().splitlines() if "==" in line])
    return out


def ensure_ipa_warm(b: Bench) -> Path:
    """pipdepot's data dir after one install of the ipa set through it (kept, as ``warm.py`` does)."""
    data = b.data("pipdepot-ipa-warm")
    marker = data / ".bench-warm"
    if marker.exists():
        return data
    log("warming pipdepot with the ironic-python-agent set")
    shutil.rmtree(data, ignore_errors=True)
    with make_server(b, "pipdepot", data, tag="-ipa-warm").start() as server:
        done = install(b, CLIENT, server.base + server.index, requirements=["-r", str(b.ipa_requirements)])
    if done["rc"] != 0:
        raise RuntimeError(f"warming pipdepot with the ipa set failed: {done.get('error')}")
    marker.write_text(json.dumps({"install_s": done["seconds"]}))
    return data
