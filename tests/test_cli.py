"""The command line: help that names every variable, JSON plans, the element's files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pypi_simple import PYPI_SIMPLE_ENDPOINT

from pipdepot.core.buildroot import INDEX_ENV_VARS

if TYPE_CHECKING:
    from tests.conftest import PipdepotRunner

PLAN_VARIABLES = (
    "PIPDEPOT_MIRROR_URLS",
    "DIB_PYPI_MIRROR_URL",
    "DIB_PYPI_MIRROR_URL_<N>",
    "PIPDEPOT_OFFLINE",
    "DIB_OFFLINE",
    "PIPDEPOT_NO_PYPI",
    "DIB_NO_PYPI_PIP",
    "PIPDEPOT_RETRIES",
    "DIB_PIP_RETRIES",
    "PIPDEPOT_TIMEOUT",
    "DIB_PIP_TIMEOUT",
    "PIPDEPOT_TRUSTED_HOSTS",
    "DIB_PYPI_TRUSTED_HOST",
    "PIPDEPOT_MIRROR_DIR",
    "DIB_IMAGE_CACHE",
    "PIPDEPOT_CONFIG",
    "PIPDEPOT_PUBLIC_INDEX",
    "PIPDEPOT_UV_INDEX_STRATEGY",
)


@pytest.mark.parametrize("command", ["plan", "inject", "chroot"])
def test_help_explains_every_option_and_its_variable(run_pipdepot: PipdepotRunner, command: str) -> None:
    text = " ".join(run_pipdepot(command, "--help").stdout.split())
    for variable in PLAN_VARIABLES:
        assert variable in text, f"{command} --help does not mention {variable}"


SERVE_VARIABLES = (
    "PIPDEPOT_HOST",
    "PIPDEPOT_PORT",
    "PIPDEPOT_MIRROR_DIR",
    "DIB_IMAGE_CACHE",
    "PIPDEPOT_UPSTREAMS",
    "PIPDEPOT_OFFLINE",
    "PIPDEPOT_TTL",
    "PIPDEPOT_UPSTREAM_TIMEOUT",
    "PIPDEPOT_CONFIG",
)


def test_serve_help_names_every_variable(run_pipdepot: PipdepotRunner) -> None:
    text = " ".join(run_pipdepot("serve", "--help").stdout.split())
    for variable in SERVE_VARIABLES:
        assert variable in text


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--port", "http"), {}, "flag --port: 'http' is not a TCP port (1-65535)"),
        ((), {"PIPDEPOT_TTL": "soon"}, "PIPDEPOT_TTL: 'soon' is not a number of seconds"),
        (("--upstream", "ftp://x/"), {}, "flag --upstream: 'ftp://x/' is not an http, https or file URL"),
    ],
)
def test_serve_bad_values_are_one_line(
    run_pipdepot: PipdepotRunner, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    result = run_pipdepot("serve", *args, env=env, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f"pipdepot: error: {message}"


@pytest.mark.parametrize("command", ["", "restore", "elements-path"])
def test_every_command_has_help(run_pipdepot: PipdepotRunner, command: str) -> None:
    result = run_pipdepot(*[c for c in [command] if c], "--help")
    assert "Usage: pipdepot" in result.stdout
    assert len(result.stdout.splitlines()) > 4


def test_plan_json_says_where_each_value_came_from(run_pipdepot: PipdepotRunner, tmp_path: Path) -> None:
    env = {
        "DIB_PYPI_MIRROR_URL_1": "http://user:pw@mirror.example:3141/simple/",
        "DIB_PIP_RETRIES": "0",
        "DIB_IMAGE_CACHE": str(tmp_path),
    }
    data = json.loads(run_pipdepot("plan", "--json", "--timeout", "30", env=env).stdout)
    assert data["index_url"] == "http://user:****@mirror.example:3141/simple/"
    assert data["extra_index_urls"] == [str(PYPI_SIMPLE_ENDPOINT)]
    assert data["trusted_hosts"] == ["mirror.example:3141"]
    assert data["sources"]["mirror_urls"][0]["source"] == "DIB_PYPI_MIRROR_URL_1"
    assert data["sources"]["retries"] == {"value": 0, "source": "DIB_PIP_RETRIES"}
    assert data["sources"]["timeout"] == {"value": 30.0, "source": "flag --timeout"}
    assert data["local_mirror"] == {
        "directory": str(tmp_path / "pypi" / "mirror"),
        "state": "missing",
        "mounted_at": None,
    }
    assert any("DIB_PYPI_MIRROR_URL_1 is the primary index" in note for note in data["notes"])
    assert all("pw@" not in f["content"] for f in data["files"])
    assert {f["mode"] for f in data["files"]} == {"0600"}
    assert {f["path"] for f in data["files"]} >= {"/etc/pip.conf", "/root/.pip/pip.conf", "/etc/uv/uv.toml"}


def test_plan_text_names_sources_and_warns(run_pipdepot: PipdepotRunner) -> None:
    out = run_pipdepot("plan", env={"DIB_OFFLINE": "1"}).stdout
    assert re.search(r"index-url\s+file:///tmp/pypi\s+\(default\)", out)
    assert re.search(r"offline\s+true\s+\(DIB_OFFLINE\)", out)
    assert "Warnings:" in out
    assert "does not exist" in out


def test_a_bad_flag_is_one_line_and_exit_2(run_pipdepot: PipdepotRunner) -> None:
    result = run_pipdepot("plan", "--uv-index-strategy", "merge", check=False)
    assert result.returncode == 2
    assert "Invalid value for '--uv-index-strategy'" in result.stderr


def test_chroot_env_must_be_name_value(run_pipdepot: PipdepotRunner, tmp_path: Path) -> None:
    result = run_pipdepot("chroot", str(tmp_path), "--env", "NOVALUE", "--", "true", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "pipdepot: error: --env: 'NOVALUE' is not NAME=VALUE"


def element_dir(run_pipdepot: PipdepotRunner) -> Path:
    return Path(run_pipdepot("elements-path").stdout.strip()) / "pypi"


def test_the_element_is_a_real_directory_named_pypi_with_executable_hooks(
    run_pipdepot: PipdepotRunner,
) -> None:
    element = element_dir(run_pipdepot)
    assert element.is_dir()
    assert not element.is_symlink()  # diskimage-builder names an element after the link's target
    for hook in ["extra-data.d/05-pipdepot-inject", "post-root.d/95-pipdepot-restore"]:
        assert os.access(element / hook, os.X_OK), hook
    assert not (element / "pre-install.d").exists()  # nothing runs inside the image
    assert not (element / "post-install.d").exists()


def test_the_element_drops_exactly_the_index_variables_pipdepot_knows(run_pipdepot: PipdepotRunner) -> None:
    text = (element_dir(run_pipdepot) / "environment.d" / "10-pipdepot").read_text()
    block = text.split("if [ -e /.pipdepot/journal.json ]; then", 1)[1].split("\nfi", 1)[0]
    unset = block.replace("\\", " ").split()[1:]
    assert tuple(unset) == INDEX_ENV_VARS


def test_the_element_finds_the_pipdepot_installed_beside_it(run_pipdepot: PipdepotRunner) -> None:
    elements = element_dir(run_pipdepot).parent
    if not elements.is_relative_to(sysconfig.get_paths()["purelib"]):
        pytest.skip("pipdepot is installed in editable mode; CI installs it for real")
    result = subprocess.run(
        [
            "bash",
            "-c",
            'set -eu; source "$1"; echo "$DIB_PIPDEPOT"',
            "-",
            str(elements / "pypi/environment.d/10-pipdepot"),
        ],
        env={"PATH": "/usr/bin:/bin", "ELEMENTS_PATH": f"/nonexistent:{elements}"},
        capture_output=True,
        text=True,
        check=True,
    )
    found = Path(result.stdout.strip())
    assert found.resolve() == (Path(sys.executable).parent / "pipdepot").resolve()


def test_plan_names_the_config_file_it_read(run_pipdepot: PipdepotRunner, tmp_path: Path) -> None:
    config = tmp_path / "pipdepot.toml"
    config.write_text("retries = 2\n")
    data = json.loads(run_pipdepot("plan", "--json", env={"PIPDEPOT_CONFIG": str(config)}).stdout)
    assert data["config_file"] == str(config)
    assert data["sources"]["retries"] == {"value": 2, "source": f"config file {config} (retries)"}
    assert f"(config file {config})" in run_pipdepot("plan", env={"PIPDEPOT_CONFIG": str(config)}).stdout
