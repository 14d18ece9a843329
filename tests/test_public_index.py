"""A few real packages from the public index, installed through pipdepot (marker ``network``, on in CI)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.depot import Depot, fresh_venv, pip_install, uv_install

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.network

PACKAGES = ("six==1.17.0", "idna==3.10", "packaging==24.2", "attrs==25.1.0")


def test_real_packages_through_pipdepot_then_offline(tmp_path: Path) -> None:
    depot = Depot(tmp_path / "mirror", tmp_path / "serve.log").start()  # upstream: the default, PyPI
    try:
        pip_install(fresh_venv(tmp_path / "pip"), depot.index, *PACKAGES)
        uv_install(fresh_venv(tmp_path / "uv"), depot.index, *PACKAGES)
    finally:
        depot.stop()
    assert sorted(p.name for p in (tmp_path / "mirror").iterdir() if (p / "index.html").exists()) == [
        "attrs",
        "idna",
        "packaging",
        "six",
    ]
    offline = Depot(tmp_path / "mirror", tmp_path / "serve.log", ("--offline",)).start()
    try:
        uv_install(fresh_venv(tmp_path / "offline"), offline.index, *PACKAGES)
    finally:
        offline.stop()
    log = (tmp_path / "serve.log").read_text()
    assert " offline " in log
