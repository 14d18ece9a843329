"""Hostile archives against real pipdepot processes: serve (through the fake upstream), add and import.

Each case is a file an attacker can make: a zip bomb with a correct sha256, a
corrupt deflate stream, an unknown compression method, tar bombs, and export
archives whose manifest lies. Peak memory is read from the child itself
(``VmHWM`` for a running server, ``ru_maxrss`` from ``wait4`` for a command):
serve stays below 150 MB, add and import below 200 MB.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pipdepot.core.distribution import inspect_distribution
from tests import hostile
from tests.conftest import clean_environ
from tests.depot import Depot
from tests.fake_upstream import FakeUpstream
from tests.mirror_audit import spool_leftovers
from tests.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

MiB = 1024 * 1024
SERVE_RSS = 150 * MiB
COMMAND_RSS = 200 * MiB
#: Inflated size of the bombs: on the code before bounded reads, add peaked near 1.5 GB with these.
BOMB = 128 * MiB
JSON = "application/vnd.pypi.simple.v1+json"


@dataclass
class Finished:
    """A command that ran to its end, with its own peak RSS."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss: int


def run_measured(home: Path, *args: str) -> Finished:
    """Run ``pipdepot ARGS`` in a clean environment, with its own peak RSS."""
    home.mkdir(exist_ok=True)
    rss = home / "maxrss"
    result = subprocess.run(
        [sys.executable, "-c", hostile.MEASURE_RSS, str(rss), sys.executable, "-m", "pipdepot", *args],
        capture_output=True,
        text=True,
        env=clean_environ(HOME=str(home)),
        check=False,
    )
    return Finished(result.returncode, result.stdout, result.stderr, int(rss.read_text()) * 1024)


def peak_rss(pid: int) -> int:
    """A running process's peak resident set (``VmHWM``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def assert_one_line_failure(result: Finished) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr[-2000:]
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("pipdepot: error: "), lines[0]
    return lines[0]


def snapshot(mirror: Path) -> dict[str, str]:
    """Every file of the mirror with its sha256, but the lock and the spool (held or emptied by a writer)."""
    return {
        str(p.relative_to(mirror)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(mirror.rglob("*"))
        if p.is_file()
        and p.relative_to(mirror).parts[:2] not in {(".pipdepot", "lock"), (".pipdepot", "tmp")}
    }


# -- the hostile files, built once --------------------------------------------------------------

WHEEL_KINDS = ("zip-bomb", "lying-zip-bomb", "corrupt-deflate", "unknown-method")
SDIST_KINDS = ("tar-bomb", "pax-header-bomb", "many-members", "sparse-map-bomb")


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("hostile")
    return {
        "zip-bomb": hostile.zip_bomb_wheel(directory / "1", "bomb", "1.0", BOMB),
        "lying-zip-bomb": hostile.lying_zip_bomb_wheel(directory / "2", "liar", "1.0", BOMB),
        "corrupt-deflate": hostile.corrupt_deflate_wheel(directory / "3", "corrupt", "1.0"),
        "unknown-method": hostile.unknown_method_wheel(directory / "4", "unknown", "1.0"),
        "tar-bomb": hostile.tar_bomb_sdist(directory / "5", "tarbomb", "1.0", BOMB),
        "pax-header-bomb": hostile.pax_bomb_sdist(directory / "6", "paxbomb", "1.0", 2 * BOMB),
        "many-members": hostile.many_members_sdist(directory / "7", "many", "1.0", 500_000),
        "sparse-map-bomb": hostile.sparse_map_bomb_sdist(directory / "8", "sparse", "1.0", BOMB),
    }


def test_the_bombs_are_small_files(hostile_files: dict[str, Path]) -> None:
    """What makes them attacks: a few hundred KB to download, hundreds of MB once inflated."""
    assert all(path.stat().st_size < 3 * MiB for path in hostile_files.values())


# -- serve ----------------------------------------------------------------------------------------


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def page_entry(depot: Depot, project: str, filename: str) -> dict[str, Any]:
    status, body = get(f"{depot.index}{project}/", {"Accept": JSON})
    assert status == 200, body[:300]
    entry: dict[str, Any] = next(f for f in json.loads(body)["files"] if f["filename"] == filename)
    return entry


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[FakeUpstream], Depot]]:
    started: list[tuple[Depot, FakeUpstream]] = []

    def start(upstream: FakeUpstream) -> Depot:
        upstream.start()
        depot = Depot(tmp_path / "mirror", tmp_path / "serve.log", ("--upstream", upstream.url))
        started.append((depot, upstream))
        return depot.start()

    yield start
    for depot, upstream in started:
        depot.stop()
        upstream.stop()


@pytest.mark.parametrize("kind", WHEEL_KINDS)
def test_serve_records_and_serves_a_hostile_wheel_without_metadata(
    hostile_files: dict[str, Path], serve: Callable[[FakeUpstream], Depot], kind: str
) -> None:
    """The file's sha256 is right: it is a valid file, served and listed; only its metadata is not offered."""
    wheel = hostile_files[kind]
    project = wheel.name.split("-", 1)[0]
    upstream = FakeUpstream(mode="json")
    dist = upstream.add(wheel)
    depot = serve(upstream)
    url = depot.url + page_entry(depot, project, wheel.name)["url"]
    for _ in range(3):  # the first downloads it; the others are hits
        status, body = get(url)
        assert status == 200
        assert hashlib.sha256(body).hexdigest() == dist.sha256
    assert get(url + ".metadata")[0] == 404
    assert "core-metadata" not in page_entry(depot, project, wheel.name)
    assert upstream.hits[dist.url_path] == 1  # recorded: never downloaded again
    assert wheel.name in (depot.mirror / project / "index.html").read_text()
    assert depot.process is not None
    assert peak_rss(depot.process.pid) < SERVE_RSS
    depot.stop()
    log = depot.log_text()
    assert log.count(f"no metadata offered for {wheel.name}: ") == 1, log[-3000:]
    assert "Traceback" not in log
    assert "Task exception" not in log


def test_serve_refuses_upstream_metadata_over_the_limit(
    tmp_path: Path, serve: Callable[[FakeUpstream], Depot]
) -> None:
    """Upstream's own PEP 658 file is held to the same 4 MiB: never read whole into memory."""
    upstream = FakeUpstream(mode="json", with_metadata=True)
    dist = upstream.add(build_wheel(tmp_path / "dist", "huge", "1.0"))
    dist.metadata = hostile.metadata_head("huge", "1.0") + b" " * (64 * MiB)
    depot = serve(upstream)
    url = depot.url + page_entry(depot, "huge", dist.path.name)["url"]
    status, body = get(url + ".metadata")
    assert status == 502
    assert b"over 4194304" in body
    assert depot.process is not None
    assert peak_rss(depot.process.pid) < SERVE_RSS
    assert get(url)[0] == 200  # the wheel itself is fine


# -- add ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", WHEEL_KINDS + SDIST_KINDS)
def test_add_refuses_a_hostile_archive_in_one_line(
    hostile_files: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    mirror = tmp_path / "mirror"
    result = run_measured(tmp_path / "home", "add", str(hostile_files[kind]), "--mirror", str(mirror))
    line = assert_one_line_failure(result)
    assert hostile_files[kind].name in line
    assert result.peak_rss < COMMAND_RSS, f"{result.peak_rss / MiB:.0f} MiB"
    assert not list(mirror.glob("packages/**/*.*"))


def test_a_wheel_of_70000_members_with_a_zip64_end_record_is_read(tmp_path: Path) -> None:
    """The bounded reader still reads big honest wheels: more than 65,535 members need zip64 records."""
    path = build_wheel(tmp_path, "wide", "1.0")
    with zipfile.ZipFile(path, "a") as archive:
        for index in range(70_000):
            archive.writestr(f"wide/data/{index}.txt", "")
    assert inspect_distribution(path).version == "1.0"


# -- import ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real export of a mirror holding two added wheels, ``lib`` and ``app``."""
    directory = tmp_path_factory.mktemp("export")
    home = directory / "home"
    for name in ("lib", "app"):
        wheel = build_wheel(directory / "dist", name, "1.0")
        assert run_measured(home, "add", str(wheel), "--mirror", str(directory / "mirror")).returncode == 0
    archive = directory / "export.tar.gz"
    assert run_measured(home, "export", str(archive), "--mirror", str(directory / "mirror")).returncode == 0
    return archive


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A mirror that already holds one file, so "unchanged" means something."""
    mirror = tmp_path / "target"
    wheel = build_wheel(tmp_path / "base", "base", "1.0")
    assert run_measured(tmp_path / "home", "add", str(wheel), "--mirror", str(mirror)).returncode == 0
    return mirror


def second(manifest: dict[str, Any]) -> dict[str, Any]:
    return hostile.manifest_files(manifest)[1]


def bad_url(manifest: dict[str, Any]) -> None:
    second(manifest)["entry"]["url"] = "local:///packages/+local/app/another-name.whl"


def traversal(manifest: dict[str, Any]) -> None:
    """``app``'s wheel at ``../../x`` (its member renamed to match)."""
    manifest["projects"]["app"]["files"][0]["path"] = "../../x"


def other_project(manifest: dict[str, Any]) -> None:
    """``lib``'s wheel listed under ``app``."""
    manifest["projects"]["app"]["files"].extend(manifest["projects"].pop("lib")["files"])


def other_version(manifest: dict[str, Any]) -> None:
    """``lib`` 1.0's bytes listed as ``lib`` 9.0 (the member renamed to match)."""
    record = manifest["projects"]["lib"]["files"][0]
    for key in ("path",):
        record[key] = record[key].replace("lib-1.0", "lib-9.0")
    record["entry"]["filename"] = record["entry"]["filename"].replace("lib-1.0", "lib-9.0")
    record["entry"]["url"] = record["entry"]["url"].replace("lib-1.0", "lib-9.0")


def lying_metadata(manifest: dict[str, Any]) -> None:
    """A manifest whose hashes and sizes are not numbers and strings."""
    second(manifest)["size"] = "big"


HOSTILE_EXPORTS: dict[str, dict[str, Any]] = {
    "bad url in the 2nd entry": {"manifest": bad_url},
    "path ../../x": {
        "manifest": traversal,
        "rename": ("packages/+local/app/app-1.0-py3-none-any.whl", "../../x"),
    },
    "a wheel under another project": {"manifest": other_project},
    "a wheel under another version": {"manifest": other_version, "rename": ("lib-1.0", "lib-9.0")},
    "a size that is not a number": {"manifest": lying_metadata},
    "a manifest nested 100,000 deep": {"raw_manifest": b"[" * 100_000 + b"]" * 100_000},
    "a 256 MiB member no entry names": {"extra": (("files/packages/+local/lib/zz-1.0.tar.gz", 256 * MiB),)},
    "a member 64 MiB larger than declared": {"grow": {"lib-1.0-py3-none-any.whl": 64 * MiB}},
}


@pytest.mark.parametrize("case", [*HOSTILE_EXPORTS, "a 256 MiB pax header"])
def test_import_refuses_a_hostile_export_and_changes_nothing(
    export: Path, target: Path, tmp_path: Path, case: str
) -> None:
    archive = tmp_path / "hostile.tar.gz"
    if case == "a 256 MiB pax header":
        hostile.splice_pax_bomb(export, archive, 256 * MiB)
    else:
        hostile.rewrite_export(export, archive, **HOSTILE_EXPORTS[case])
    before = snapshot(target)
    result = run_measured(tmp_path / "home", "import", str(archive), "--mirror", str(target))
    assert_one_line_failure(result)
    assert result.peak_rss < COMMAND_RSS, f"{result.peak_rss / MiB:.0f} MiB"
    assert snapshot(target) == before
    assert not (tmp_path / "x").exists()
    assert not (target.parent / "x").exists()
    assert spool_leftovers(target) == []


def test_import_of_the_untouched_export_still_works(export: Path, target: Path, tmp_path: Path) -> None:
    """The control: the same archive, unmodified, goes in whole."""
    archive = hostile.rewrite_export(export, tmp_path / "same.tar.gz")
    result = run_measured(tmp_path / "home", "import", str(archive), "--mirror", str(target))
    assert result.returncode == 0, result.stderr
    assert "imported 2 files" in result.stdout
    assert {"app", "lib", "base"} <= {p.name for p in target.iterdir()}
