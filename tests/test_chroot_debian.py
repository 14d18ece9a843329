"""A real Debian root: `pipdepot chroot` with no network at all, pip and uv installing from the mirror."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from tests.conftest import clean_environ
from tests.fake_upstream import FakeUpstream
from tests.roots import Snapshot, diff, mounts_under, snapshot
from tests.test_sync_inputs import UPPER
from tests.wheels import add_to_mirror, build_sdist, build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.root, pytest.mark.slow]

# Proves the command's environment is clean and both installers used only the mirror.
PROBE_SCRIPT = r"""
set -eu
if env | grep -E '^(PIP_|UV_|VIRTUAL_ENV)'; then echo "LEAKED HOST VARIABLES"; exit 90; fi
echo "HOME=$HOME"
python3 -m venv /opt/probe
/opt/probe/bin/pip install --no-cache-dir --no-input pipdepot-probe-app
/opt/probe/bin/python -c "import pipdepot_probe_app, pipdepot_probe_lib as lib; print('PIP-OK', lib.VERSION)"
/opt/probe/bin/pip install --no-cache-dir --no-input uv
UV_NO_CACHE=1 /opt/probe/bin/uv pip install --python /opt/probe/bin/python pipdepot-probe-uv
/opt/probe/bin/python -c 'import pipdepot_probe_uv; print("UV-OK", pipdepot_probe_uv.VERSION)'
rm -rf /opt/probe
"""


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, uv_wheel: Path) -> Path:
    base = tmp_path_factory.mktemp("chroot-mirror")
    mirror = base / "mirror"
    dist = base / "dist"
    add_to_mirror(mirror, build_wheel(dist, "pipdepot-probe-lib", "2.0"))
    add_to_mirror(mirror, build_wheel(dist, "pipdepot-probe-app", "1.0", requires=("pipdepot-probe-lib>=2",)))
    add_to_mirror(mirror, build_wheel(dist, "pipdepot-probe-uv", "3.0"))
    add_to_mirror(mirror, uv_wheel)
    return mirror


@pytest.fixture(autouse=True)
def never_leave_mounts(debian_root: Path, tmp_path: Path) -> Iterator[None]:
    """Whatever a test does or fails to do, the next one starts from a restored root."""
    yield
    if (debian_root / ".pipdepot").exists():
        subprocess.run(
            [sys.executable, "-m", "pipdepot", "restore", "--force", str(debian_root)],
            env=clean_environ(HOME=str(tmp_path)),
            capture_output=True,
            check=False,
        )


@pytest.fixture(scope="module")
def pristine(debian_root: Path) -> Snapshot:
    return snapshot(debian_root)


def pipdepot_argv(root: Path, mirror: Path, *command: str) -> list[str]:
    return [
        "unshare",
        "--net",
        sys.executable,
        "-m",
        "pipdepot",
        "chroot",
        str(root),
        "--offline",
        "--mirror-dir",
        str(mirror),
        "--",
        *command,
    ]


def hostile_environ(home: Path) -> dict[str, str]:
    """The host's pip and uv pointed elsewhere: none of it may reach the command."""
    return clean_environ(
        HOME=str(home),
        PIP_INDEX_URL="http://127.0.0.1:9/nowhere/",
        PIP_FIND_LINKS="/nonexistent",
        UV_INDEX_URL="http://127.0.0.1:9/nowhere/",
        UV_DEFAULT_INDEX="http://127.0.0.1:9/nowhere/",
        VIRTUAL_ENV="/nonexistent/venv",
    )


def chroot(
    root: Path, mirror: Path, home: Path, *command: str, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """`pipdepot chroot` under `unshare --net`, as the host's hostile environment would run it."""
    return subprocess.run(
        pipdepot_argv(root, mirror, *command),
        env=hostile_environ(home),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def test_pip_and_uv_install_from_the_mirror_alone_and_the_root_comes_back(
    debian_root: Path, mirror: Path, pristine: Snapshot, tmp_path: Path
) -> None:
    result = chroot(debian_root, mirror, tmp_path, "sh", "-c", PROBE_SCRIPT, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "HOME=/root" in output
    assert "Looking in indexes: file:///tmp/pypi" in output
    assert "PIP-OK 2.0" in output
    assert "UV-OK 3.0" in output
    assert "LEAKED" not in output
    assert mounts_under(debian_root) == []
    assert diff(pristine, snapshot(debian_root)) == []


def test_the_network_really_is_absent_in_the_probe(debian_root: Path, mirror: Path, tmp_path: Path) -> None:
    """Without the mirror's package, pip fails: nothing else could have served the installs above."""
    script = (
        "python3 -m venv /opt/n && /opt/n/bin/pip install --no-cache-dir six; rc=$?; rm -rf /opt/n; exit $rc"
    )
    result = chroot(debian_root, mirror, tmp_path, "sh", "-c", script, timeout=300)
    assert result.returncode != 0
    assert "No matching distribution found for six" in result.stdout + result.stderr


def test_exit_status_is_the_commands_and_the_root_is_restored(
    debian_root: Path, mirror: Path, pristine: Snapshot, tmp_path: Path
) -> None:
    result = chroot(debian_root, mirror, tmp_path, "sh", "-c", "test -f /etc/pip.conf && exit 7", timeout=120)
    assert result.returncode == 7, result.stderr
    assert mounts_under(debian_root) == []
    assert diff(pristine, snapshot(debian_root)) == []


def wait_until_injected(root: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if str(root / "tmp" / "pypi") in mounts_under(root) and process.poll() is None:
            time.sleep(0.3)  # let the command start inside
            return
        time.sleep(0.05)
    process.kill()
    pytest.fail("pipdepot chroot never mounted the mirror")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_command_and_restores_the_root(
    debian_root: Path, mirror: Path, pristine: Snapshot, tmp_path: Path, signum: int
) -> None:
    process = subprocess.Popen(
        pipdepot_argv(debian_root, mirror, "sleep", "60"),
        env=hostile_environ(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until_injected(debian_root, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, stderr
    assert mounts_under(debian_root) == []
    assert diff(pristine, snapshot(debian_root)) == []


def test_kill_9_of_pipdepot_then_restore_gives_the_exact_root(
    debian_root: Path, mirror: Path, pristine: Snapshot, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        pipdepot_argv(debian_root, mirror, "sleep", "60"),
        env=hostile_environ(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    wait_until_injected(debian_root, process)
    process.kill()
    process.wait(timeout=30)
    os.killpg(process.pid, signal.SIGKILL)  # the orphaned command, as a dying build would lose it
    process.communicate(timeout=30)
    assert mounts_under(debian_root)  # pipdepot died holding them
    result = subprocess.run(
        [sys.executable, "-m", "pipdepot", "restore", str(debian_root)],
        env=clean_environ(HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "unmounted /tmp/pypi" in result.stdout
    assert mounts_under(debian_root) == []
    assert diff(pristine, snapshot(debian_root)) == []


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A mirror filled by `pipdepot sync` from a real (local) upstream, and its requirements file."""
    base = tmp_path_factory.mktemp("synced")
    dist = base / "dist"
    upstream = FakeUpstream(with_metadata=True)
    upstream.add(
        build_wheel(dist, "pipdepot-probe-app", "1.0", requires=("pipdepot-probe-lib>=2", "probe-src"))
    )
    upstream.add(build_wheel(dist, "pipdepot-probe-lib", "1.0"))
    upstream.add(build_wheel(dist, "pipdepot-probe-lib", "2.0"))
    upstream.add(build_sdist(dist, "probe-src", "1.0", buildable=True, build_requires=("probe-backend",)))
    upstream.add(build_wheel(dist, "probe-backend", "1.0"))
    upstream.add(build_wheel(dist, "never-synced", "1.0"))
    upstream.start()
    requirements = base / "requirements.txt"
    requirements.write_text("pipdepot-probe-app\n")
    mirror = base / "mirror"
    try:
        sync = ["sync", "-r", str(requirements), "--python-version", "3.11", "--mirror", str(mirror)]
        subprocess.run(
            [sys.executable, "-m", "pipdepot", *sync, "--upstream", upstream.url],
            env=clean_environ(HOME=str(base)),
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        upstream.stop()
    return mirror, requirements


def checked_chroot(
    root: Path, mirror: Path, home: Path, check: Path, script: str
) -> subprocess.CompletedProcess[str]:
    """`pipdepot chroot --offline --check` in a network namespace that has only loopback."""
    command = [sys.executable, "-m", "pipdepot", "chroot", str(root), "--offline"]
    command += ["--mirror-dir", str(mirror), "--check", str(check), "--", "sh", "-c", script]
    return subprocess.run(
        ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command],
        env=hostile_environ(home),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_synced_requirements_pass_the_check_and_install_offline(
    debian_root: Path, synced: tuple[Path, Path], pristine: Snapshot, tmp_path: Path
) -> None:
    mirror, requirements = synced
    script = (
        "python3 -m venv /opt/s && /opt/s/bin/pip install --no-cache-dir pipdepot-probe-app"
        " && /opt/s/bin/python -c 'import probe_src, pipdepot_probe_lib as lib;"
        ' print("SYNCED-OK", lib.VERSION)\''
        "; rc=$?; rm -rf /opt/s; exit $rc"
    )
    result = checked_chroot(debian_root, mirror, tmp_path, requirements, script)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # the root's python3.11 and glibc, read from the root; the backend of the sdist included
    assert "target: cp311-manylinux_2_36_x86_64 (CPython 3.11.2 (/usr/bin/python3.11), glibc 2.36" in output
    assert "ok: cp311-manylinux_2_36_x86_64: 4 files" in output
    assert "SYNCED-OK 2.0" in output
    assert diff(pristine, snapshot(debian_root)) == []


def test_a_failed_check_stops_before_the_root_is_touched(
    debian_root: Path, synced: tuple[Path, Path], pristine: Snapshot, tmp_path: Path
) -> None:
    mirror, _ = synced
    more = tmp_path / "more.txt"
    more.write_text("pipdepot-probe-app\nnever-synced\n")
    result = checked_chroot(debian_root, mirror, tmp_path, more, "touch /CHECK-DID-NOT-STOP-ME")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "missing: never-synced for cp311-manylinux_2_36_x86_64: project not in the mirror" in result.stdout
    assert "pipdepot: error: the mirror lacks 1 item for 1 target" in result.stderr
    assert mounts_under(debian_root) == []
    assert diff(pristine, snapshot(debian_root)) == []


def test_a_wheel_for_a_newer_glibc_than_bookworms_is_reported_missing(
    debian_root: Path, pristine: Snapshot, tmp_path: Path
) -> None:
    """manylinux_2_40 needs glibc 2.40; bookworm has 2.36: the check says so before the root is touched."""
    mirror = tmp_path / "mirror"
    wheel = build_wheel(tmp_path / "dist", "newglibc", "1.0", tag="cp311-cp311-manylinux_2_40_x86_64")
    subprocess.run(
        [sys.executable, "-m", "pipdepot", "add", str(wheel), "--mirror", str(mirror)],
        env=clean_environ(HOME=str(tmp_path)),
        capture_output=True,
        check=True,
    )
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("newglibc\n")
    result = checked_chroot(debian_root, mirror, tmp_path, requirements, "touch /CHECK-DID-NOT-STOP-ME")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "target: cp311-manylinux_2_36_x86_64" in result.stdout
    assert "missing: " in result.stdout
    assert "newglibc" in result.stdout
    assert mounts_under(debian_root) == []
    assert diff(pristine, snapshot(debian_root)) == []


@pytest.mark.network
def test_the_openstack_case_with_bookworms_own_pip_in_the_root(
    debian_root: Path, web: tuple[str, dict[str, bytes]], pristine: Snapshot, tmp_path: Path
) -> None:
    """As a user types it: sync from PyPI with upper-constraints by URL for 3.11 and 3.13, then
    `chroot --offline --check` (the root's own target) and an install with the root's stock pip."""
    url, files = web
    files["/upper-constraints.txt"] = UPPER.encode()
    wanted = "docopt\nsix\nPyYAML\nrequests\n"
    (tmp_path / "reqs.txt").write_text(wanted)
    mirror = tmp_path / "mirror"
    sync = ["sync", "-r", str(tmp_path / "reqs.txt"), "-c", f"{url}/upper-constraints.txt"]
    sync += ["--python-version", "3.11", "--python-version", "3.13", "--mirror", str(mirror)]
    synced = subprocess.run(
        [sys.executable, "-m", "pipdepot", *sync],
        env=clean_environ(HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert synced.returncode == 0, synced.stdout + synced.stderr
    # the build has its constraints as a file: inside the build there is no network at all
    (tmp_path / "upper-constraints.txt").write_text(UPPER)
    check = tmp_path / "check.txt"
    check.write_text(f"{wanted}-c {tmp_path / 'upper-constraints.txt'}\n")
    script = f"""
cat > /opt/oc-reqs.txt <<'END'
{wanted}END
cat > /opt/oc-constraints.txt <<'END'
{UPPER}END
python3 -m venv /opt/oc && /opt/oc/bin/pip --version \\
  && /opt/oc/bin/pip install --no-cache-dir -r /opt/oc-reqs.txt -c /opt/oc-constraints.txt \\
  && /opt/oc/bin/python -c 'import docopt, yaml, requests; print("OPENSTACK-OK", requests.__version__)'
rc=$?; rm -rf /opt/oc /opt/oc-reqs.txt /opt/oc-constraints.txt; exit $rc
"""
    result = checked_chroot(debian_root, mirror, tmp_path, check, script)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "target: cp311-manylinux_2_36_x86_64" in output
    assert "ok: cp311-manylinux_2_36_x86_64: " in output
    assert "pip 23.0.1 from /opt/oc/" in output  # bookworm's own, from python3 -m venv
    assert "OPENSTACK-OK 2.32.3" in output
    assert diff(pristine, snapshot(debian_root)) == []
