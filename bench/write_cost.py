"""The cost of one write against the mirror's size: a mirror of 100 projects and one of 100,000, side by side.

Run: ``.venv/bin/python bench/write_cost.py [--small 100] [--large 100000] [--rounds 9] [--json FILE]``.

It builds both mirrors itself (synthetic, but recorded exactly as a download through pipdepot
records a file: the local record, upstream's stored page, the wheel at its ``/packages/`` path,
``<project>/index.html`` and the root index; the small one is audited with
``tests/mirror_audit.py``), then measures in paired rounds that alternate the two mirrors:

- ``pipdepot add`` as a whole process: a new version of an existing project, a new project, and
  two baselines for what every process pays whatever it adds (``add --help``: start-up and
  imports; an add of a file already there: the mirror opened and closed, nothing written);
- in one process, ``Mirror.add`` of 50 wheels in a row (new versions, then new projects), per file;
- ``Tree.rewrite_root`` (what a burst of new projects costs, once), and ``serve`` start-up to
  the first ``/+health``.

The mirrors are built in a temporary directory, removed at the end. Every process started is
stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import clean_env, free_port, log

from pipdepot.core.distribution import inspect_distribution
from pipdepot.core.names import NormalizedName
from pipdepot.core.project import LocalFile, ProjectState, local_path_of
from pipdepot.operations.session import open_mirror
from pipdepot.server.pages import page_files, render_root_html, render_tree_html

if TYPE_CHECKING:
    from collections.abc import Callable

    from pipdepot.core.project import FileEntry

#: Upstream as the synthetic pages name it (reserved example names: nothing is ever fetched).
UPSTREAM = "https://upstream.example/simple/"
FILES = "https://files.example/packages"
#: One fixed time in every wheel and entry, so a mirror built twice is the same bytes.
_ZIP_TIME = (2024, 1, 1, 0, 0, 0)
_UPLOAD_TIME = "2024-01-01T00:00:00.000000Z"
Json = dict[str, Any]


def project_name(index: int) -> NormalizedName:
    """The ``index``-th synthetic project (sorted by index, as the root index lists them)."""
    return NormalizedName(f"synthetic-{index:06d}")


def build_wheel(name: str, version: str) -> tuple[str, bytes, bytes]:
    """A small pure-Python wheel of ``name``: its filename, its bytes and its METADATA."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Python: >=3.8\n".encode()
    members = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = [f"{path},sha256={_record_digest(data)},{len(data)}" for path, data in members.items()]
    members[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, data in members.items():
            archive.writestr(zipfile.ZipInfo(member, date_time=_ZIP_TIME), data)
    return f"{module}-{version}-py3-none-any.whl", buffer.getvalue(), metadata


def _record_digest(data: bytes) -> str:
    import base64  # noqa: PLC0415 (only the wheel's RECORD needs it)

    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def project_files(index: int, fetched_at: float) -> list[tuple[str, bytes]]:
    """Every file pipdepot keeps for a project whose one wheel was downloaded: (key, bytes).

    As ``PageRefresher._adopt`` then ``LocalFiles.record`` leave it: upstream's page stored, the record
    committed twice (generation 2) and the project's page rendered from the record.
    """
    name = project_name(index)
    filename, data, metadata = build_wheel(name, "1.0")
    sha256 = hashlib.sha256(data).hexdigest()
    blake = hashlib.blake2b(data, digest_size=32).hexdigest()  # upstream's own layout for file paths
    entry: FileEntry = {
        "filename": filename,
        "url": f"{FILES}/{blake[:2]}/{blake[2:4]}/{blake[4:]}/{filename}",
        "hashes": {"sha256": sha256},
        "requires-python": ">=3.8",
        "core-metadata": {"sha256": hashlib.sha256(metadata).hexdigest()},
        "size": len(data),
        "upload-time": _UPLOAD_TIME,
        "yanked": False,
    }
    state = ProjectState(
        name, UPSTREAM, [entry], extra={"versions": ["1.0"]}, etag='"synthetic"', fetched_at=fetched_at
    )
    state.local[filename] = LocalFile(sha256, len(data))
    state.generation = 2
    record = state.local_json()
    page = io.BytesIO()
    state.write_page(page)
    recorded = ProjectState.from_json(None, record)  # what the tree writer renders from
    return [
        (local_path_of(entry["url"], filename).removeprefix("/"), data),
        (f".pipdepot/local/{name}.json", record),
        (f".pipdepot/projects/{name}.json", page.getvalue()),
        (f"{name}/index.html", render_tree_html(recorded, page_files(recorded, local_only=True))),
    ]


def _build_range(root: str, start: int, stop: int, fetched_at: float) -> None:
    made: set[str] = set()
    for index in range(start, stop):
        for key, data in project_files(index, fetched_at):
            path = os.path.join(root, key)  # noqa: PTH118 (os.path: 400,000 paths, no Path objects)
            parent = os.path.dirname(path)  # noqa: PTH120
            if parent not in made:
                os.makedirs(parent, exist_ok=True)  # noqa: PTH103
                made.add(parent)
            with open(path, "wb") as stream:  # noqa: PTH123
                stream.write(data)


def build_mirror(root: Path, count: int, *, workers: int = 2) -> float:
    """Write a mirror of ``count`` projects at ``root`` (files written directly); the seconds it took."""
    started = time.perf_counter()
    for state_dir in ("local", "projects", "tmp"):
        (root / ".pipdepot" / state_dir).mkdir(parents=True, exist_ok=True)
    fetched_at = time.time()
    step = max(1, -(-count // (workers * 8)))
    ranges = [(n, min(count, n + step)) for n in range(0, count, step)]
    if workers > 1 and count > 1000:
        with ProcessPoolExecutor(workers) as pool:
            for done in [pool.submit(_build_range, str(root), a, b, fetched_at) for a, b in ranges]:
                done.result()
    else:
        for a, b in ranges:
            _build_range(str(root), a, b, fetched_at)
    (root / "index.html").write_bytes(render_root_html(project_name(n) for n in range(count)))
    return time.perf_counter() - started


# -- measuring ------------------------------------------------------------------------------------


def _pipdepot() -> list[str]:
    script = Path(sys.executable).with_name("pipdepot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipdepot"]


def _timed_cli(argv: list[str], expect: str) -> float:
    """Seconds of one whole ``pipdepot`` process; it must succeed and say ``expect``."""
    started = time.perf_counter()
    done = subprocess.run(
        [*_pipdepot(), *argv], capture_output=True, text=True, check=False, env=clean_env(), timeout=600
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0 or expect not in done.stdout:
        raise RuntimeError(f"pipdepot {' '.join(argv)}: rc {done.returncode}\n{done.stdout}\n{done.stderr}")
    return seconds


def wheel_file(directory: Path, name: str, version: str) -> Path:
    """A wheel of ``name`` at ``version`` written into ``directory``, for ``pipdepot add``."""
    filename, data, _ = build_wheel(name, version)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_bytes(data)
    return path


def measure_cli(mirrors: dict[str, Path], wheels: Path, rounds: int) -> Json:
    """Whole ``pipdepot add`` processes, in rounds that alternate the mirrors' order."""
    kinds = ("help", "present", "existing", "new")
    samples: dict[str, dict[str, list[float]]] = {m: {k: [] for k in kinds} for m in mirrors}
    present = {m: wheel_file(wheels / m, "present-probe", "1.0") for m in mirrors}
    for label, root in mirrors.items():  # the file the "present" baseline adds again every round
        _timed_cli(["add", "--mirror", str(root), str(present[label])], "added")
    order = list(mirrors)
    for round_ in range(rounds):
        for label in order if round_ % 2 == 0 else order[::-1]:
            root = mirrors[label]
            existing = wheel_file(wheels / label, project_name(round_ * 7 + 3), f"2.{round_}")
            fresh = wheel_file(wheels / label, f"fresh-{round_:03d}", "1.0")
            mirror = ["--mirror", str(root)]
            runs: dict[str, Callable[[], float]] = {
                "help": lambda: _timed_cli(["add", "--help"], "Usage"),
                "present": lambda: _timed_cli(["add", *mirror, str(present[label])], "already there"),  # noqa: B023
                "existing": lambda: _timed_cli(["add", *mirror, str(existing)], "added"),  # noqa: B023
                "new": lambda: _timed_cli(["add", *mirror, str(fresh)], "added"),  # noqa: B023
            }
            for kind in kinds[round_ % len(kinds) :] + kinds[: round_ % len(kinds)]:  # rotate the order too
                samples[label][kind].append(runs[kind]())
        log(f"cli round {round_ + 1}/{rounds}")
    return _cli_summary(samples)


def _cli_summary(samples: dict[str, dict[str, list[float]]]) -> Json:
    summary: Json = {}
    for label, kinds in samples.items():
        entry: Json = {f"{kind}_ms": _ms(statistics.median(values)) for kind, values in kinds.items()}
        for kind in ("existing", "new"):  # per round, less that round's opened-and-closed mirror
            extra = [a - b for a, b in zip(kinds[kind], kinds["present"], strict=True)]
            entry[f"{kind}_over_present_ms"] = _ms(statistics.median(extra))
        entry["samples_ms"] = {kind: [_ms(v) for v in values] for kind, values in kinds.items()}
        summary[label] = entry
    return summary


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


async def _adds_in_process(root: Path, wheels: list[Path]) -> Json:
    """``Mirror.add`` of each wheel in a row in one opened mirror: per file, and to the tree's last write."""
    dists = [inspect_distribution(path) for path in wheels]
    async with open_mirror(root, purpose="bench", writer=True) as mirror:
        started = time.perf_counter()
        await mirror.census()  # the count `serve` starts in the background (timed, before the adds)
        census = time.perf_counter() - started
        per_file = []
        started = time.perf_counter()
        for dist in dists:
            began = time.perf_counter()
            if not await mirror.add(dist):
                raise RuntimeError(f"{dist.filename} was already there")
            per_file.append(time.perf_counter() - began)
        await mirror.tree.flush()  # a pending root rewrite (new projects) finishes here
        total = time.perf_counter() - started
    return {
        "census_ms": _ms(census),
        "per_file_median_ms": _ms(statistics.median(per_file)),
        "per_file_p90_ms": _ms(sorted(per_file)[int(0.9 * len(per_file))]),
        "per_file_max_ms": _ms(max(per_file)),
        "total_with_flush_ms": _ms(total),
    }


def measure_in_process(mirrors: dict[str, Path], wheels: Path, count: int, rounds: int) -> Json:
    """``count`` adds in one process, new versions and new projects, mirrors alternated per round."""
    results: dict[str, dict[str, list[Json]]] = {m: {"existing": [], "new": []} for m in mirrors}
    order = list(mirrors)
    for round_ in range(rounds):
        for label in order if round_ % 2 == 0 else order[::-1]:
            here = wheels / label / f"batch-{round_}"
            existing = [wheel_file(here, project_name(n), f"3.{round_}") for n in range(count)]
            fresh = [wheel_file(here, f"batch-{round_}-{n:03d}", "1.0") for n in range(count)]
            for kind, batch in (("existing", existing), ("new", fresh)):
                results[label][kind].append(asyncio.run(_adds_in_process(mirrors[label], batch)))
        log(f"in-process round {round_ + 1}/{rounds}")
    summary: Json = {}
    for label, kinds in results.items():
        summary[label] = {
            kind: {key: _ms(statistics.median(r[key] for r in runs) / 1000) for key in runs[0]}
            | {"rounds": runs}
            for kind, runs in kinds.items()
        }
    return summary


async def _rewrite_root(root: Path, times: int) -> Json:
    async with open_mirror(root, purpose="bench", writer=True) as mirror:
        await mirror.census()
        samples = []
        for _ in range(times):
            started = time.perf_counter()
            await mirror.tree.rewrite_root()
            samples.append(time.perf_counter() - started)
        projects = len(await mirror.local_projects())
    size = (root / "index.html").stat().st_size
    return {"median_ms": _ms(statistics.median(samples)), "projects": projects, "bytes": size}


def measure_serve_start(root: Path) -> Json:
    """Seconds from ``pipdepot serve`` started to its first ``/+health`` answer, and to its full count."""
    port = free_port()
    argv = [*_pipdepot(), "serve", "--mirror", str(root), "--offline", "--host", "127.0.0.1"]
    started = time.perf_counter()
    process = subprocess.Popen(
        [*argv, "--port", str(port)], env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        health = _poll(f"http://127.0.0.1:{port}/+health", lambda _: True, started)
        count = _poll(f"http://127.0.0.1:{port}/+metrics", _counted, started)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"health_ms": _ms(health), "counted_ms": _ms(count)}


def _counted(body: str) -> bool:
    """Whether the census has counted the files (a gauge above zero)."""
    return any(
        line.startswith("pipdepot_cached_files ") and float(line.split()[1]) > 0 for line in body.splitlines()
    )


def _poll(url: str, done: Callable[[str], bool], started: float, timeout: float = 120) -> float:
    while time.perf_counter() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (our loopback server)
                if answer.status == 200 and done(answer.read().decode()):
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.005)
    raise TimeoutError(f"{url}: no answer in {timeout} s")


def _ratios(small: Json, large: Json) -> Json:
    """``large / small`` for every number both have, nested alike."""
    ratios: Json = {}
    for key, value in small.items():
        other = large.get(key)
        if isinstance(value, dict) and isinstance(other, dict):
            ratios[key] = _ratios(value, other)
        elif isinstance(value, (int, float)) and isinstance(other, (int, float)) and value > 0:
            ratios[key] = round(other / value, 2)
    return ratios


def _audit(root: Path) -> list[str]:
    from tests.mirror_audit import audit_mirror  # noqa: PLC0415 (the tests' audit, from the repository)

    return audit_mirror(root, settle=0).problems


def main() -> None:
    """Build both mirrors, measure, print one JSON object (and write it to ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--small", type=int, default=100, help="projects in the small mirror")
    parser.add_argument("--large", type=int, default=100_000, help="projects in the large mirror")
    parser.add_argument("--rounds", type=int, default=9, help="paired rounds of whole processes")
    parser.add_argument("--batch", type=int, default=50, help="wheels added in a row in one process")
    parser.add_argument("--batch-rounds", type=int, default=3, help="rounds of the in-process batches")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--scratch", type=Path, help="build under this directory (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="write-cost-", dir=args.scratch) as scratch:
        base = Path(scratch)
        mirrors = {"small": base / "small", "large": base / "large"}
        counts = {"small": args.small, "large": args.large}
        built: Json = {}
        for label, root in mirrors.items():
            log(f"building the {label} mirror: {counts[label]} projects")
            built[label] = {"projects": counts[label], "seconds": round(build_mirror(root, counts[label]), 1)}
        problems = _audit(mirrors["small"])
        if problems:
            raise SystemExit(f"the small synthetic mirror fails its audit: {problems[:5]}")
        results: Json = {"built": built, "machine": {"cpus": os.cpu_count()}}
        results["cli"] = measure_cli(mirrors, base / "wheels", args.rounds)
        results["in_process"] = measure_in_process(mirrors, base / "wheels", args.batch, args.batch_rounds)
        results["rewrite_root"] = {m: asyncio.run(_rewrite_root(r, 5)) for m, r in mirrors.items()}
        results["serve_start"] = {}
        for label in ("small", "large", "small", "large"):  # twice each, alternated; the better kept
            sample = measure_serve_start(mirrors[label])
            kept = results["serve_start"].get(label)
            if kept is None or sample["health_ms"] < kept["health_ms"]:
                results["serve_start"][label] = sample
        results["audit_small_after"] = _audit(mirrors["small"])
        results["ratios_large_over_small"] = {
            part: _ratios(results[part]["small"], results[part]["large"])
            for part in ("cli", "in_process", "rewrite_root", "serve_start")
        }
        text = json.dumps(results, indent=2)
        if args.json is not None:
            args.json.write_text(text + "\n")
        print(text, flush=True)
        log("removing the mirrors (minutes for 100,000 projects on a slow disk)")


if __name__ == "__main__":
    main()
