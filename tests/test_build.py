"""`pipdepot build` with a real buildah: an unmodified Containerfile installs from the mirror, no trace kept.

The base image is made once from the session's debootstrapped Debian root (no registry is
reachable here). buildah's default runtime, crun, fails on this host's cgroup layout, so RUN
steps use chroot isolation: they share the host's network, which is how an online build
reaches `pipdepot serve` on 127.0.0.1; the offline build runs in a network namespace of its
own (and pipdepot gives the builder yet another).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.buildah import Buildah, import_base
from tests.conftest import clean_environ
from tests.depot import Depot
from tests.fake_upstream import FakeUpstream
from tests.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.root, pytest.mark.slow]

BASE = "localhost/debian-python:bookworm"

CONTAINERFILE = f"""\
FROM {BASE}
RUN python3 -m venv /opt/app && /opt/app/bin/pip install --no-cache-dir --no-input probe-app \\
 && /opt/app/bin/python -c "import probe_app, probe_lib; print('PIP-OK', probe_lib.VERSION)"
"""
#: uv too, from the mirror, reading the mounted uv.toml.
UV_STEP = """\
RUN /opt/app/bin/pip install --no-cache-dir --no-input uv \\
 && UV_NO_CACHE=1 /opt/app/bin/uv pip install --python /opt/app/bin/python probe-uv \\
 && /opt/app/bin/python -c "import probe_uv; print('UV-OK', probe_uv.VERSION)"
"""
#: What no layer, config or history of a built image may hold.
FORBIDDEN = ("pipdepot", "/tmp/pypi", "Mounted read-only")


@dataclass
class Images:
    """The session's buildah storage with the base image, and the base's paths."""

    buildah: Buildah
    base_paths: dict[str, int]
    base_layers: frozenset[str]
    #: Paths any buildah build adds (its own mount points, such as /etc/hosts), pipdepot or not.
    builder_own: frozenset[str]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, debian_root: Path) -> Iterator[Images]:
    buildah = Buildah(tmp_path_factory.mktemp("build-containers"))
    try:
        import_base(buildah, debian_root, BASE)
        layers = json.loads(buildah("inspect", "--type", "image", BASE))["OCIv1"]["rootfs"]["diff_ids"]
        base_paths = image_paths(buildah, BASE)
        control = tmp_path_factory.mktemp("build-control")
        (control / "Containerfile").write_text(f"FROM {BASE}\nRUN true\n")
        buildah("bud", "--isolation", "chroot", "--quiet", "--tag", "localhost/control", str(control))
        own = frozenset(image_paths(buildah, "localhost/control")) - frozenset(base_paths)
        yield Images(buildah, base_paths, frozenset(layers), own)
    finally:
        buildah.close()


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory, uv_wheel: Path) -> list[Path]:
    dist = tmp_path_factory.mktemp("build-dist")
    return [
        build_wheel(dist, "probe-lib", "2.0"),
        build_wheel(dist, "probe-app", "1.0", requires=("probe-lib>=2",)),
        build_wheel(dist, "probe-uv", "3.0"),
        uv_wheel,
    ]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, wheels: list[Path]) -> Path:
    """A real pipdepot mirror (``pipdepot add``), so ``--check`` can prove it."""
    base = tmp_path_factory.mktemp("build-mirror")
    mirror = base / "mirror"
    subprocess.run(
        [sys.executable, "-m", "pipdepot", "add", *map(str, wheels), "--mirror", str(mirror)],
        env=clean_environ(HOME=str(base)),
        capture_output=True,
        check=True,
    )
    return mirror


def image_paths(buildah: Buildah, image: str) -> dict[str, int]:
    """Every path of the image's filesystem and its size (-1: not a regular file)."""
    container = buildah("from", "--pull=never", "--quiet", image)
    try:
        root = Path(buildah("mount", container))
        paths = {}
        for directory, names, files in os.walk(root):
            for name in names + files:
                path = Path(directory, name)
                inner = "/" + str(path.relative_to(root))
                paths[inner] = path.lstat().st_size if path.is_file() and not path.is_symlink() else -1
        buildah("umount", container)
        return paths
    finally:
        buildah("rm", container)


def new_layers(images: Images, image: str) -> list[Path]:
    """The diff directories of the image's layers that the base image does not have.

    Read from the overlay storage itself (containers-storage's JSON records): pushing the
    image to an OCI layout to read its tars copies the whole base again, for seconds.
    """
    storage = images.buildah.directory / "storage"
    records = json.loads((storage / "overlay-images" / "images.json").read_text())
    image_id = images.buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", image)
    layers = {
        layer["id"]: layer for layer in json.loads((storage / "overlay-layers" / "layers.json").read_text())
    }
    layer: str | None = next(record["layer"] for record in records if record["id"] == image_id)
    found = []
    while layer is not None and layers[layer].get("diff-digest") not in images.base_layers:
        found.append(storage / "overlay" / layer / "diff")
        layer = layers[layer].get("parent")
    assert found
    return found


def assert_no_trace(images: Images, image: str, *secrets: str) -> None:
    """The config, history and new layers name neither pipdepot nor the mirror; no stub remains."""
    forbidden = (*FORBIDDEN, *secrets)
    inspected = images.buildah("inspect", "--type", "image", image)
    for word in forbidden:
        assert word not in inspected, word
    for diff in new_layers(images, image):
        for directory, names, files in os.walk(diff):
            for entry in names + files:
                path = Path(directory, entry)
                name = "/" + str(path.relative_to(diff))
                if any(part in name for part in ("pip.conf", "uv.toml", "/tmp/pypi", "/etc/uv")):
                    # the builder's empty mount points in the RUN layer, their whiteouts in the last one
                    assert path.is_dir() or path.lstat().st_size == 0, name
                    continue
                for word in forbidden:
                    assert word not in name, name
                own = "/site-packages/probe_" in name  # the test's wheels say they were made by its tests
                if path.is_file() and not path.is_symlink() and not own:
                    data = path.read_bytes()
                    for word in forbidden:
                        assert word.encode() not in data, (name, word)
    paths = image_paths(images.buildah, image)
    assert set(images.base_paths) <= set(paths)
    added = set(paths) - set(images.base_paths) - images.builder_own
    assert all(p.startswith("/opt/app") for p in added), sorted(added)  # the RUN steps' own
    for stub in ("/etc/pip.conf", "/etc/uv", "/tmp/pypi"):
        assert stub not in paths


def ours(temporary: Path) -> list[Path]:
    """pipdepot's temporary directories in ``temporary`` (the builder makes its own there too)."""
    return [path for path in temporary.iterdir() if path.name.startswith("pipdepot-")]


def build_argv(images: Images, context: Path, tag: str, *pipdepot_args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipdepot",
        "build",
        *pipdepot_args,
        "--",
        *images.buildah.prefix,
        "bud",
        "--isolation",
        "chroot",
        "--tag",
        tag,
        str(context),
    ]


def context_with(tmp_path: Path, text: str) -> Path:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Containerfile").write_text(text)
    return context


def run(argv: list[str], tmp_path: Path, *, offline: bool) -> subprocess.CompletedProcess[str]:
    temporary = tmp_path / "tmp"
    temporary.mkdir(exist_ok=True)
    env = clean_environ(HOME=str(tmp_path), TMPDIR=str(temporary))
    if offline:
        argv = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=600)


def test_offline_an_unmodified_containerfile_installs_from_the_mirror_and_the_image_keeps_no_trace(
    images: Images, mirror: Path, tmp_path: Path
) -> None:
    context = context_with(tmp_path, CONTAINERFILE + UV_STEP)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("probe-app\nprobe-uv\n")
    args = ("--offline", "--mirror-dir", str(mirror), "--check", str(requirements))
    result = run(build_argv(images, context, "localhost/app:offline", *args), tmp_path, offline=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"read from the base image {BASE}" in output  # --check: the image's own target
    assert "CPython 3.11" in output
    assert "Looking in indexes: file:///tmp/pypi" in output
    assert "PIP-OK 2.0" in output
    assert "UV-OK 3.0" in output
    assert "removed the empty mount points" in output
    assert ours(tmp_path / "tmp") == []
    assert_no_trace(images, "localhost/app:offline", str(mirror))


def test_online_through_serve_and_the_image_never_names_the_mirror(
    images: Images, wheels: list[Path], tmp_path: Path
) -> None:
    upstream = FakeUpstream()
    for wheel in wheels[:2]:
        upstream.add(wheel)
    upstream.start()
    depot = Depot(
        tmp_path / "depot-mirror", tmp_path / "serve.log", args=("--upstream", upstream.url)
    ).start()
    try:
        context = context_with(tmp_path, CONTAINERFILE)
        args = ("--mirror-url", depot.index, "--no-pypi", "--mirror-dir", str(tmp_path / "none"))
        result = run(build_argv(images, context, "localhost/app:online", *args), tmp_path, offline=False)
    finally:
        depot.stop()
        upstream.stop()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"Looking in indexes: {depot.url}/+auto/simple/" in output  # the target view (docs/SERVER.md)
    assert "PIP-OK 2.0" in output
    assert "GET /+auto/simple/probe-app/ 200" in depot.log_text()
    assert_no_trace(images, "localhost/app:online", f"127.0.0.1:{depot.port}")


def test_a_failing_run_step_exits_with_the_builder_s_status_and_leaves_no_temporary_directory(
    images: Images, mirror: Path, tmp_path: Path
) -> None:
    # 7 only where the step saw the mounted pip.conf (grep fails with 1 otherwise); buildah exits with it
    context = context_with(tmp_path, f"FROM {BASE}\nRUN grep -q file:///tmp/pypi /etc/pip.conf && exit 7\n")
    result = run(
        build_argv(images, context, "localhost/app:fails", "--offline", "--mirror-dir", str(mirror)),
        tmp_path,
        offline=True,
    )
    assert result.returncode == 7, result.stdout + result.stderr
    assert "exit status 7" in result.stderr
    assert ours(tmp_path / "tmp") == []


def test_check_stops_before_building_when_the_mirror_lacks_a_requirement(
    images: Images, mirror: Path, tmp_path: Path
) -> None:
    context = context_with(tmp_path, CONTAINERFILE)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("probe-app\nnot-in-the-mirror\n")
    args = ("--offline", "--mirror-dir", str(mirror), "--check", str(requirements))
    result = run(build_argv(images, context, "localhost/app:unchecked", *args), tmp_path, offline=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "STEP 1/2" not in result.stdout
    assert "localhost/app:unchecked" not in images.buildah("images", "--format", "{{.Name}}:{{.Tag}}")


def test_the_buildkit_secret_recipe_with_buildah(images: Images, wheels: list[Path], tmp_path: Path) -> None:
    upstream = FakeUpstream()
    for wheel in wheels[:2]:
        upstream.add(wheel)
    upstream.start()
    depot = Depot(
        tmp_path / "depot-mirror", tmp_path / "serve.log", args=("--upstream", upstream.url)
    ).start()
    try:
        plan = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipdepot",
                "plan",
                "--mirror-url",
                depot.index,
                "--no-pypi",
                "--format",
                "pip.conf",
            ],
            env=clean_environ(HOME=str(tmp_path)),
            capture_output=True,
            text=True,
            check=True,
        )
        secret = tmp_path / "pip.conf"
        secret.write_text(plan.stdout)
        context = context_with(
            tmp_path,
            f"FROM {BASE}\n"
            "RUN --mount=type=secret,id=pipconf,target=/etc/pip.conf python3 -m venv /opt/app \\\n"
            " && /opt/app/bin/pip install --no-cache-dir probe-app\n",
        )
        result = subprocess.run(
            [
                *images.buildah.prefix,
                "bud",
                "--isolation",
                "chroot",
                "--secret",
                f"id=pipconf,src={secret}",
                "--tag",
                "localhost/app:secret",
                str(context),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
    finally:
        depot.stop()
        upstream.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Looking in indexes: {depot.url}/+auto/simple/" in result.stdout + result.stderr
    assert "GET /+auto/simple/probe-app/ 200" in depot.log_text()
    inspected = images.buildah("inspect", "--type", "image", "localhost/app:secret")
    assert f"127.0.0.1:{depot.port}" not in inspected
    assert "/etc/pip.conf" not in image_paths(images.buildah, "localhost/app:secret")


def test_sigterm_during_a_run_step_stops_the_builder_and_leaves_no_temporary_directory(
    images: Images, mirror: Path, tmp_path: Path
) -> None:
    context = context_with(tmp_path, f"FROM {BASE}\nRUN echo 'STEP-STAR''TED' && sleep 120\n")
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    argv = build_argv(images, context, "localhost/app:stopped", "--offline", "--mirror-dir", str(mirror))
    log = tmp_path / "build.log"
    with log.open("wb") as stream:
        process = subprocess.Popen(
            ["unshare", "--net", *argv],
            env=clean_environ(HOME=str(tmp_path), TMPDIR=str(temporary)),
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while b"STEP-STARTED" not in log.read_bytes() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.2)
        assert ours(temporary)  # the mounted files are there while the step runs
        process.send_signal(signal.SIGTERM)  # unshare without --fork execs pipdepot: the same process
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode != 0
    # buildah, killed mid-step, may leave its own buildah* directory there: not pipdepot's
    assert ours(temporary) == [], log.read_text()
    assert "localhost/app:stopped" not in images.buildah("images", "--format", "{{.Name}}:{{.Tag}}")
