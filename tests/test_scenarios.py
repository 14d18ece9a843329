"""packse's resolver scenarios through pipdepot give the same result as packse's own index.

The scenarios (tests/data/packse, from packse 0.3.59) are built once with packse's own code
(tests/packse_build.py): their distributions, their yanked releases (packse's ``<scenario>.yanked`` file)
and packse's static index. Every distribution goes into one pipdepot mirror with ``pipdepot add`` and every
yanked release is yanked with ``pipdepot yank``; then pip and uv resolve each scenario's root requirements
through ``pipdepot serve --offline`` and through the mirror's static tree over ``file://``. Each result
must equal the same client's result on packse's index, and uv's must be what the scenario expects (packse
writes its expectations for uv; pip differs on purpose for some, yanked releases among them).

Clients resolve for the scenario's Python (``--python-version``) without installing: packse's packages
require Python >= 3.12 by default and this interpreter is 3.11.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from packaging.utils import canonicalize_name

from tests.conftest import clean_environ, download_wheel
from tests.depot import Depot, fresh_venv

if TYPE_CHECKING:
    from collections.abc import Iterator

#: The pip the scenarios run with, from its wheel: 25+ takes --dry-run with --python-version.
NEW_PIP = "pip==26.3"
SCENARIOS = Path(__file__).parent / "data" / "packse"
#: What a client prints when a scenario cannot be satisfied; any other failure is an error, not a result.
UNSATISFIABLE = ("No solution found", "ResolutionImpossible", "No matching distribution found")
#: Where this uv resolves otherwise than packse 0.3.59 expects, on packse's own index too (not pipdepot's).
UV_DIFFERS = {
    "package-prerelease-specified-mixed-available": "uv takes the stable 0.3.0 for a>=0.1.0a1, not 1.0.0a1",
    "transitive-package-only-prereleases-in-range": "uv takes b 1.0.0a1, the only release in b>0.1",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a client resolved: nothing (unsatisfiable), or these versions by normalized name."""

    satisfiable: bool
    packages: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Built:
    """packse's build of the scenarios: its distributions, its index and each scenario's variables."""

    dist: Path
    index: Path
    scenarios: dict[str, dict[str, Any]]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Keep the test output to the clients' messages."""


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    if importlib.util.find_spec("packse") is None:
        pytest.fail(
            "packse is not installed: on Python 3.11, "
            "pip install --no-deps --ignore-requires-python packse==0.3.59 (see tests/packse_build.py)"
        )
    out = tmp_path_factory.mktemp("packse")
    bin_dir = str(Path(sys.executable).parent)
    env = clean_environ(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        [sys.executable, "-m", "tests.packse_build", str(SCENARIOS), str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=Path(__file__).parent.parent,
    )
    if result.returncode != 0:
        pytest.fail(f"packse build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    variables = json.loads((out / "scenarios.json").read_text())
    return Built(out / "dist", out / "index", {scenario["name"]: scenario for scenario in variables})


@pytest.fixture(scope="session")
def packse_index(built: Built) -> Iterator[str]:
    """packse's static index over HTTP, as ``packse serve`` would give it (without its extra dependencies)."""
    handler = functools.partial(_QuietHandler, directory=str(built.index))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple-html/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def mirror(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mirror with every scenario's files, added, and packse's yanked releases yanked."""
    mirror = tmp_path_factory.mktemp("mirror") / "mirror"
    directories = sorted(str(path) for path in built.dist.iterdir() if path.is_dir())
    _pipdepot("add", *directories, "--mirror", str(mirror))
    releases = [
        line.rsplit("-", 1) for marks in built.dist.glob("*.yanked") for line in marks.read_text().split()
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:  # yanks of different projects may run at once
        yanks = [
            pool.submit(
                _pipdepot, "yank", project, version, "--reason", "Yanked for testing", "--mirror", str(mirror)
            )
            for project, version in releases
        ]
    for yank in yanks:
        yank.result()
    return mirror


@pytest.fixture(scope="session")
def depot(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Depot]:
    server = Depot(mirror, tmp_path_factory.mktemp("depot-log") / "serve.log", args=("--offline",))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def new_pip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pip that takes ``--dry-run`` with ``--python-version`` (25+; the venv has 23), run from its wheel."""
    return download_wheel(NEW_PIP, tmp_path_factory.mktemp("pip"))


@pytest.fixture(scope="session")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty environment: the clients only resolve into it (dry runs)."""
    return fresh_venv(tmp_path_factory.mktemp("venv") / "venv")


def _pipdepot(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipdepot", *args],
        env=clean_environ(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"pipdepot {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")


def _unsupported(scenario: dict[str, Any]) -> str | None:
    """Why this harness cannot run a scenario as packse means it, or None."""
    options = scenario["resolver_options"]
    for option in ("python", "python_platform", "required_environments"):
        if options[option]:
            return f"needs the resolver option {option}={options[option]!r}"
    if options["universal"] or options["no_build"] or options["no_binary"]:
        return "needs universal resolution or build/binary restrictions"
    if scenario["environment"]["additional_python"]:
        return "needs more than one Python interpreter"
    for package in scenario["packages"]:
        for version in package["versions"]:
            if not (version["sdist"] and version["wheel"]) or version["wheel_tags"]:
                return "has releases without a wheel or with platform wheels (pip resolves wheels only here)"
    return None


def _finish(argv: list[str], result: subprocess.CompletedProcess[str]) -> bool:
    """Whether the client resolved; an unsatisfiable scenario is False, any other failure an error."""
    if result.returncode == 0:
        return True
    output = result.stdout + result.stderr
    if not any(marker in output for marker in UNSATISFIABLE):
        raise AssertionError(f"{' '.join(argv)} failed, not for lack of a solution:\n{output}")
    return False


def _pip(scenario: dict[str, Any], index: str, work: Path, pip: Path) -> Outcome:
    """pip's dry run, wheels only: pip takes ``--python-version`` only so."""
    work.mkdir()
    report = work / "report.json"
    argv = [sys.executable, f"{pip}/pip", "install", "--dry-run", "--report", str(report), "--quiet"]
    argv += ["--no-cache-dir", "--disable-pip-version-check"]
    argv += ["--python-version", scenario["environment"]["python"], "--only-binary", ":all:"]
    argv += ["--index-url", index]
    if scenario["resolver_options"]["prereleases"]:
        argv.append("--pre")
    argv += [requirement["requirement"] for requirement in scenario["root"]["requires"]]
    result = subprocess.run(
        argv, env=clean_environ(), capture_output=True, text=True, check=False, timeout=99
    )
    if not _finish(argv, result):
        return Outcome(satisfiable=False)
    installs = json.loads(report.read_text())["install"]
    versions = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}
    return Outcome(satisfiable=True, packages=tuple(sorted(versions.items())))


def _uv(scenario: dict[str, Any], index: str, python: Path) -> Outcome:
    uv = Path(sys.executable).parent / "uv"
    argv = [str(uv if uv.exists() else "uv"), "pip", "install", "--dry-run", "--no-config", "--no-cache"]
    argv += ["--python", str(python), "--python-version", scenario["environment"]["python"]]
    argv += ["--index-url", index]
    if scenario["resolver_options"]["prereleases"]:
        argv += ["--prerelease", "allow"]
    argv += [requirement["requirement"] for requirement in scenario["root"]["requires"]]
    result = subprocess.run(
        argv, env=clean_environ(), capture_output=True, text=True, check=False, timeout=99
    )
    if not _finish(argv, result):
        return Outcome(satisfiable=False)
    lines = (line.strip() for line in (result.stdout + result.stderr).splitlines())
    pins = (line.removeprefix("+ ").split("==", 1) for line in lines if line.startswith("+ "))
    return Outcome(satisfiable=True, packages=tuple(sorted((canonicalize_name(n), v) for n, v in pins)))


def _meets_expectation(scenario: dict[str, Any], outcome: Outcome) -> bool:
    """Whether ``outcome`` is what the scenario expects; a scenario that names no versions checks none."""
    expected = scenario["expected"]
    if not expected["packages"]:
        return outcome.satisfiable is bool(expected["satisfiable"])
    pins = ((canonicalize_name(package["name"]), package["version"]) for package in expected["packages"])
    wanted = Outcome(satisfiable=expected["satisfiable"], packages=tuple(sorted(pins)))
    return outcome == wanted


@dataclass(frozen=True, slots=True)
class Indexes:
    """The three ways to a scenario's files, and the environment the clients resolve for."""

    packse: str
    depot: str
    file: str
    python: Path


@pytest.fixture(scope="session")
def indexes(packse_index: str, mirror: Path, depot: Depot, python: Path) -> Indexes:
    return Indexes(packse_index, depot.index, mirror.as_uri() + "/", python)


@pytest.mark.parametrize("name", sorted(path.stem for path in SCENARIOS.glob("*.toml")))
def test_scenario(name: str, built: Built, indexes: Indexes, new_pip: Path, tmp_path: Path) -> None:
    scenario = built.scenarios[name]
    reason = _unsupported(scenario)
    if reason is not None:
        pytest.skip(reason)

    with ThreadPoolExecutor(max_workers=6) as pool:
        uv_packse, uv_depot, uv_file, pip_packse, pip_depot, pip_file = (
            pool.submit(_uv, scenario, indexes.packse, indexes.python),
            pool.submit(_uv, scenario, indexes.depot, indexes.python),
            pool.submit(_uv, scenario, indexes.file, indexes.python),
            pool.submit(_pip, scenario, indexes.packse, tmp_path / "pip-packse", new_pip),
            pool.submit(_pip, scenario, indexes.depot, tmp_path / "pip-depot", new_pip),
            pool.submit(_pip, scenario, indexes.file, tmp_path / "pip-file", new_pip),
        )
    if name not in UV_DIFFERS:
        assert _meets_expectation(scenario, uv_packse.result()), "uv on packse's own index: not as expected"
    assert uv_depot.result() == uv_packse.result(), "uv through pipdepot serve"
    assert uv_file.result() == uv_packse.result(), "uv over file:// on the mirror"
    assert pip_depot.result() == pip_packse.result(), "pip through pipdepot serve"
    assert pip_file.result() == pip_packse.result(), "pip over file:// on the mirror"
