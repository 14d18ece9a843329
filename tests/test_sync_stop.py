"""`pipdepot sync` stopped by SIGTERM or Ctrl-C: one line, what is kept stays, nothing temporary is left."""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import clean_environ
from tests.fake_upstream import FakeUpstream
from tests.mirror_audit import spool_leftovers
from tests.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@pytest.fixture
def slow_upstream(tmp_path: Path) -> Iterator[FakeUpstream]:
    """``small`` arrives at once; ``big`` (2 MiB, 64 KiB every 0.3 s) takes ten seconds."""
    server = FakeUpstream(with_metadata=True, file_delay=0.3)
    server.add(build_wheel(tmp_path / "dist", "small", "1.0"))
    server.add(build_wheel(tmp_path / "dist", "big", "1.0", payload=2 * 1024 * 1024))
    server.start()
    yield server
    server.stop()


def start_sync(tmp_path: Path, upstream: FakeUpstream, *extra: str) -> subprocess.Popen[str]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("small\nbig\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    argv = [sys.executable, "-m", "pipdepot", "sync", "-r", str(requirements), "--python-version", "3.11"]
    argv += ["--mirror", str(tmp_path / "mirror"), "--upstream", upstream.url, *extra]
    return subprocess.Popen(
        argv,
        env=clean_environ(HOME=str(tmp_path), TMPDIR=str(scratch)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"sync ended before {what}: {process.communicate()}")
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"never saw {what}")


def processes_using(path: Path) -> list[str]:
    """Command lines of live processes that name ``path`` (uv, given a cache under it)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in text:
            found.append(text)
    return found


def spool(tmp_path: Path) -> list[Path]:
    return spool_leftovers(tmp_path / "mirror")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_sync_keeps_what_it_verified_and_removes_the_rest(
    tmp_path: Path, slow_upstream: FakeUpstream, signum: int
) -> None:
    process = start_sync(tmp_path, slow_upstream)
    small_page = tmp_path / "mirror" / "small" / "index.html"
    wait_for(lambda: small_page.is_file() and bool(spool(tmp_path)), process, "small kept and big on its way")
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 128 + signum, stderr
    name = signal.Signals(signum).name
    last = stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"pipdepot: sync stopped by {name}: 1 file downloaded and verified in this run stays in "
        rf"{re.escape(str(tmp_path / 'mirror'))}; the downloads in progress and the temporary "
        r"files were removed; run the same sync again to finish",
        last,
    ), last
    assert "Traceback" not in stderr
    assert spool(tmp_path) == []  # big's partial download
    assert list((tmp_path / "tmp").iterdir()) == []  # the sync's scratch directory, uv's cache in it
    href, sha256 = re.findall(r'href="([^"#]+)#sha256=([0-9a-f]+)"', small_page.read_text())[0]
    assert hashlib.sha256((small_page.parent / href).read_bytes()).hexdigest() == sha256
    assert not (tmp_path / "mirror" / "big").exists()
    assert processes_using(tmp_path / "tmp") == []


def test_a_sync_stopped_while_uv_resolves_leaves_no_uv_running(tmp_path: Path) -> None:
    hanging = FakeUpstream(behaviour="hang")
    hanging.start()
    try:
        process = start_sync(tmp_path, hanging, "--upstream-timeout", "120")
        wait_for(lambda: bool(processes_using(tmp_path / "tmp")), process, "uv resolving")
        time.sleep(0.5)  # uv asks the mirror, which waits on the hanging upstream
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        hanging.stop()
    assert process.returncode == 143, stderr
    assert "pipdepot: sync stopped by SIGTERM: 0 files downloaded and verified in this run stay" in stderr
    assert processes_using(tmp_path / "tmp") == []
    assert list((tmp_path / "tmp").iterdir()) == []
