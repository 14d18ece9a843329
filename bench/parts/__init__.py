"""The parts of the benchmark, one module each: pages, files, startup, installs, offline.

A part is a function ``part_<name>(b: Bench) -> Json`` whose result, keyed by contender, becomes the
``results`` of ``RESULTS/<name>.json`` (``harness.py`` adds the machine, versions and settings).
Each contender is measured inside ``attempt()``, so one contender failing records its error and
lets the others' numbers through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common import Json, log
from server import kill_leftovers

if TYPE_CHECKING:
    from collections.abc import Callable


def attempt(out: Json, key: str, action: Callable[..., Json]) -> None:
    """``out[key] = action()``; a failure is recorded there instead of ending the part.

    ``action`` is called without arguments: the parts bind the loop's contender through lambda
    defaults (``lambda k=kind: ...``) so that each call measures the contender it was made for.
    Whatever the action left running is stopped afterwards, so the next contender starts on a quiet
    machine.
    """
    try:
        out[key] = action()
    except Exception as exc:  # noqa: BLE001 (one contender failing must not lose the others' numbers)
        log(f"{key} failed: {exc!r}")
        out[key] = {"error": repr(exc)}
    finally:
        kill_leftovers()
