"""A tiny run of the benchmark harness (``bench/run``) against pipdepot alone, so it cannot rot unnoticed.

The numbers mean nothing (1 s of wrk, a local fake upstream with three tiny wheels); what is checked
is that every part runs end to end and writes the JSON that ``bench/report.py`` reads.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import clean_environ
from tests.fake_upstream import FakeUpstream
from tests.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator

BENCH = Path(__file__).resolve().parent.parent / "bench"
PARTS = ("pages", "files", "startup", "installs", "offline", "ipa")


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[FakeUpstream]:
    fake = FakeUpstream(mode="json")
    wheels = tmp_path / "wheels"
    fake.add(build_wheel(wheels, "tiny-small", "1.0"))
    fake.add(build_wheel(wheels, "tiny-small", "1.1"))
    fake.add(build_wheel(wheels, "tiny-large", "1.0", payload=200_000))
    fake.start()
    yield fake
    fake.stop()


def read(results: Path, part: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((results / f"{part}.json").read_text())
    assert document["part"] == part
    assert document["smoke"] is True
    assert document["command"].startswith("bench/run ")
    assert {"nproc", "ram_gib", "kernel", "python"} <= set(document["machine"])
    assert document["versions"]["pipdepot"]
    assert set(document["results"]) >= {"pipdepot"} or part in {"offline", "ipa"}
    return document


def test_bench_smoke_run(tmp_path: Path, upstream: FakeUpstream) -> None:
    for tool in ("wrk", "curl"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (apt-get install {tool}); the harness needs it")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tiny-small==1.1\ntiny-large==1.0\n")
    results = tmp_path / "results"
    doc = tmp_path / "BENCHMARKS.md"
    argv = [
        sys.executable,
        str(BENCH / "run"),
        *PARTS,
        "report",
        "--smoke",
        "--contenders",
        "pipdepot,pipdepot-view",
        "--upstream",
        upstream.url,
        "--work",
        str(tmp_path / "work"),
        "--results",
        str(results),
        "--requirements",
        str(requirements),
        "--ipa-requirements",
        str(requirements),
        "--small-project",
        "tiny-small",
        "--large-project",
        "tiny-large",
        "--big-file",
        "tiny_large-1.0-*.whl",
        "--probe-projects",
        "tiny-small",
        "--tools-python",
        sys.executable,
        "--pipdepot-python",
        sys.executable,
        "--bookworm-pip-python",
        sys.executable,
        "--doc",
        str(doc),
        "--plot",
        str(tmp_path / "benchmarks.png"),
    ]
    done = subprocess.run(argv, env=clean_environ(), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"

    pages = read(results, "pages")["results"]["pipdepot"]
    assert set(pages["variants"]) == {
        "small_html_gzip",
        "small_json_gzip",
        "large_html_gzip",
        "large_json_gzip",
        "small_html_gzip_c1",
    }
    for variant in pages["variants"].values():
        assert variant["req_s"] > 0
        assert variant["non_2xx"] == 0
        assert variant["p50_ms"] <= variant["p99_ms"]
        assert variant["page"]["status"] == 200
        assert variant["page"]["content_encoding"] == "gzip"
    assert pages["variants"]["small_json_gzip"]["page"]["files"] == 2
    render = pages["cold_render"]
    assert render["in_process"]["best"]["files"] == 1
    assert render["in_process"]["cold_json_page_ms"]["best"] > 0
    for mode in ("longttl", "offline"):
        for fmt in ("json", "html"):
            assert render[f"{mode}_first_request_{fmt}"]["status"] == 200
    assert pages["rss"]["sum_mib"] > 0

    files = read(results, "files")["results"]["pipdepot"]
    assert files["all_ok"], files["checks"]
    assert files["curl"]["codes"] == [200]
    assert files["curl"]["mb_s_total"] > 0
    assert files["wrk_c8"]["req_s"] > 0

    startup = read(results, "startup")["results"]["pipdepot"]
    assert 0 < startup["ready_s_median"] < 30
    assert startup["uncached_pages"][0]["status"] == 200

    check_views(results)

    offline = read(results, "offline")["results"]
    assert set(offline) == {"pipdepot dead-upstream-ttl0", "pipdepot offline"}
    for entry in offline.values():
        assert entry["pip"]["rc"] == 0, entry["pip"]
        assert entry["uv"]["rc"] == 0, entry["uv"]

    text = doc.read_text()
    assert "### Main comparison" in text
    assert "### Issue 5 targets" in text
    assert "### Issue 17 goals" in text
    assert "tiny-small" in text


def check_views(results: Path) -> None:
    """Issue 17's part of the run: the target view as a contender, three clients, the ipa part."""
    view_pages = read(results, "pages")["results"]["pipdepot-view"]
    for variant in view_pages["variants"].values():
        assert variant["req_s"] > 0
        assert variant["page"]["view"] != "none"  # pip's User-Agent named its target

    installs = read(results, "installs")["results"]
    for client in ("pip", "pip-bookworm", "uv"):
        for kind in ("pipdepot", "pipdepot-view"):
            entry = installs[kind][client]
            assert entry["cold"]["rc"] == 0, entry["cold"]
            assert len(entry["cold_runs"]) == 1  # --smoke: one round
            assert entry["warm_median"] > 0
        assert installs["pipdepot"][client]["same_tree"]["warm_median"] > 0  # --offline: nginx's pages
        view = installs["pipdepot-view"][client]
        assert view["view"].startswith("cp3"), view  # the client's User-Agent read, not the full page
        assert len(view["vs_pipdepot"]["runs"]) == 1
    for kind in ("pipdepot", "pipdepot-view"):
        assert installs[kind]["uv"]["page_latency"]["pages"] == 2
        assert installs[kind]["uv"]["page_latency"]["statuses"] == [200]
        assert installs[kind]["uv"]["files_listed"] == 3
    assert installs["pipdepot-view"]["uv"]["page_latency"]["views"] == [
        installs["pipdepot-view"]["uv"]["view"]
    ]

    ipa = read(results, "ipa")["results"]
    for way in ("serve", "view", "offline", "file"):
        assert ipa[way]["median"] > 0, ipa[way]
        assert len(ipa[way]["vs_file"]["runs"]) == 1
