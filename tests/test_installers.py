"""The installers build roots carry, each installing offline from the mirror three ways.

pip 20.3.4 (Debian bullseye), 22.0.2 (Ubuntu 22.04), 22.3.1, 23.0.1 (bookworm), 23.1.2, 24.0
(Ubuntu 24.04), 25.1.1 (Debian trixie), the newest pip and the newest uv, from PyPI as wheels,
each install a set with a dependency whose metadata Name is not its normalized name (``Foo_Core``
for foo-core, as pydantic_core), a legacy ``setup.py`` sdist and a pyproject sdist, from (a) the
``file://`` tree, (b) ``serve --offline``, (c) a warm online ``serve``. The mirror is filled as
users fill it: ``pipdepot sync``, then installs through the online ``serve``. Offline means the
fake upstream is stopped. Bookworm's own pip does the same inside a debootstrapped root.
"""

from __future__ import annotations

import ensurepip
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import clean_environ, download_wheel
from tests.depot import Depot
from tests.fake_upstream import FakeUpstream
from tests.roots import diff, mounts_under, snapshot
from tests.wheels import build_sdist, build_setuptools_sdist, build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.slow]

PIPS = ("20.3.4", "22.0.2", "22.3.1", "23.0.1", "23.1.2", "24.0", "25.1.1", "newest")
#: Build requirements of the sdists, real wheels from PyPI (wheel 0.46 would need packaging too).
BUILD_TOOLS = ("setuptools==80.9.0", "wheel==0.45.1")
REQUIREMENT = "foo-app"
#: Modules the set installs, and the version each must have.
MODULES = {"foo_app": "1.0", "Foo_Core": "1.0", "legacy_src": "1.0", "modern_src": "1.0"}
PARALLEL = 3


@dataclass(frozen=True)
class Installer:
    """One installer: ``pip <version>`` run from its venv, or ``uv``."""

    name: str
    venv: Path | None  # pip: the venv it is installed in, copied for each install
    uv: Path | None = None

    def install(self, index: str, work: Path) -> subprocess.CompletedProcess[str]:
        """Install the set into a fresh environment under ``work`` from ``index`` alone."""
        work.mkdir(parents=True)
        environ = clean_environ(HOME=str(work), TMPDIR=str(work))
        if self.uv is not None:
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(work / "env")], check=True)
            argv = [str(self.uv), "pip", "install", "--no-config", "--no-cache", "--python"]
            argv += [str(work / "env" / "bin" / "python"), "--index-url", index, REQUIREMENT]
        else:
            assert self.venv is not None
            shutil.copytree(self.venv, work / "env", symlinks=True)
            argv = [str(work / "env" / "bin" / "python"), "-m", "pip", "install", "--no-cache-dir"]
            argv += ["--disable-pip-version-check", "--no-input", "--index-url", index, REQUIREMENT]
        result = subprocess.run(argv, env=environ, capture_output=True, text=True, check=False, timeout=600)
        if result.returncode == 0:
            probe = "; ".join(f"import {m}; print({m}.VERSION)" for m in MODULES)
            versions = subprocess.run(
                [str(work / "env" / "bin" / "python"), "-c", probe],
                capture_output=True,
                text=True,
                check=False,
                env={"PATH": "/usr/bin:/bin"},
            )
            if versions.stdout.split() != list(MODULES.values()):
                return subprocess.CompletedProcess(argv, 99, result.stdout, versions.stderr)
        return result


def pip_venv(wheel: Path, venv: Path) -> Path:
    """A venv as ``python3 -m venv`` makes it on Python < 3.12 (pip, setuptools, no wheel), with this pip.

    The wheels are unpacked into its site-packages: no index involved. setuptools is the one
    this Python's ensurepip bundles, as in a root's venv.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    bundled = Path(ensurepip.__file__).parent / "_bundled"
    for archive_path in [wheel, *bundled.glob("setuptools-*.whl")]:
        with zipfile.ZipFile(archive_path) as archive:
            archive.extractall(venv / "lib" / version / "site-packages")
    return venv


@pytest.fixture(scope="session")
def installers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Installer]:
    """Every pip of the matrix in its own venv, and the newest uv: downloaded once per session."""
    base = tmp_path_factory.mktemp("installers")
    wanted = {f"pip {v}": ("pip" if v == "newest" else f"pip=={v}") for v in PIPS} | {"uv": "uv"}
    with ThreadPoolExecutor(PARALLEL) as pool:
        wheels = dict(
            zip(wanted, pool.map(lambda r: download_wheel(r, base / r), wanted.values()), strict=True)
        )
    found: dict[str, Installer] = {}
    for name, wheel in wheels.items():
        if name == "uv":
            with zipfile.ZipFile(wheel) as archive:
                member = next(n for n in archive.namelist() if n.endswith(".data/scripts/uv"))
                binary = base / "uv-bin" / "uv"
                binary.parent.mkdir()
                binary.write_bytes(archive.read(member))
                binary.chmod(0o755)
            version = wheel.name.split("-")[1]
            found[f"uv {version}"] = Installer(f"uv {version}", None, binary)
        else:
            version = wheel.name.split("-")[1]
            label = f"pip {version}"
            found[label] = Installer(label, pip_venv(wheel, base / f"venv-{version}"))
    return found


@pytest.fixture(scope="session")
def matrix_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeUpstream, Path]]:
    """The fake upstream serving the set and the real build tools, and a requirements file for it."""
    base = tmp_path_factory.mktemp("matrix-set")
    dist = base / "dist"
    upstream = FakeUpstream(with_metadata=True)
    upstream.add(build_wheel(dist, "foo-app", "1.0", requires=("foo-core==1.0", "legacy-src", "modern-src")))
    upstream.add(build_wheel(dist, "Foo_Core", "1.0"))  # METADATA Name: Foo_Core, project foo-core
    upstream.add(build_setuptools_sdist(dist, "legacy-src", "1.0"))
    upstream.add(build_sdist(dist, "modern-src", "1.0", buildable=True, build_requires=("setuptools>=40.8",)))
    for requirement in BUILD_TOOLS:
        upstream.add(download_wheel(requirement, base / requirement))
    upstream.start()
    requirements = base / "requirements.txt"
    requirements.write_text(f"{REQUIREMENT}\n")
    yield upstream, requirements
    upstream.stop()


@pytest.fixture(scope="session")
def filled_mirror(
    tmp_path_factory: pytest.TempPathFactory,
    matrix_set: tuple[FakeUpstream, Path],
    installers: dict[str, Installer],
) -> tuple[Path, dict[str, str]]:
    """The mirror after `sync` and after every installer went through the online `serve` (c).

    Yields the mirror and each installer's result through the online serve: pass or its error.
    """
    upstream, requirements = matrix_set
    base = tmp_path_factory.mktemp("matrix-mirror")
    mirror = base / "mirror"
    sync = ["sync", "-r", str(requirements), "--python-version", "3.11", "--mirror", str(mirror)]
    result = subprocess.run(
        [sys.executable, "-m", "pipdepot", *sync, "--upstream", upstream.url],
        env=clean_environ(HOME=str(base)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    depot = Depot(mirror, base / "online.log", ("--upstream", upstream.url)).start()
    try:
        online = run_all(installers, depot.index, base / "online")
    finally:
        depot.stop()
    upstream.stop()  # from here on, nothing can come from upstream
    return mirror, online


def run_all(installers: dict[str, Installer], index: str, work: Path) -> dict[str, str]:
    """Every installer's result from ``index``: ``ok`` or the end of its output."""

    def one(installer: Installer) -> str:
        result = installer.install(index, work / installer.name.replace(" ", "-"))
        return "ok" if result.returncode == 0 else (result.stdout + result.stderr)[-1500:]

    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = pool.map(one, installers.values())
        return dict(zip(installers, outcomes, strict=True))


def assert_all_ok(results: dict[str, str]) -> None:
    failed = {name: output for name, output in results.items() if output != "ok"}
    assert not failed, "\n\n".join(f"== {name} failed:\n{output}" for name, output in failed.items())


def test_every_installer_through_a_warm_online_serve(filled_mirror: tuple[Path, dict[str, str]]) -> None:
    assert_all_ok(filled_mirror[1])


def test_every_installer_from_the_file_tree(
    filled_mirror: tuple[Path, dict[str, str]], installers: dict[str, Installer], tmp_path: Path
) -> None:
    mirror, _ = filled_mirror
    page = (mirror / "foo-core" / "index.html").read_text()
    assert "data-core-metadata=" in page
    assert "data-dist-info-metadata" not in page
    assert_all_ok(run_all(installers, mirror.as_uri(), tmp_path))


def test_every_installer_through_serve_offline(
    filled_mirror: tuple[Path, dict[str, str]], installers: dict[str, Installer], tmp_path: Path
) -> None:
    mirror, _ = filled_mirror
    depot = Depot(mirror, tmp_path / "offline.log", ("--offline",)).start()
    try:
        assert_all_ok(run_all(installers, depot.index, tmp_path))
    finally:
        depot.stop()


@pytest.mark.root
def test_bookworms_own_pip_in_the_root_from_the_mounted_tree(
    debian_root: Path, filled_mirror: tuple[Path, dict[str, str]], matrix_set: tuple[FakeUpstream, Path]
) -> None:
    """`python3 -m venv` in bookworm gives pip 23.0.1: it installs the set from /tmp/pypi, no network."""
    mirror, _ = filled_mirror
    _, requirements = matrix_set
    pristine = snapshot(debian_root)
    script = (
        "python3 -m venv /opt/matrix && /opt/matrix/bin/pip --version"
        f" && /opt/matrix/bin/pip install --no-cache-dir --no-input {REQUIREMENT}"
        " && /opt/matrix/bin/python -c '"
        + "; ".join(f"import {m}; print({m}.VERSION)" for m in MODULES)
        + "'; rc=$?; rm -rf /opt/matrix; exit $rc"
    )
    command = [sys.executable, "-m", "pipdepot", "chroot", str(debian_root), "--offline"]
    command += ["--mirror-dir", str(mirror), "--check", str(requirements), "--", "sh", "-c", script]
    result = subprocess.run(
        ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command],
        env=clean_environ(HOME=str(mirror.parent)),
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "pip 23.0.1" in output
    assert "Looking in indexes: file:///tmp/pypi" in output
    assert result.stdout.split()[-len(MODULES) :] == list(MODULES.values())
    assert mounts_under(debian_root) == []
    assert diff(pristine, snapshot(debian_root)) == []
