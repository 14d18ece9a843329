"""/+metrics says what the log says, each metric is explained, and the log speaks words, not class names."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.depot import Depot, fresh_venv, pip_install, uv_install
from tests.fake_upstream import FakeUpstream
from tests.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator

DOCS = Path(__file__).resolve().parent.parent / "docs" / "SERVER.md"
ACCESS = re.compile(r"\d\d:\d\d:\d\d pipdepot: (GET|HEAD) (\S+) (\d{3}) \d+ (\S+) [\d.]+ms")


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[FakeUpstream]:
    """PEP 658 metadata upstream, so clients ask for .metadata files too."""
    server = FakeUpstream(with_metadata=True)
    server.add(build_wheel(tmp_path / "dist", "app", "1.0", requires=("lib",)))
    server.add(build_wheel(tmp_path / "dist", "lib", "1.0"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def depot(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Depot]:
    server = Depot(tmp_path / "mirror", tmp_path / "serve.log", ("--upstream", upstream.url)).start()
    yield server
    server.stop()


def metrics(depot: Depot) -> dict[str, int]:
    with urllib.request.urlopen(f"{depot.url}/+metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        name: int(value) for name, value in re.findall(r"^(pipdepot_\w+) (\d+)$", text, flags=re.MULTILINE)
    }


def test_the_counters_match_the_access_log_line_for_line(tmp_path: Path, depot: Depot) -> None:
    """Cold and warm installs by pip and uv: every hit, miss and request the log shows is counted."""
    pip_install(fresh_venv(tmp_path / "cold"), depot.index, "app")
    pip_install(fresh_venv(tmp_path / "warm"), depot.index, "app")
    uv_install(fresh_venv(tmp_path / "uv"), depot.index, "app")
    urllib.request.urlopen(f"{depot.url}/simple/", timeout=10).close()  # the root page: a hit
    counted = metrics(depot)
    depot.stop()  # the access lines are written in batches, the last as the server stops
    lines = [ACCESS.search(line) for line in depot.log_text().splitlines()]
    access = [m for m in lines if m is not None]
    before = access[: next(i for i, m in enumerate(access) if m.group(2) == "/+metrics")]
    by_cache = Counter(m.group(4) for m in before)

    assert by_cache["hit"] > 0
    assert by_cache["miss"] > 0
    assert any(m.group(2).endswith(".metadata") and m.group(4) == "hit" for m in before)
    assert any(m.group(2).endswith(".whl") and m.group(4) == "hit" for m in before)
    assert counted["pipdepot_hits_total"] == by_cache["hit"]
    assert counted["pipdepot_misses_total"] == by_cache["miss"]
    assert counted["pipdepot_stale_serves_total"] == by_cache["stale"] == 0
    assert counted["pipdepot_requests_total"] == len(before)


def test_a_metadata_file_fetched_from_upstream_is_a_miss_then_a_hit(
    depot: Depot, upstream: FakeUpstream
) -> None:
    page = urllib.request.Request(
        f"{depot.index}lib/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(page, timeout=10) as response:
        url = re.search(rb'"url": ?"([^"]+)"', response.read())
    assert url is not None
    metadata = urllib.parse.urljoin(f"{depot.index}lib/", url.group(1).decode()) + ".metadata"
    caches = []
    for _ in range(2):
        with urllib.request.urlopen(metadata, timeout=10) as response:
            caches.append(response.headers["X-Pipdepot-Cache"])
    assert caches == ["miss", "hit"]
    assert sum(n for path, n in upstream.hits.items() if path.endswith(".metadata")) == 1


def test_every_metric_has_help_and_type_and_is_documented(depot: Depot) -> None:
    with urllib.request.urlopen(f"{depot.url}/+metrics", timeout=10) as response:
        text = response.read().decode()
    docs = DOCS.read_text()
    names = re.findall(r"^(pipdepot_\w+) \d+$", text, flags=re.MULTILINE)
    assert len(names) >= 10
    for name in names:
        kind = "gauge" if not name.endswith("_total") else "counter"
        assert re.search(rf"^# HELP {name} \S.+$", text, flags=re.MULTILINE), name
        assert f"# TYPE {name} {kind}\n{name} " in text, name
        assert f"`{name}`" in docs, f"docs/SERVER.md does not explain {name}"


def test_the_log_says_what_upstream_answered_in_words(
    tmp_path: Path, depot: Depot, upstream: FakeUpstream
) -> None:
    pip_install(fresh_venv(tmp_path / "v"), depot.index, "app")
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(f"{depot.index}nothing-here/", timeout=10).close()
    depot.stop()
    log = depot.log_text()
    assert re.search(rf"upstream {re.escape(upstream.url)}app/: new page \(\d+ ms\)", log), log
    assert re.search(rf"upstream {re.escape(upstream.url)}nothing-here/: no such project \(\d+ ms\)", log), (
        log
    )
    assert " -> " not in log
    assert "Page" not in log
    assert "NotFound" not in log
