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

from pipdepot.element.buildroot import INDEX_ENV_VARS
from tests.conftest import clean_environ
from tests.wheels import build_wheel

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
    assert result.returncode == 2  # usage
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
    assert result.returncode == 2
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


def test_help_states_the_exit_status_convention(run_pipdepot: PipdepotRunner) -> None:
    text = " ".join(run_pipdepot("--help").stdout.split())
    assert "Exit status: 0 done 1 the work failed" in text
    assert "2 usage: a bad command, flag, argument, variable or config-file value; nothing was done" in text
    assert "130 stopped by Ctrl-C (SIGINT), 143 by SIGTERM" in text


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("serve", "--port", "notaport"), {}, "flag --port: 'notaport' is not a TCP port"),
        (("serve", "--bogus"), {}, "No such option"),
        (("serve", "--offline", "--ttl", "-1"), {}, "flag --ttl: '-1' is not a number of seconds"),
        (("ls", "--mirror"), {}, "Option '--mirror' requires an argument"),
        (("plan", "--retries", "many"), {}, "flag --retries: 'many' is not a number of retries"),
        (("sync", "-r", "r.txt", "--python-version", "three"), {}, "three"),
        (("check", "-r", "r.txt"), {"PIPDEPOT_PYTHON_VERSIONS": "3.x"}, "3.x"),
        (("sync", "-r", "r.txt"), {"PIPDEPOT_UPSTREAM_TIMEOUT": "soon"}, "PIPDEPOT_UPSTREAM_TIMEOUT: 'soon'"),
        (("frobnicate",), {}, "No such command 'frobnicate'"),
    ],
)
def test_usage_errors_exit_2_whoever_finds_them(
    run_pipdepot: PipdepotRunner, tmp_path: Path, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    (tmp_path / "r.txt").write_text("six\n")
    env = {"PIPDEPOT_MIRROR_DIR": str(tmp_path / "mirror"), **env}
    result = subprocess.run(
        [sys.executable, "-m", "pipdepot", *args],
        env={**clean_environ(HOME=str(tmp_path)), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "mirror").exists()  # nothing was done


def test_failures_of_the_work_exit_1(run_pipdepot: PipdepotRunner, tmp_path: Path) -> None:
    result = run_pipdepot("ls", "--mirror", str(tmp_path / "nothing-here"), check=False)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"pipdepot: error: mirror directory {tmp_path / 'nothing-here'} does not exist"
    )


#: Options that are not settings: they say what to do, not how pipdepot is set up.
NOT_SETTINGS = {
    "help",
    "json",
    "as_json",
    "inputs",
    "constraints",
    "each_pin",
    "force",
    "env_pairs",
    "checks",
    "root",
    "version",
    "reason",
    "off",
    "file_format",
    "check_python",
    "check_platform",
}
#: Commands whose options are values to write out, never read from PIPDEPOT_* (gen-config writes
#: the files of a permanent install from its flags alone, so the files do not depend on the shell).
NOT_SETTINGS_COMMANDS = {"gen-config"}


def test_every_setting_of_every_command_names_its_pipdepot_variable() -> None:
    from pipdepot.cli import cli  # noqa: PLC0415

    unnamed = []
    for name, command in cli.commands.items():
        if name in NOT_SETTINGS_COMMANDS:
            continue
        for param in command.params:
            if param.param_type_name != "option" or param.name in NOT_SETTINGS:
                continue
            help_text = getattr(param, "help", "") or ""
            if "PIPDEPOT_" not in help_text:
                unnamed.append(f"{name} {param.opts[0]}")
    assert unnamed == []


@pytest.mark.parametrize("command", ["sync", "check", "export"])
def test_target_options_name_their_variables_and_implementation_is_gone(
    run_pipdepot: PipdepotRunner, command: str
) -> None:
    text = " ".join(run_pipdepot(command, "--help").stdout.split()).replace(
        "space- separated", "space-separated"
    )
    assert "[env: PIPDEPOT_PYTHON_VERSIONS (space-separated); default: this interpreter's]" in text
    assert "[env: PIPDEPOT_PLATFORMS (space-separated); default: this machine's]" in text
    assert "--implementation" not in text
    if command == "sync":
        assert "[env: PIPDEPOT_UPSTREAM_TIMEOUT; default: 10]" in text


def test_the_target_variables_choose_the_targets(run_pipdepot: PipdepotRunner, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    run_pipdepot("add", str(build_wheel(tmp_path / "dist", "probe", "1.0")), "--mirror", str(mirror))
    requirements = tmp_path / "r.txt"
    requirements.write_text("probe\n")
    env = {"PIPDEPOT_PYTHON_VERSIONS": "3.12 3.13", "PIPDEPOT_PLATFORMS": "manylinux_2_28_x86_64"}
    out = run_pipdepot("check", "-r", str(requirements), "--mirror", str(mirror), env=env).stdout
    assert f"ok: cp312-manylinux_2_28_x86_64: 1 file, all in the mirror {mirror}" in out
    assert "ok: cp313-manylinux_2_28_x86_64: 1 file" in out
    out = run_pipdepot(
        "check", "-r", str(requirements), "--mirror", str(mirror), "--python-version", "3.11", env=env
    ).stdout
    assert out.startswith("ok: cp311-manylinux_2_28_x86_64: 1 file")  # the flag wins over the variable
    assert "cp312" not in out


@pytest.mark.parametrize(
    "command",
    [
        ("serve", "--mirror"),
        ("sync", "-r", "r.txt", "--mirror"),
        ("check", "-r", "r.txt", "--mirror"),
        ("add", "r.txt", "--mirror"),
        ("ls", "--mirror"),
        ("export", "out.tar", "--mirror"),
        ("import", "in.tar", "--mirror"),
        ("plan", "--mirror-dir"),
        ("inject", "root", "--mirror-dir"),
        ("chroot", "root", "--", "true", "--mirror-dir"),
    ],
)
def test_a_mirror_that_is_a_file_gets_one_message_from_every_command(
    run_pipdepot: PipdepotRunner, tmp_path: Path, command: tuple[str, ...]
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    (tmp_path / "r.txt").write_text("six\n")
    *before, flag = command
    if command[0] == "chroot":
        before, flag = ["chroot", "root", "--mirror-dir"], "--"
        args = [*before, str(not_a_dir), flag, "true"]
    else:
        args = [*before, flag, str(not_a_dir)]
    args = [str(tmp_path / a) if a in {"r.txt", "out.tar", "in.tar", "root"} else a for a in args]
    result = run_pipdepot(*args, check=False)
    assert result.returncode == 2, result.stderr
    option = "--mirror-dir" if command[0] in {"plan", "inject", "chroot"} else "--mirror"
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"pipdepot: error: flag {option}: {not_a_dir} is not a directory"


def test_counts_agree_with_their_nouns(run_pipdepot: PipdepotRunner, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    run_pipdepot("add", str(build_wheel(tmp_path / "dist", "solo", "1.0")), "--mirror", str(mirror))
    lines = run_pipdepot("ls", "--offline", "--mirror", str(mirror)).stdout.splitlines()
    assert re.fullmatch(r"solo +1 file +[\d.]+ k?B  1\.0  \[private\]", lines[0]), lines
    assert re.fullmatch(r"1 project, 1 file, [\d.]+ k?B", lines[1]), lines
    run_pipdepot("add", str(build_wheel(tmp_path / "dist", "solo", "2.0")), "--mirror", str(mirror))
    lines = run_pipdepot("ls", "--offline", "--mirror", str(mirror)).stdout.splitlines()
    assert re.fullmatch(r"solo +2 files +[\d.]+ k?B  2\.0, 1\.0  \[private\]", lines[0]), lines
    assert re.fullmatch(r"1 project, 2 files, [\d.]+ k?B", lines[1]), lines


def test_ci_finds_the_readmes_test_command_where_the_readme_shows_it() -> None:
    """.ci/run extracts the line after the marker with awk; the README shows that same line."""
    project = Path(__file__).resolve().parent.parent
    script = (project / ".ci" / "run").read_text()
    awk = re.search(r"command=\$\(awk '([^']+)' README.md\)", script)
    assert awk is not None
    found = subprocess.run(
        ["awk", awk.group(1), "README.md"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.strip()
    readme = (project / "README.md").read_text()
    assert found.startswith("python3 -m venv .venv && ")
    assert f"<!-- test-command: .ci/run runs the next line exactly -->\n```sh\n{found}\n```" in readme
