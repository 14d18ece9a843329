"""The synthetic mirror ``bench/write_cost.py`` builds is a real one.

Its numbers only mean something if pipdepot would have left the same files: the mirror audits
clean as built, and again after pipdepot adds a new version and a new project to it.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from pipdepot.core.distribution import inspect_distribution
from pipdepot.operations.session import open_mirror
from tests.mirror_audit import audit_mirror

if TYPE_CHECKING:
    from types import ModuleType

    import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _write_cost(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))  # the script imports its neighbour ``common``
    spec = importlib.util.spec_from_file_location("write_cost", BENCH / "write_cost.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_synthetic_mirror_audits_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _write_cost(monkeypatch)
    mirror = tmp_path / "mirror"
    bench.build_mirror(mirror, 30, workers=1)
    built = audit_mirror(mirror, settle=0)
    assert built.problems == []
    assert built.files == 30
    assert (mirror / "index.html").read_text().count('href="synthetic-') == 30

    wheels = [
        bench.wheel_file(tmp_path / "wheels", bench.project_name(7), "2.0"),
        bench.wheel_file(tmp_path / "wheels", "brand-new", "1.0"),
    ]

    async def add() -> None:
        async with open_mirror(mirror, purpose="test", writer=True) as opened:
            for path in wheels:
                assert await opened.add(inspect_distribution(path))

    asyncio.run(add())
    after = audit_mirror(mirror, settle=0)
    assert after.problems == []
    assert after.files == 32
