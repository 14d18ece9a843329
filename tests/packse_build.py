"""Build packse scenarios with packse's own code: its distributions, its static index, its expectations.

Run as ``python -m tests.packse_build SCENARIOS OUT``. packse declares Python >= 3.12 and its
``packse/scenario.py`` uses PEP 695 syntax (two ``type`` aliases, one generic function); nothing else in it
needs 3.12 but ``Path.walk`` in ``packse/template.py``. This project's interpreter is 3.11, so that one
module is loaded from its source with those three spots rewritten to their 3.11 spelling and ``Path.walk``
is given its 3.12 meaning in this process; every other line of packse runs as published.

OUT receives ``dist/<scenario>-<hash>/`` (packse build's files), ``dist/<scenario>-<hash>.yanked``
(the releases a scenario yanks, one ``name-version`` a line), ``index/`` (packse's static PEP 503 index,
``simple-html/<project>/`` pages with ``data-yanked``, files under ``files/``) and ``scenarios.json``
(packse's template variables: each scenario's hashed names, expectations, environment and options).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


def _load_scenario_module() -> ModuleType:
    spec = importlib.util.find_spec("packse.scenario")
    if spec is None or spec.origin is None:
        raise SystemExit("packse is not installed")
    source = Path(spec.origin).read_text()
    source = re.sub(r"^type (\w+) =", r"\1 =", source, flags=re.MULTILINE)
    source = source.replace("def _load[T: Scenario | list[Scenario]](", "def _load(")
    source = source.replace("\nclass Requirement(", "\nT = Any\n\n\nclass Requirement(", 1)
    module = ModuleType("packse.scenario")
    module.__file__ = spec.origin
    sys.modules["packse.scenario"] = module
    exec(compile(source, spec.origin, "exec", dont_inherit=True), module.__dict__)  # noqa: S102
    return module


def _walk(self: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    """``Path.walk`` of Python 3.12, top-down, as packse's template code uses it."""
    for root, directories, files in os.walk(self):
        yield Path(root), directories, files


def main(scenarios: Path, out: Path) -> None:
    if sys.version_info < (3, 12):
        _load_scenario_module()
        Path.walk = _walk  # type: ignore[attr-defined]
    from packse.build import build  # type: ignore[import-untyped]  # noqa: PLC0415
    from packse.index import render_index  # type: ignore[import-untyped]  # noqa: PLC0415
    from packse.inspect import variables_for_templates  # type: ignore[import-untyped]  # noqa: PLC0415

    targets = [scenarios]
    dist = out / "dist"
    build(targets, False, False, False, True, dist_dir=dist, build_dir=out / "build")  # noqa: FBT003
    render_index(targets, False, False, dist, out / "index", False)  # noqa: FBT003
    variables = variables_for_templates(targets)
    (out / "scenarios.json").write_text(json.dumps(variables["scenarios"], indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
