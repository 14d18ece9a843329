"""`pipdepot build`'s command line: the builder read, and each error a user meets in one line."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest

from pipdepot.element.container import final_base_image, parse_builder
from pipdepot.errors import UsageError
from tests.depot import Depot, free_port
from tests.wheels import add_to_mirror, build_wheel

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import PipdepotRunner

FOUND = {"buildah": "/usr/bin/buildah", "podman": "/usr/bin/podman"}


def test_the_builder_s_own_options_stay_and_pipdepot_s_go_after_the_subcommand() -> None:
    command = parse_builder(
        ("buildah", "--root", "/s", "--runroot=/r", "bud", "--isolation", "chroot", "-t", "a", "."),
        which=FOUND,
    )
    assert command.head == ("buildah", "--root", "/s", "--runroot=/r", "bud")
    assert command.storage_options == ("--root", "/s", "--runroot=/r")
    assert command.with_options(("--volume", "x:/y:ro"))[5:7] == ("--volume", "x:/y:ro")
    assert command.isolation({}) == "chroot"
    assert command.host_network({})
    assert parse_builder(("podman", "build", "--network=host", "."), which=FOUND).host_network({})
    assert not parse_builder(("buildah", "build", "."), which=FOUND).host_network(
        {"BUILDAH_ISOLATION": "oci"}
    )
    assert parse_builder(("buildah", "build", "."), which=FOUND).isolation(
        {"BUILDAH_ISOLATION": "chroot"}
    ) == ("chroot")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "no builder given"),
        (("docker", "build", "."), "does not know the builder 'docker': it supports buildah (bud, build)"),
        (("kaniko", "."), "does not know the builder 'kaniko'"),
        (("buildah", "from", "x"), "runs `buildah bud` or `buildah build`, not 'from'"),
        (("podman", "--root", "build", "run"), "not 'run'"),
        (("/opt/nowhere/buildah", "bud", "."), "no builder found: '/opt/nowhere/buildah'"),
    ],
)
def test_a_builder_pipdepot_cannot_drive_is_one_line(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=None) as raised:
        parse_builder(argv, which={**FOUND, "/opt/nowhere/buildah": None})
    assert message in raised.value.message
    assert "\n" not in raised.value.message


def test_the_final_stage_s_base_image_follows_stages_and_arguments() -> None:
    text = """
# syntax=docker/dockerfile:1
ARG BASE=localhost/debian:bookworm
FROM --platform=linux/amd64 ${BASE} AS build
RUN pip install \\
    six
FROM build AS final
RUN true
FROM scratch AS empty
"""
    assert final_base_image(text, {}, target="final") == "localhost/debian:bookworm"
    assert final_base_image(text, {"BASE": "other"}, target="final") == "other"
    assert final_base_image(text, {}) is None  # the last stage is FROM scratch
    with pytest.raises(UsageError, match="no FROM"):
        final_base_image("RUN true\n", {})


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    mirror = tmp_path / "mirror"
    add_to_mirror(mirror, build_wheel(tmp_path / "dist", "probe-lib", "1.0"))
    return mirror


def one_line_error(result: object, status: int) -> str:
    assert getattr(result, "returncode", None) == status, result
    lines = getattr(result, "stderr", "").splitlines()
    assert lines, result
    assert lines[0].startswith("pipdepot: error: ")
    assert all(line.startswith("hint: ") for line in lines[1:]), lines
    return str(lines[0])


@pytest.mark.skipif(shutil.which("buildah") is None, reason="needs buildah on PATH (apt-get install buildah)")
class TestErrors:
    def test_no_builder_and_an_unknown_one(self, run_pipdepot: PipdepotRunner, mirror: Path) -> None:
        result = run_pipdepot("build", "--offline", "--mirror-dir", str(mirror), check=False)
        assert "no builder given" in one_line_error(result, 2)
        result = run_pipdepot(
            "build", "--offline", "--mirror-dir", str(mirror), "--", "docker", "build", ".", check=False
        )
        assert "it supports buildah (bud, build) and podman (build)" in one_line_error(result, 2)
        result = run_pipdepot(
            "build", "--mirror-dir", str(mirror), "--", "/opt/none/buildah", "bud", ".", check=False
        )
        assert "no builder found" in one_line_error(result, 2)

    def test_no_mirror(self, run_pipdepot: PipdepotRunner, tmp_path: Path) -> None:
        missing = tmp_path / "missing"
        result = run_pipdepot(
            "build", "--offline", "--mirror-dir", str(missing), "--", "buildah", "bud", ".", check=False
        )
        assert f"no mirror: the local mirror {missing} does not exist" in one_line_error(result, 1)
        result = run_pipdepot("build", "--mirror-dir", str(missing), "--", "buildah", "bud", ".", check=False)
        assert "and no --mirror-url is set" in one_line_error(result, 1)

    def test_a_mirror_the_build_s_network_cannot_reach(
        self, run_pipdepot: PipdepotRunner, mirror: Path
    ) -> None:
        url = f"http://127.0.0.1:{free_port()}/simple/"
        argv = ("build", "--mirror-url", url, "--no-pypi", "--mirror-dir", str(mirror), "--")
        result = run_pipdepot(*argv, "buildah", "bud", "--isolation", "oci", ".", check=False)
        assert "on this machine's loopback, which the build's own network cannot reach" in one_line_error(
            result, 2
        )
        result = run_pipdepot(*argv, "buildah", "bud", "--isolation", "chroot", ".", check=False)
        assert f"the mirror {url} cannot be reached" in one_line_error(result, 1)

    def test_a_mirror_that_answers_even_401_lets_the_builder_run_and_its_status_is_pipdepot_s(
        self, run_pipdepot: PipdepotRunner, tmp_path: Path
    ) -> None:
        depot = Depot(
            tmp_path / "depot", tmp_path / "serve.log", args=("--reads-need-token", "--offline")
        ).start()
        try:
            url = f"http://__token__:wrong@127.0.0.1:{depot.port}/simple/"
            storage = ("--root", str(tmp_path / "storage"), "--runroot", str(tmp_path / "run"))
            argv = ("build", "--mirror-url", url, "--no-pypi", "--", "buildah", *storage, "bud")
            result = run_pipdepot(*argv, "--isolation", "chroot", str(tmp_path / "no-context"), check=False)
        finally:
            depot.stop()
        assert "pipdepot: error" not in result.stderr
        assert result.returncode not in {0, 2}, result.stderr  # buildah's own failure: no such context
        assert "no-context" in result.stderr

    def test_check_for_a_target_given_as_flags_stops_before_the_builder(
        self, run_pipdepot: PipdepotRunner, mirror: Path, tmp_path: Path
    ) -> None:
        requirements = tmp_path / "requirements.txt"
        requirements.write_text("not-in-the-mirror\n")
        argv = ("build", "--offline", "--mirror-dir", str(mirror), "--check", str(requirements))
        builder = ("--", "buildah", "bud", str(tmp_path / "no-context"))
        target = ("--python-version", "3.11", "--platform", "manylinux_2_36_x86_64")
        result = run_pipdepot(*argv, *target, *builder, check=False)
        assert "the mirror lacks 1 item for 1 target" in one_line_error(result, 1)
        assert (
            "target: cp311-manylinux_2_36_x86_64 (given by --python-version and --platform)" in result.stdout
        )
        assert "no-context" not in result.stdout + result.stderr  # the builder never ran
        result = run_pipdepot(*argv, "--python-version", "3.11", *builder, check=False)
        assert "--python-version and --platform go together" in one_line_error(result, 2)

    def test_an_offline_build_given_a_network(self, run_pipdepot: PipdepotRunner, mirror: Path) -> None:
        argv = (
            "build",
            "--offline",
            "--mirror-dir",
            str(mirror),
            "--",
            "buildah",
            "bud",
            "--network",
            "host",
            ".",
        )
        assert "an offline build has no network" in one_line_error(run_pipdepot(*argv, check=False), 2)


def test_plan_writes_pip_conf_and_uv_toml_alone(run_pipdepot: PipdepotRunner) -> None:
    url = "http://user:secret@127.0.0.1:3141/simple/"
    pip_conf = run_pipdepot("plan", "--mirror-url", url, "--no-pypi", "--format", "pip.conf").stdout
    assert f"index-url = {url}\n" in pip_conf  # the credentials too: it is the file to mount
    assert "[global]" in pip_conf
    uv_toml = run_pipdepot("plan", "--mirror-url", url, "--no-pypi", "--format", "uv.toml").stdout
    assert f'url = "{url}"' in uv_toml
    assert "Mirror plan" not in pip_conf + uv_toml
