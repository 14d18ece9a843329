"""The Containerfile, built with buildah from a debootstrapped base, run, and asked for /+health.

Its dependencies come from PyPI through a pipdepot on this machine, as the Containerfile says.
podman's run fails on this VM (runc cannot set rlimits without CAP_SYS_RESOURCE), so the image
is run with `buildah run --runtime runc`, its entrypoint's command as the image gives it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.buildah import Buildah, import_base
from tests.depot import Depot, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.network]

PROJECT = Path(__file__).resolve().parent.parent
BASE = "localhost/debian-python:bookworm"
IMAGE = "localhost/pipdepot:test"


@pytest.fixture
def buildah(tmp_path: Path) -> Iterator[Buildah]:
    tool = Buildah(tmp_path / "containers")
    try:
        yield tool
    finally:
        tool.close()


def wait_for_health(url: str, process: subprocess.Popen[bytes]) -> bytes:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body: bytes = response.read()
                return body
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if process.poll() is not None:
                break
            time.sleep(0.2)
    pytest.fail(f"the container did not answer {url}")


def test_the_image_builds_runs_as_a_user_and_answers_health(
    tmp_path: Path, buildah: Buildah, debian_root: Path
) -> None:
    import_base(buildah, debian_root, BASE)
    context = tmp_path / "context"
    context.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(context),
            str(PROJECT),
        ],
        check=True,
        capture_output=True,
    )
    depot = Depot(tmp_path / "build-mirror", tmp_path / "build-serve.log").start()  # upstream: PyPI
    try:
        buildah(
            "bud",
            "--isolation",
            "chroot",
            "--format",
            "docker",
            "--build-arg",
            f"BASE={BASE}",
            "--build-arg",
            f"PIP_INDEX_URL={depot.index}",
            "--tag",
            IMAGE,
            "--file",
            str(PROJECT / "Containerfile"),
            str(context),
            timeout=600,
        )
    finally:
        depot.stop()
    assert "GET /simple/aiohttp/ 200" in depot.log_text()  # the build's pip used the mirror

    config = json.loads(buildah("inspect", "--type", "image", IMAGE))["Docker"]["config"]
    assert config["User"] == "pipdepot"
    assert config["Entrypoint"] == ["/opt/pipdepot/bin/pipdepot"]
    assert config["Cmd"] == ["serve"]
    assert list(config["Volumes"]) == ["/var/lib/pipdepot/mirror"]
    health = config["Healthcheck"]["Test"]
    assert health[0] == "CMD"

    volume = tmp_path / "volume"
    volume.mkdir()
    os.chown(volume, 3141, 3141)
    port = free_port()
    container = buildah("from", IMAGE)
    run = [
        *buildah.prefix,
        "run",
        "--runtime",
        "runc",
        "--network",
        "host",
        "--volume",
        f"{volume}:/var/lib/pipdepot/mirror",
        "--env",
        f"PIPDEPOT_PORT={port}",
        container,
        "--",
        *config["Entrypoint"],
        *config["Cmd"],
    ]
    log = tmp_path / "container.log"
    with log.open("wb") as stream:
        process = subprocess.Popen(run, stdout=stream, stderr=stream, start_new_session=True)
    try:
        body = wait_for_health(f"http://127.0.0.1:{port}/+health", process)
        assert json.loads(body) == {"status": "ok", "server": "pipdepot", "offline": False}
        check = subprocess.run(
            [
                *buildah.prefix,
                "run",
                "--runtime",
                "runc",
                "--network",
                "host",
                "--env",
                f"PIPDEPOT_PORT={port}",
                container,
                "--",
                *health[1:],
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert check.returncode == 0, check.stderr  # the image's own health check passes
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
    owners = {(path.stat().st_uid, path.stat().st_gid) for path in [volume, *volume.rglob("*")]}
    assert owners == {(3141, 3141)}  # pipdepot wrote its state there, as its own user
    assert (volume / ".pipdepot").is_dir()
    assert "listening on http://0.0.0.0:" in log.read_text()
