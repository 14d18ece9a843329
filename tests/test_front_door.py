"""The README's install-and-run command, verbatim, as root in a fresh Debian with only its own Python."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.network]

PROJECT = Path(__file__).resolve().parent.parent
README = PROJECT / "README.md"
#: What a fresh clone holds, less what building and testing leave behind.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "__pycache__", ".*_cache", "*.egg-info", "build", "dist", "results", ".work"
)
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def readme_command(marker: str) -> str:
    """The line after ``<!-- MARKER`` and its ```` ```sh ```` fence, as .ci/run finds its test command."""
    found = re.search(rf"<!-- {re.escape(marker)}[^\n]*-->\n```sh\n([^\n]+)\n```", README.read_text())
    if found is None:
        pytest.fail(f"README.md has no command after '<!-- {marker}'")
    return found.group(1)


def in_root(root: Path, script: str, **popen: object) -> subprocess.Popen[bytes]:
    """``script`` run by bash as root in ``root``, from the project's copy, with a login's bare environment.

    Mounts (/proc) live in a private mount namespace and vanish with it.
    """
    (root / "root" / "front-door.sh").write_text(f"cd /root/pipdepot\n{script}\n")
    chroot = f'exec chroot "$1" /usr/bin/env -i HOME=/root PATH={_PATH} LANG=C.UTF-8 bash /root/front-door.sh'
    script_of_unshare = f'mount -t proc proc "$1/proc" && {chroot}'
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script_of_unshare, "sh", str(root)],
        **popen,
    )


@pytest.fixture(scope="module")
def fresh_root(debian_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the session's bookworm root (it is shared), with the project's source in /root/pipdepot.

    The root reaches the package registries as this machine does: through its resolver and,
    here, a TLS-inspecting proxy whose CA the host trusts; the root gets both, nothing else.
    """
    root = tmp_path_factory.mktemp("front-door") / "root"
    subprocess.run(["cp", "-a", str(debian_root), str(root)], check=True)
    for name in ("etc/resolv.conf", "etc/ssl/certs/ca-certificates.crt"):
        (root / name).unlink(missing_ok=True)
        shutil.copyfile(Path("/", name), root / name)
    shutil.copytree(PROJECT, root / "root" / "pipdepot", ignore=_NOT_SOURCE)
    assert not (root / "root" / ".local").exists()
    yield root
    shutil.rmtree(root)  # 300 MB: a Debian and a venv


def health(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            answer: dict[str, object] = json.load(response)
            return answer
    except (OSError, urllib.error.URLError, ValueError):
        return None


def test_the_readmes_old_command_meets_pep_668_in_this_root(fresh_root: Path, tmp_path: Path) -> None:
    """The root is a real PEP 668 Debian: the command this README used to give fails there."""
    log = tmp_path / "pip.log"
    with log.open("wb") as out:
        process = in_root(fresh_root, "python3 -m pip install .", stdout=out, stderr=subprocess.STDOUT)
        assert process.wait(timeout=300) != 0
    assert "externally-managed-environment" in log.read_text()


def test_the_readme_install_command_runs_verbatim_and_serves_on_the_default_address(
    fresh_root: Path, tmp_path: Path
) -> None:
    command = readme_command("install-command")
    assert command.endswith("pipdepot serve"), command  # install, then run on the defaults
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 3141)) == 0:
            pytest.fail("something on this machine already listens on 127.0.0.1:3141, pipdepot's default")
    log = tmp_path / "front-door.log"
    with log.open("wb") as out:
        process = in_root(fresh_root, command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 900
        answer = None
        while time.monotonic() < deadline and process.poll() is None:
            answer = health("http://127.0.0.1:3141/+health")
            if answer is not None:
                break
            time.sleep(1)
        output = log.read_text(errors="replace")
        assert answer == {"status": "ok", "server": "pipdepot", "offline": False}, (
            f"exit {process.poll()}:\n{output[-5000:]}"
        )
        assert (fresh_root / "root" / ".local" / "pipdepot" / "bin" / "pipdepot").is_file()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # its own session: the shell, pip's children, the server
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
    output = log.read_text(errors="replace")
    assert "listening on http://127.0.0.1:3141/simple/" in output, output[-5000:]
    assert health("http://127.0.0.1:3141/+health") is None  # stopped
