"""sync and check with the inputs real image builds use: build environments as pip makes them,
constraints by URL, a pins file mirrored pin by pin, path requirements, and their output.

Real pipdepot processes, a real upstream on loopback (tests/fake_upstream.py), real setuptools,
wheel and pip 23.0.1 (Debian bookworm's) from the package index, fetched once per session.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from typing import TYPE_CHECKING

import pytest

from pipdepot.core.targets import make_targets
from pipdepot.fill.remote import RemoteError, fetch_text
from pipdepot.operations.sync import SyncOptions, read_inputs
from pipdepot.operations.sync import sync as run_sync
from tests.conftest import clean_environ, download_wheel
from tests.depot import fresh_venv, installed, pip_install
from tests.fake_upstream import FakeUpstream
from tests.test_mirror_ops import listed, missing_lines
from tests.wheels import _BACKEND, build_sdist, build_setuptools_sdist, build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.conftest import PipdepotRunner

#: Real build tools and Debian bookworm's pip; setuptools 69.5.1 is one whose
#: get_requires_for_build_wheel still returns ["wheel"].
REAL = ("setuptools==80.9.0", "setuptools==69.5.1", "wheel==0.45.1", "pip==23.0.1")


@pytest.fixture(scope="session")
def real_wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("real-wheels")
    wheels = [download_wheel(requirement, directory / requirement) for requirement in REAL]
    return {p.name: p for p in wheels}


@pytest.fixture(scope="session")
def old_pip(real_wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv whose pip is 23.0.1 and which has neither setuptools nor wheel (bookworm's venv)."""
    python = fresh_venv(tmp_path_factory.mktemp("pip23") / "venv")
    wheel = real_wheels["pip-23.0.1-py3-none-any.whl"]
    subprocess.run(
        [str(python), f"{wheel}/pip", "install", "--no-index", "--no-cache-dir", "-q", str(wheel)],
        env=clean_environ(),
        check=True,
        capture_output=True,
    )
    return python


def old_pip_install(python: Path, index: str, *requirements: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--index-url",
            index,
            *requirements,
        ],
        env=clean_environ(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def serve(upstream: FakeUpstream, directory: Path, *paths: Path) -> FakeUpstream:
    for path in paths:
        upstream.add(path)
    return upstream.start()


@pytest.fixture
def stop_after() -> Iterator[list[FakeUpstream]]:
    servers: list[FakeUpstream] = []
    yield servers
    for server in servers:
        server.stop()


def sync(run: PipdepotRunner, upstream: FakeUpstream, mirror: Path, *args: str, check: bool = True) -> str:
    result = run("sync", "--mirror", str(mirror), "--upstream", upstream.url, *args, check=check)
    return result.stdout + result.stderr


def requirements_file(directory: Path, text: str, name: str = "requirements.txt") -> Path:
    path = directory / name
    path.write_text(text)
    return path


# -- build environments -----------------------------------------------------------------------


def test_a_legacy_sdist_installs_offline_with_bookworms_pip(
    run_pipdepot: PipdepotRunner,
    real_wheels: dict[str, Path],
    old_pip: Path,
    stop_after: list[FakeUpstream],
    tmp_path: Path,
) -> None:
    """docopt 0.6.2's case: no pyproject.toml, so pip 23.x builds it with setuptools AND wheel."""
    dist = tmp_path / "dist"
    upstream = FakeUpstream(with_metadata=True)
    stop_after.append(upstream)
    serve(
        upstream,
        dist,
        build_setuptools_sdist(dist, "oldstyle", "0.6.2"),
        real_wheels["setuptools-80.9.0-py3-none-any.whl"],
        real_wheels["wheel-0.45.1-py3-none-any.whl"],
    )
    mirror = tmp_path / "mirror"
    wanted = requirements_file(tmp_path, "oldstyle==0.6.2\n")
    sync(run_pipdepot, upstream, mirror, "-r", str(wanted))
    assert listed(mirror) == {
        "oldstyle-0.6.2.tar.gz",
        "setuptools-80.9.0-py3-none-any.whl",
        "wheel-0.45.1-py3-none-any.whl",
    }
    upstream.stop()
    run_pipdepot("check", "-r", str(wanted), "--mirror", str(mirror))
    result = old_pip_install(old_pip, mirror.as_uri(), "oldstyle==0.6.2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(old_pip, "oldstyle") == "0.6.2"

    # check is exact: without wheel, it says so
    next(mirror.glob("packages/**/wheel-0.45.1-py3-none-any.whl")).unlink()
    result = run_pipdepot("check", "-r", str(wanted), "--mirror", str(mirror), check=False)
    assert result.returncode == 1
    assert missing_lines(result.stdout) == [
        (
            "missing: wheel 0.45.1 for cp311-host: wheel-0.45.1-py3-none-any.whl is recorded but missing"
            " or damaged on disk"
        )
    ]


def test_setuptools_before_70_1_asks_for_wheel_at_build_time(
    run_pipdepot: PipdepotRunner, real_wheels: dict[str, Path], stop_after: list[FakeUpstream], tmp_path: Path
) -> None:
    """A pyproject sdist on setuptools.build_meta pinned below 70.1: its backend returns ["wheel"]."""
    dist = tmp_path / "dist"
    pyproject = '[build-system]\nrequires = ["setuptools<70"]\nbuild-backend = "setuptools.build_meta"\n'
    upstream = FakeUpstream(with_metadata=True)
    stop_after.append(upstream)
    serve(
        upstream,
        dist,
        build_setuptools_sdist(dist, "pinnedtools", "1.0", pyproject=pyproject),
        real_wheels["setuptools-69.5.1-py3-none-any.whl"],
        real_wheels["setuptools-80.9.0-py3-none-any.whl"],
        real_wheels["wheel-0.45.1-py3-none-any.whl"],
    )
    mirror = tmp_path / "mirror"
    wanted = requirements_file(tmp_path, "pinnedtools\n")
    sync(run_pipdepot, upstream, mirror, "-r", str(wanted))
    assert "wheel-0.45.1-py3-none-any.whl" in listed(mirror)
    assert "setuptools-69.5.1-py3-none-any.whl" in listed(mirror)
    upstream.stop()
    run_pipdepot("check", "-r", str(wanted), "--mirror", str(mirror))
    python = fresh_venv(tmp_path / "venv")
    pip_install(python, mirror.as_uri(), "pinnedtools")
    assert installed(python, "pinnedtools") == "1.0"


def test_each_sdist_has_its_own_build_environment(
    run_pipdepot: PipdepotRunner, stop_after: list[FakeUpstream], tmp_path: Path
) -> None:
    """requests-kerberos' case: gssapi builds with Cython 3.2.4, krb5 with 3.2.1; pip builds both.

    A build requirement that is itself an sdist (srcbuilt) has its own build environment (helper),
    and a cycle (selfhost builds with itself) ends the walk instead of looping.
    """
    dist = tmp_path / "dist"
    upstream = FakeUpstream(with_metadata=True)
    stop_after.append(upstream)
    serve(
        upstream,
        dist,
        build_wheel(dist, "kerberos-client", "1.0", requires=("gss", "krb")),
        build_sdist(dist, "gss", "1.0", buildable=True, build_requires=("cythonish==3.2.4", "srcbuilt")),
        build_sdist(dist, "krb", "1.0", buildable=True, build_requires=("cythonish==3.2.1",)),
        build_wheel(dist, "cythonish", "3.2.1"),
        build_wheel(dist, "cythonish", "3.2.4"),
        build_sdist(dist, "srcbuilt", "1.0", buildable=True, build_requires=("helper",)),
        build_wheel(dist, "helper", "1.0"),
        build_sdist(dist, "selfhost", "1.0", buildable=True, build_requires=("selfhost",)),
    )
    mirror = tmp_path / "mirror"
    wanted = requirements_file(tmp_path, "kerberos-client\n")
    output = sync(run_pipdepot, upstream, mirror, "-r", str(wanted))
    assert listed(mirror) == {
        "kerberos_client-1.0-py3-none-any.whl",
        "gss-1.0.tar.gz",
        "krb-1.0.tar.gz",
        "cythonish-3.2.1-py3-none-any.whl",
        "cythonish-3.2.4-py3-none-any.whl",
        "srcbuilt-1.0.tar.gz",
        "helper-1.0-py3-none-any.whl",
    }
    assert "3 build environments" in output
    cyclic = requirements_file(tmp_path, "selfhost\n", "cyclic.txt")
    sync(run_pipdepot, upstream, mirror, "-r", str(cyclic))
    assert "selfhost-1.0.tar.gz" in listed(mirror)
    upstream.stop()

    run_pipdepot("check", "-r", str(wanted), "--mirror", str(mirror))
    python = fresh_venv(tmp_path / "venv")
    pip_install(python, mirror.as_uri(), "kerberos-client")
    assert installed(python, "gss") == "1.0"
    assert installed(python, "krb") == "1.0"

    # check walks the same environments: the older Cython is one only krb's build needs
    next(mirror.glob("packages/**/cythonish-3.2.1-py3-none-any.whl")).unlink()
    result = run_pipdepot("check", "-r", str(wanted), "--mirror", str(mirror), check=False)
    assert result.returncode == 1
    assert missing_lines(result.stdout) == [
        (
            "missing: cythonish 3.2.1 for cp311-host: cythonish-3.2.1-py3-none-any.whl is recorded but"
            " missing or damaged on disk"
        )
    ]


# -- constraints by URL, and each pin on its own -------------------------------------------------


@pytest.fixture
def small(stop_after: list[FakeUpstream], tmp_path: Path) -> FakeUpstream:
    """app needs lib; salty 1.0 needs ssl>=26, while the pins say ssl 24.0."""
    dist = tmp_path / "dist"
    upstream = FakeUpstream(with_metadata=True)
    stop_after.append(upstream)
    return serve(
        upstream,
        dist,
        build_wheel(dist, "app", "1.0", requires=("lib",)),
        build_wheel(dist, "lib", "1.0"),
        build_wheel(dist, "lib", "2.0"),
        build_wheel(dist, "salty", "1.0", requires=("ssl>=26",)),
        build_wheel(dist, "ssl", "24.0"),
        build_wheel(dist, "ssl", "26.0"),
        build_wheel(dist, "unrelated", "1.0"),
    )


def test_constraints_by_url_as_a_line_and_as_an_option(
    run_pipdepot: PipdepotRunner, small: FakeUpstream, web: tuple[str, dict[str, bytes]], tmp_path: Path
) -> None:
    url, files = web
    files["/upper-constraints.txt"] = b"lib===1.0\n"
    mirror = tmp_path / "mirror"
    wanted = requirements_file(tmp_path, f"app\n-c {url}/upper-constraints.txt\n")
    sync(run_pipdepot, small, mirror, "-r", str(wanted))
    assert listed(mirror) == {"app-1.0-py3-none-any.whl", "lib-1.0-py3-none-any.whl"}

    plain = requirements_file(tmp_path, "app\n", "plain.txt")
    other = tmp_path / "other-mirror"
    sync(run_pipdepot, small, other, "-r", str(plain), "-c", f"{url}/upper-constraints.txt")
    assert listed(other) == listed(mirror)
    small.stop()
    run_pipdepot("check", "-r", str(plain), "-c", f"{url}/upper-constraints.txt", "--mirror", str(mirror))

    result = run_pipdepot(
        "check", "-r", str(plain), "-c", f"{url}/no-such-file.txt", "--mirror", str(mirror), check=False
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f"pipdepot: error: cannot read {url}/no-such-file.txt: HTTP 404 no such file"
    )


def test_a_constraints_url_is_bounded_in_size_and_time(web: tuple[str, dict[str, bytes]]) -> None:
    url, files = web
    files["/big.txt"] = b"a==1\n" * (2 * 1024 * 1024)
    with pytest.raises(RemoteError, match=r"big\.txt: larger than 8388608 bytes"):
        fetch_text(f"{url}/big.txt")
    with pytest.raises(RemoteError, match=r"cannot connect to 127\.0\.0\.1:1: Connection refused"):
        fetch_text("http://127.0.0.1:1/upper.txt")


def test_a_constraints_url_that_never_finishes_gives_up_at_the_deadline() -> None:
    """A server that sends headers, then trickles: the whole fetch has one deadline."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        for _ in range(600):
            writer.write(b"a")
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.close()

    ready = threading.Event()
    port: list[int] = []
    loop = asyncio.new_event_loop()

    def run() -> None:
        server = loop.run_until_complete(asyncio.start_server(trickle, "127.0.0.1", 0))
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        with pytest.raises(RemoteError, match="no complete answer within 1 s"):
            fetch_text(f"http://127.0.0.1:{port[0]}/upper.txt", deadline=1.0)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_each_pin_of_a_pins_file_that_is_not_one_installable_set(
    run_pipdepot: PipdepotRunner, small: FakeUpstream, web: tuple[str, dict[str, bytes]], tmp_path: Path
) -> None:
    """upper-constraints pins salt 3008.0 (needs pyopenssl>=26) and pyopenssl 24.2.1: each pin alone."""
    url, files = web
    files["/upper-constraints.txt"] = b"app===1.0\nlib===1.0\nsalty===1.0\nssl===24.0\n"
    constraints = f"{url}/upper-constraints.txt"
    mirror = tmp_path / "mirror"
    targets = ("--python-version", "3.11", "--python-version", "3.13")
    output = sync(run_pipdepot, small, mirror, "--each-pin", "-c", constraints, *targets)
    assert listed(mirror) == {
        "app-1.0-py3-none-any.whl",
        "lib-1.0-py3-none-any.whl",
        "ssl-24.0-py3-none-any.whl",
    }
    not_mirrored = [line for line in output.splitlines() if line.startswith("not mirrored:")]
    assert not_mirrored == [
        f"not mirrored: salty===1.0 for cp3{minor}-host: does not resolve: No solution found when"
        " resolving dependencies"
        for minor in (11, 13)
    ]
    assert "each pin: 6 of 8 (pin, target) resolved" in output
    small.stop()

    result = run_pipdepot("check", "--each-pin", "-c", constraints, "--mirror", str(mirror), *targets)
    assert "ok: cp311-host: 3 files" in result.stdout
    assert (
        "unresolvable: salty===1.0 for cp311-host: does not resolve (as the last sync --each-pin found,"
        " online): No solution found when resolving dependencies"
    ) in result.stdout

    next(mirror.glob("packages/**/lib-1.0-py3-none-any.whl")).unlink()
    result = run_pipdepot(
        "check", "--each-pin", "-c", constraints, "--mirror", str(mirror), *targets, check=False
    )
    assert result.returncode == 1
    assert [line.split(":")[1] for line in missing_lines(result.stdout)] == [
        " lib 1.0 for cp311-host",
        " lib 1.0 for cp313-host",
    ]


def test_each_pin_takes_each_pins_own_version_of_an_unpinned_dependency(
    run_pipdepot: PipdepotRunner, stop_after: list[FakeUpstream], tmp_path: Path
) -> None:
    """loose is pinned nowhere: `narrow` alone takes loose 1.0, `wide` alone loose 2.0; both are mirrored,
    though resolving the two pins together would take loose 1.0 only."""
    dist = tmp_path / "dist"
    upstream = FakeUpstream(with_metadata=True)
    stop_after.append(upstream)
    serve(
        upstream,
        dist,
        build_wheel(dist, "narrow", "1.0", requires=("loose<2",)),
        build_wheel(dist, "wide", "1.0", requires=("loose",)),
        build_wheel(dist, "loose", "1.0"),
        build_wheel(dist, "loose", "2.0"),
    )
    pins = requirements_file(tmp_path, "narrow===1.0\nwide===1.0\n", "pins.txt")
    mirror = tmp_path / "mirror"
    sync(run_pipdepot, upstream, mirror, "--each-pin", "-c", str(pins))
    assert listed(mirror) == {
        "narrow-1.0-py3-none-any.whl",
        "wide-1.0-py3-none-any.whl",
        "loose-1.0-py3-none-any.whl",
        "loose-2.0-py3-none-any.whl",
    }


def test_each_pin_lists_a_pin_whose_old_sdist_no_longer_builds(
    run_pipdepot: PipdepotRunner,
    real_wheels: dict[str, Path],
    stop_after: list[FakeUpstream],
    tmp_path: Path,
) -> None:
    """A real upper-constraints file pins marathon 0.9.3, whose setup.py fails on today's setuptools
    ("use_2to3 is invalid"): uv cannot read its metadata. That pin is listed, not fatal; the run
    goes on and ends cleanly (it once ended in a traceback: the other pins' uv still ran while the
    scratch directory was removed)."""
    dist = tmp_path / "dist"
    upstream = FakeUpstream(with_metadata=True)
    stop_after.append(upstream)
    broken = "import sys\nsys.exit('error in broken setup command: use_2to3 is invalid.')\n"
    pins = [f"fine{i}===1.0" for i in range(40)]
    serve(
        upstream,
        dist,
        build_setuptools_sdist(dist, "broken", "0.9.3", setup_py=broken),
        real_wheels["setuptools-80.9.0-py3-none-any.whl"],
        real_wheels["wheel-0.45.1-py3-none-any.whl"],
        *(build_wheel(dist, f"fine{i}", "1.0") for i in range(40)),
    )
    constraints = requirements_file(tmp_path, "\n".join(["broken===0.9.3", *pins]) + "\n", "pins.txt")
    mirror = tmp_path / "mirror"
    result = run_pipdepot(
        "sync",
        "--mirror",
        str(mirror),
        "--upstream",
        upstream.url,
        "--each-pin",
        "-c",
        str(constraints),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert listed(mirror) == {f"fine{i}-1.0-py3-none-any.whl" for i in range(40)}
    assert "not mirrored: broken===0.9.3 for cp311-host: does not resolve:" in result.stdout
    assert "use_2to3 is invalid" in result.stdout
    assert "each pin: 40 of 41 (pin, target) resolved" in result.stdout


def test_check_names_an_sdist_that_does_not_build_as_such_not_as_missing(
    run_pipdepot: PipdepotRunner,
    real_wheels: dict[str, Path],
    stop_after: list[FakeUpstream],
    tmp_path: Path,
) -> None:
    """OpenStack's 2018 pins (cryptography 2.1.4, numpy 1.14.0) have wheels for old Pythons only and
    an sdist whose setup.py imports ``pkg_resources``, gone from setuptools 82. Online, uv resolves
    them from the old wheels' metadata and sync mirrors the sdist; offline, the sdist's backend
    fails. That is not something missing: every file is there, and the install fails online too."""
    dist = tmp_path / "dist"
    upstream = FakeUpstream(with_metadata=True)
    stop_after.append(upstream)
    fails = "raise SystemExit(\"ModuleNotFoundError: No module named 'pkg_resources'\")\n"
    serve(
        upstream,
        dist,
        build_setuptools_sdist(dist, "oldcrypto", "2.1.4", setup_py=fails),
        build_wheel(dist, "oldcrypto", "2.1.4", tag="cp27-cp27mu-manylinux1_x86_64"),
        real_wheels["setuptools-80.9.0-py3-none-any.whl"],
        real_wheels["wheel-0.45.1-py3-none-any.whl"],
        build_wheel(dist, "fine", "1.0"),
    )
    pins = requirements_file(tmp_path, "oldcrypto===2.1.4\nfine===1.0\n", "pins.txt")
    mirror = tmp_path / "mirror"
    output = sync(run_pipdepot, upstream, mirror, "--each-pin", "-c", str(pins))
    assert "each pin: 2 of 2 (pin, target) resolved" in output  # from the cp27 wheel's metadata
    assert "oldcrypto-2.1.4.tar.gz" in listed(mirror)
    upstream.stop()  # check never asks it
    result = run_pipdepot("check", "--mirror", str(mirror), "--each-pin", "-c", str(pins), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert missing_lines(result.stdout) == []
    unresolvable = "unresolvable: oldcrypto===2.1.4 for cp311-host: does not build (its sdist, in the build"
    assert unresolvable in result.stdout
    assert "ok: cp311-host: 1 file" in result.stdout
    wanted = requirements_file(tmp_path, "oldcrypto==2.1.4\nfine\n")
    result = run_pipdepot("check", "--mirror", str(mirror), "-r", str(wanted), check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert missing_lines(result.stdout) == []
    assert "does not build: oldcrypto 2.1.4 for cp311-host: Failed to build `oldcrypto==2.1.4`" in (
        result.stdout
    )
    assert "pkg_resources" in result.stdout
    assert result.stderr.splitlines()[0] == (
        "pipdepot: error: 1 sdist for 1 target fails in its own build backend: "
        "an install would fail, online too"
    )


# -- path requirements ---------------------------------------------------------------------------


def test_a_path_requirement_syncs_its_dependencies_and_build_backend(
    run_pipdepot: PipdepotRunner,
    stop_after: list[FakeUpstream],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ironic-python-agent's case: `./agent` in the requirements is a local source tree."""
    dist = tmp_path / "dist"
    upstream = FakeUpstream(with_metadata=True)
    stop_after.append(upstream)
    serve(
        upstream,
        dist,
        build_wheel(dist, "lib", "1.0"),
        build_wheel(dist, "lib", "2.0"),
        build_wheel(dist, "buildtool", "1.0"),
    )
    project = tmp_path / "work" / "agent"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["buildtool"]\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
        '[project]\nname = "agent"\nversion = "1.0"\ndependencies = ["lib<2"]\n'
    )
    (project / "backend.py").write_text(_BACKEND.format(name="agent", version="1.0"))
    wanted = requirements_file(tmp_path / "work", "./agent\n")
    monkeypatch.chdir(tmp_path / "work")
    mirror = tmp_path / "mirror"
    output = sync(run_pipdepot, upstream, mirror, "-r", str(wanted))
    assert listed(mirror) == {"lib-1.0-py3-none-any.whl", "buildtool-1.0-py3-none-any.whl"}
    assert f"./agent is a local project ({project}): not mirrored" in output
    upstream.stop()
    run_pipdepot("check", "-r", str(wanted), "--mirror", str(mirror))
    python = fresh_venv(tmp_path / "venv")
    pip_install(python, mirror.as_uri(), str(project))  # built offline: its backend's needs are there
    assert installed(python, "agent") == "1.0"


# -- check's report, and the output of long work ------------------------------------------------


def test_check_on_an_empty_mirror_lists_every_missing_project(
    run_pipdepot: PipdepotRunner, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    wanted = requirements_file(tmp_path, "app\nlib==1.0\nunrelated>=2\n")
    result = run_pipdepot("check", "-r", str(wanted), "--mirror", str(mirror), check=False)
    assert result.returncode == 1
    assert missing_lines(result.stdout) == [
        "missing: app for cp311-host: project not in the mirror",
        "missing: lib 1.0 for cp311-host: project not in the mirror",
        "missing: unrelated >=2 for cp311-host: project not in the mirror",
    ]
    assert "the mirror lacks 3 items for 1 target" in result.stderr


def test_an_offline_resync_warns_once_for_all_stale_pages(
    run_pipdepot: PipdepotRunner, small: FakeUpstream, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    wanted = requirements_file(tmp_path, "app\nssl\n")
    sync(run_pipdepot, small, mirror, "-r", str(wanted))
    small.stop()
    output = sync(run_pipdepot, small, mirror, "-r", str(wanted))
    stale = [line for line in output.splitlines() if "stale" in line or "as last fetched" in line]
    assert len(stale) == 1, output
    assert "3 projects taken from the mirror's own copy, as last fetched (app, lib, ssl)" in stale[0]
    assert "fetched 0 files" in output


def test_an_unreachable_upstream_is_named_with_its_cause(
    run_pipdepot: PipdepotRunner, tmp_path: Path
) -> None:
    wanted = requirements_file(tmp_path, "app\n")
    result = run_pipdepot(
        "sync",
        "-r",
        str(wanted),
        "--mirror",
        str(tmp_path / "mirror"),
        "--upstream",
        "http://127.0.0.1:1/simple/",
        check=False,
    )
    assert result.returncode == 1
    first = result.stderr.splitlines()
    error = next(line for line in first if line.startswith("pipdepot: error:"))
    assert error == (
        "pipdepot: error: upstream http://127.0.0.1:1/simple/ unreachable: cannot connect to 127.0.0.1:1:"
        " Connection refused"
    )
    assert "502" not in error


def test_sync_reports_progress_while_uv_resolves(stop_after: list[FakeUpstream], tmp_path: Path) -> None:
    """A slow upstream keeps uv busy: sync says it still works, with the pages fetched so far."""
    dist = tmp_path / "dist"
    upstream = FakeUpstream(with_metadata=True, page_delay=0.5)
    stop_after.append(upstream)
    serve(upstream, dist, build_wheel(dist, "app", "1.0", requires=("lib",)), build_wheel(dist, "lib", "1.0"))
    wanted = requirements_file(tmp_path, "app\n")
    said: list[tuple[str, float, int]] = []

    class Progress:
        def resolving(self, target: str) -> None:
            pass

        def waiting(self, what: str, seconds: float, pages: int) -> None:
            said.append((what, seconds, pages))

        def planned(self, files: int, size: int) -> None:
            pass

        def done(self, filename: str, size: int, *, fetched: bool) -> None:
            pass

    options = SyncOptions(tmp_path / "mirror", (upstream.url,), 10.0, progress_every=0.2)
    report = asyncio.run(run_sync(read_inputs([wanted]), make_targets((), ()), options, Progress()))
    assert report.filenames == {"app-1.0-py3-none-any.whl", "lib-1.0-py3-none-any.whl"}
    assert said
    assert said[0][0] == "requirements for cp311-host"
    assert said[-1][2] >= 1  # pages fetched for uv, counted as they come


# -- the OpenStack case, as a user types it, with a small real set ------------------------------

#: Real pins in upper-constraints' form: a legacy sdist (docopt), wheels per Python (PyYAML,
#: charset-normalizer), and two pins that conflict (requests 2.32.3 needs urllib3>=1.21.1,<3).
UPPER = """\
docopt===0.6.2
six===1.17.0
PyYAML===6.0.2
requests===2.32.3
urllib3===2.2.3
idna===3.10
certifi===2024.8.30
charset-normalizer===3.4.0
"""


@pytest.mark.network
def test_openstack_sync_with_upper_constraints_by_url_then_check(
    run_pipdepot: PipdepotRunner, web: tuple[str, dict[str, bytes]], old_pip: Path, tmp_path: Path
) -> None:
    """`pipdepot sync -r reqs.txt -c <URL> --python-version 3.11 --python-version 3.13`, from PyPI."""
    url, files = web
    files["/upper-constraints.txt"] = UPPER.encode()
    constraints = f"{url}/upper-constraints.txt"
    wanted = requirements_file(tmp_path, "docopt\nsix\nPyYAML\nrequests\n")
    mirror = tmp_path / "mirror"
    targets = ("--python-version", "3.11", "--python-version", "3.13")
    run_pipdepot("sync", "-r", str(wanted), "-c", constraints, "--mirror", str(mirror), *targets)
    held = listed(mirror)
    assert "docopt-0.6.2.tar.gz" in held
    assert {name.split("-")[0] for name in held} >= {
        "setuptools",
        "wheel",
    }  # docopt's build, as pip 23 does it
    assert {n for n in held if n.startswith("PyYAML-6.0.2-cp3")} == {
        f"PyYAML-6.0.2-cp3{minor}-cp3{minor}-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
        for minor in (11, 13)
    }
    result = run_pipdepot("check", "-r", str(wanted), "-c", constraints, "--mirror", str(mirror), *targets)
    assert "ok: cp311-host" in result.stdout
    assert "ok: cp313-host" in result.stdout
    # bookworm's pip, offline from the static tree, builds docopt with the mirror's setuptools and wheel
    (tmp_path / "c.txt").write_text(UPPER)
    result_install = old_pip_install(
        old_pip, mirror.as_uri(), "-r", str(wanted), "-c", str(tmp_path / "c.txt")
    )
    assert result_install.returncode == 0, result_install.stdout + result_install.stderr
