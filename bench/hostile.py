"""Figures for docs/RELIABILITY.md "Archives": hostile archives at the issue's sizes: serve, add, import.

    .venv/bin/python bench/hostile.py [--src DIR]

``--src`` runs the pipdepot found in DIR (e.g. ``git archive <commit> src | tar -x -C /tmp/old``,
then ``--src /tmp/old/src``) to measure code before a change. Prints one Markdown row per case:
exit status or HTTP answers, seconds, peak RSS of the pipdepot process (serve: ``VmHWM``;
add/import: ``ru_maxrss`` from ``wait4``, through a small intermediate process).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import hostile  # noqa: E402
from tests.depot import Depot  # noqa: E402
from tests.fake_upstream import FakeUpstream  # noqa: E402
from tests.wheels import build_wheel  # noqa: E402

MiB = 1024 * 1024


def command(work: Path, *args: str) -> tuple[int, str, float, int]:
    """Exit status, last stderr line, seconds, peak RSS (MiB) of ``pipdepot ARGS``."""
    rss = work / "maxrss"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", hostile.MEASURE_RSS, str(rss), sys.executable, "-m", "pipdepot", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HOME": str(work)},
    )
    lines = result.stderr.strip().splitlines() or [""]
    return result.returncode, lines[-1][:110], time.monotonic() - started, int(rss.read_text()) // 1024


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Status and body; 0 and the error when the connection was cut."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(url)
    try:
        request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (loopback, checked)
        with urllib.request.urlopen(request, timeout=300) as answer:  # noqa: S310
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        return 0, str(error).encode()


def serve_case(work: Path, wheel: Path, requests: int) -> str:
    """Each request for the file and its .metadata; what the page advertises; upstream fetches; RSS."""
    work.mkdir()
    upstream = FakeUpstream(mode="json")
    dist = upstream.add(wheel)
    upstream.start()
    depot = Depot(work / "mirror", work / "serve.log", ("--upstream", upstream.url)).start()
    try:
        project = wheel.name.split("-", 1)[0]
        page = f"{depot.index}{project}/"
        accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
        entry = next(f for f in json.loads(get(page, accept)[1])["files"] if f["filename"] == wheel.name)
        url = depot.url + entry["url"]
        good = sum(hashlib.sha256(get(url)[1]).hexdigest() == dist.sha256 for _ in range(requests))
        status, body = get(url + ".metadata")
        entry = next(f for f in json.loads(get(page, accept)[1])["files"] if f["filename"] == wheel.name)
        if depot.process is None:
            raise RuntimeError("serve is not running")
        status_text = (depot.mirror / project / "index.html").exists()
        on_disk = len(list((depot.mirror / "packages").rglob(wheel.name)))
        peak = _vmhwm(depot.process.pid)
    finally:
        depot.stop()
        upstream.stop()
    lines = depot.log_text().splitlines()
    tracebacks = sum("Traceback" in line for line in lines)
    return (
        f"{good}/{requests} correct bodies; {upstream.file_hits()} upstream fetches; "
        f".metadata {status} ({len(body)} bytes); advertised: {'core-metadata' in entry}; "
        f"listed in the tree: {status_text}; on disk: {on_disk}; "
        f"{tracebacks} tracebacks in the log | {peak} MiB"
    )


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size} bytes" if size < 10_000 else f"{size // 1000} KB"


def _vmhwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return -1


def import_cases(work: Path) -> list[tuple[str, Path]]:
    """A real export of two added wheels, and hostile copies of it."""
    source = work / "source"
    for name in ("lib", "app"):
        command(work, "add", str(build_wheel(work / "dist", name, "1.0")), "--mirror", str(source))
    export = work / "export.tar.gz"
    command(work, "export", str(export), "--mirror", str(source))

    def bad_url(manifest: dict[str, object]) -> None:
        hostile.manifest_files(manifest)[1]["entry"]["url"] = "local:///packages/+local/lib/x.whl"

    def traversal(manifest: dict[str, object]) -> None:
        manifest["projects"]["app"]["files"][0]["path"] = "../../x"  # type: ignore[index]

    def other_project(manifest: dict[str, object]) -> None:
        projects = manifest["projects"]
        projects["app"]["files"].extend(projects.pop("lib")["files"])  # type: ignore[attr-defined,index]

    app = "packages/+local/app/app-1.0-py3-none-any.whl"
    return [
        ("bad URL in the 2nd entry", hostile.rewrite_export(export, work / "1.tar.gz", manifest=bad_url)),
        (
            "manifest path `../../x`",
            hostile.rewrite_export(export, work / "2.tar.gz", manifest=traversal, rename=(app, "../../x")),
        ),
        (
            "`lib`'s wheel listed under `app`",
            hostile.rewrite_export(export, work / "3.tar.gz", manifest=other_project),
        ),
        (
            "1 GiB member no entry names",
            hostile.rewrite_export(export, work / "4.tar.gz", extra=(("files/packages/zz.bin", 1024 * MiB),)),
        ),
        ("256 MiB pax header", hostile.splice_pax_bomb(export, work / "5.tar.gz", 256 * MiB)),
    ]


def main() -> int:
    """Build the cases, run them, print the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, help="run the pipdepot package found in this directory")
    options = parser.parse_args()
    if options.src is not None:
        os.environ["PYTHONPATH"] = str(options.src.resolve())
    with tempfile.TemporaryDirectory(prefix="pipdepot-hostile-") as name:
        work = Path(name)
        files = {
            "400 MB METADATA zip bomb": hostile.zip_bomb_wheel(work / "a", "bomb", "1.0", 400 * MiB),
            "corrupt deflate METADATA": hostile.corrupt_deflate_wheel(work / "b", "corrupt", "1.0"),
            "unknown compression method (99)": hostile.unknown_method_wheel(work / "c", "unknown", "1.0"),
        }
        sdists = {
            "400 MB PKG-INFO tar bomb": hostile.tar_bomb_sdist(work / "d", "tarbomb", "1.0", 400 * MiB),
            "400 MB pax header": hostile.pax_bomb_sdist(work / "e", "paxbomb", "1.0", 400 * MiB),
            "500,000 members": hostile.many_members_sdist(work / "f", "many", "1.0", 500_000),
            "256 MiB GNU sparse map": hostile.sparse_map_bomb_sdist(work / "g", "sparse", "1.0", 256 * MiB),
        }
        print("| target | case | file | observed | peak RSS |")
        print("|---|---|---|---|---|")
        for index, (case, path) in enumerate(files.items()):
            size = _size(path)
            row = serve_case(work / f"serve{index}", path, 5)
            print(f"| serve | {case} | {size} | {row} |")
        for index, (case, path) in enumerate({**files, **sdists}.items()):
            (work / f"add{index}").mkdir()
            code, line, seconds, peak = command(
                work / f"add{index}", "add", str(path), "--mirror", str(work / f"m{index}")
            )
            size = _size(path)
            print(f"| add | {case} | {size} | exit {code} in {seconds:.1f} s: `{line}` | {peak} MiB |")
        (work / "imports").mkdir()
        for index, (case, path) in enumerate(import_cases(work / "imports")):
            target = work / f"t{index}"
            code, line, seconds, peak = command(
                work / "imports", "import", str(path), "--mirror", str(target)
            )
            files_in = len(list(target.glob("packages/**/*.whl")))
            size = _size(path)
            print(
                f"| import | {case} | {size} | exit {code} in {seconds:.1f} s, {files_in} wheels left in "
                f"the mirror: `{line}` | {peak} MiB |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
