"""Install targets: versions and platform tags in, wheel tags, markers and uv platforms out."""

from __future__ import annotations

import platform
import sys

import pytest
from packaging.markers import Marker
from packaging.tags import Tag, parse_tag

from pipdepot.core.targets import InvalidTarget, Target, host_target, make_targets, parse_python_version

HOST = f"{sys.version_info[0]}.{sys.version_info[1]}"
HOST_CP = f"cp{sys.version_info[0]}{sys.version_info[1]}"
KNOWN = (
    "(manylinux_2_N_ARCH, manylinux2014_ARCH, musllinux_1_N_ARCH, linux_ARCH, "
    "macosx_X_Y_ARCH, win_amd64, win_arm64, win32)"
)


def target(platform_tag: str, python: str = "3.11") -> Target:
    [only] = make_targets([python], [platform_tag])
    return only


def rank(on: Target, wheel_tags: str) -> int | None:
    return on.rank(parse_tag(wheel_tags))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3.6", (3, 6)), ("3.11", (3, 11)), ("3.14", (3, 14)), (" 3.12 ", (3, 12)), ("3.99", (3, 99))],
)
def test_parse_python_version(value: str, expected: tuple[int, int]) -> None:
    assert parse_python_version(value) == expected


@pytest.mark.parametrize("value", ["3", "3.5", "2.7", "4.0", "3.11.2", "3.x", "three", "", "3.100", "py311"])
def test_parse_python_version_refuses_what_is_not_a_cpython_3_minor(value: str) -> None:
    with pytest.raises(InvalidTarget) as caught:
        parse_python_version(value)
    assert str(caught.value) == f"--python-version {value!r} is not a Python version like 3.11"


def test_no_version_and_no_platform_is_this_machine() -> None:
    [only] = make_targets([], [])
    assert (only.python, only.platform, only.uv_platform) == (HOST, None, None)
    assert str(only) == f"{HOST_CP}-host"
    assert only.markers()["sys_platform"] == sys.platform
    assert only.markers()["python_version"] == HOST


def test_a_version_without_a_platform_keeps_this_machines_platform() -> None:
    [only] = make_targets(["3.12"], [])
    environment = only.markers()
    assert (only.python, only.platform, only.uv_platform, str(only)) == ("3.12", None, None, "cp312-host")
    assert environment["python_version"] == "3.12"
    assert environment["python_full_version"] == "3.12.0"
    assert environment["sys_platform"] == sys.platform
    assert environment["platform_machine"] == platform.machine()
    assert only.tags[0].interpreter == "cp312"
    assert only.tags[0].abi == "cp312"
    assert rank(only, "py3-none-any") is not None


def test_host_target_without_a_version_is_this_interpreter() -> None:
    assert host_target().python == HOST
    assert host_target("3.13").python == "3.13"


def test_a_platform_without_a_version_takes_this_interpreters_version() -> None:
    assert [str(t) for t in make_targets([], ["win_amd64"])] == [f"{HOST_CP}-win_amd64"]


def test_every_combination_versions_first_duplicates_once() -> None:
    targets = make_targets(
        ["3.11", "3.12", "3.11"], ["manylinux_2_28_x86_64", "win_amd64", "manylinux_2_28_x86_64"]
    )
    assert [str(t) for t in targets] == [
        "cp311-manylinux_2_28_x86_64",
        "cp311-win_amd64",
        "cp312-manylinux_2_28_x86_64",
        "cp312-win_amd64",
    ]


def test_a_bad_version_is_refused_before_any_platform_is_looked_at() -> None:
    with pytest.raises(InvalidTarget, match=r"^--python-version '2\.7' is not"):
        make_targets(["3.11", "2.7"], [])
    with pytest.raises(InvalidTarget, match=r"^--python-version '2\.7' is not"):
        make_targets(["2.7"], ["not a tag"])


# (platform tag, uv platform, sys_platform, platform_system, platform_machine)
PLATFORMS: list[tuple[str, str, str, str, str]] = [
    ("manylinux_2_28_x86_64", "x86_64-manylinux_2_28", "linux", "Linux", "x86_64"),
    ("manylinux_2_17_aarch64", "aarch64-manylinux_2_17", "linux", "Linux", "aarch64"),
    ("manylinux_2_31_x86_64", "x86_64-manylinux_2_31", "linux", "Linux", "x86_64"),
    ("manylinux_2_30_x86_64", "x86_64-manylinux_2_28", "linux", "Linux", "x86_64"),
    ("manylinux_2_45_x86_64", "x86_64-manylinux_2_40", "linux", "Linux", "x86_64"),
    ("manylinux2014_x86_64", "x86_64-manylinux_2_17", "linux", "Linux", "x86_64"),
    ("manylinux2014_aarch64", "aarch64-manylinux_2_17", "linux", "Linux", "aarch64"),
    ("manylinux1_x86_64", "x86_64-manylinux_2_17", "linux", "Linux", "x86_64"),
    ("musllinux_1_2_x86_64", "x86_64-unknown-linux-musl", "linux", "Linux", "x86_64"),
    ("musllinux_1_1_aarch64", "aarch64-unknown-linux-musl", "linux", "Linux", "aarch64"),
    ("linux_x86_64", "x86_64-unknown-linux-gnu", "linux", "Linux", "x86_64"),
    ("linux_aarch64", "aarch64-unknown-linux-gnu", "linux", "Linux", "aarch64"),
    ("macosx_11_0_arm64", "aarch64-apple-darwin", "darwin", "Darwin", "arm64"),
    ("macosx_10_9_x86_64", "x86_64-apple-darwin", "darwin", "Darwin", "x86_64"),
    ("macosx_11_0_universal2", "aarch64-apple-darwin", "darwin", "Darwin", "arm64"),
    ("win_amd64", "x86_64-pc-windows-msvc", "win32", "Windows", "AMD64"),
    ("win_arm64", "aarch64-pc-windows-msvc", "win32", "Windows", "ARM64"),
    ("win32", "i686-pc-windows-msvc", "win32", "Windows", "x86"),
]


@pytest.mark.parametrize(("tag", "uv_platform", "sys_platform", "system", "machine"), PLATFORMS)
def test_platform_families(tag: str, uv_platform: str, sys_platform: str, system: str, machine: str) -> None:
    on = target(tag, "3.12")
    environment = on.markers()
    assert (on.python, on.platform, on.uv_platform, str(on)) == ("3.12", tag, uv_platform, f"cp312-{tag}")
    assert environment["sys_platform"] == sys_platform
    assert environment["platform_system"] == system
    assert environment["platform_machine"] == machine
    assert environment["os_name"] == ("nt" if system == "Windows" else "posix")
    assert environment["python_version"] == "3.12"
    assert environment["python_full_version"] == "3.12.0"
    assert environment["implementation_name"] == "cpython"
    assert environment["platform_python_implementation"] == "CPython"
    assert on.tags[0] == Tag("cp312", "cp312", on.tags[0].platform)
    assert rank(on, "py3-none-any") is not None


def test_markers_are_evaluated_against_the_target_not_this_machine() -> None:
    marker = Marker("sys_platform == 'win32' and python_version < '3.12'")
    assert marker.evaluate(target("win_amd64", "3.11").markers()) is True
    assert marker.evaluate(target("win_amd64", "3.12").markers()) is False
    assert marker.evaluate(target("manylinux_2_28_x86_64", "3.11").markers()) is False


@pytest.mark.parametrize(
    ("tag", "platforms"),
    [
        (
            "manylinux2014_x86_64",
            [
                "manylinux_2_17_x86_64",
                "manylinux2014_x86_64",
                "manylinux_2_16_x86_64",
                "manylinux_2_15_x86_64",
                "manylinux_2_14_x86_64",
                "manylinux_2_13_x86_64",
                "manylinux_2_12_x86_64",
                "manylinux2010_x86_64",
                "manylinux_2_11_x86_64",
                "manylinux_2_10_x86_64",
                "manylinux_2_9_x86_64",
                "manylinux_2_8_x86_64",
                "manylinux_2_7_x86_64",
                "manylinux_2_6_x86_64",
                "manylinux_2_5_x86_64",
                "manylinux1_x86_64",
                "linux_x86_64",
            ],
        ),
        ("manylinux1_x86_64", ["manylinux_2_5_x86_64", "manylinux1_x86_64", "linux_x86_64"]),
        (
            "musllinux_1_2_x86_64",
            ["musllinux_1_2_x86_64", "musllinux_1_1_x86_64", "musllinux_1_0_x86_64", "linux_x86_64"],
        ),
        ("linux_aarch64", ["linux_aarch64"]),
        ("win_amd64", ["win_amd64"]),
        ("win32", ["win32"]),
    ],
)
def test_platform_tags_in_order_of_preference(tag: str, platforms: list[str]) -> None:
    on = target(tag)
    best = [t.platform for t in on.tags if t.interpreter == "cp311" and t.abi == "cp311"]
    assert best == platforms


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("Linux", "--platform 'Linux' is not a wheel platform tag (like manylinux_2_28_x86_64)"),
        ("", "--platform '' is not a wheel platform tag (like manylinux_2_28_x86_64)"),
        (
            "manylinux-2-28",
            "--platform 'manylinux-2-28' is not a wheel platform tag (like manylinux_2_28_x86_64)",
        ),
        (
            "manylinux_2_28_riscv64",
            f"--platform 'manylinux_2_28_riscv64': not a platform pipdepot can target {KNOWN}",
        ),
        (
            "freebsd_13_x86_64",
            f"--platform 'freebsd_13_x86_64': not a platform pipdepot can target {KNOWN}",
        ),
        (
            "manylinux_2_28_i686",
            "--platform 'manylinux_2_28_i686': uv resolves Linux only for x86_64 and aarch64",
        ),
        (
            "musllinux_1_2_armv7l",
            "--platform 'musllinux_1_2_armv7l': uv resolves Linux only for x86_64 and aarch64",
        ),
        ("linux_s390x", "--platform 'linux_s390x': uv resolves Linux only for x86_64 and aarch64"),
    ],
)
def test_invalid_platforms_are_refused_in_one_line_naming_the_value(tag: str, message: str) -> None:
    with pytest.raises(InvalidTarget) as caught:
        make_targets(["3.11"], [tag])
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "tag",
    [
        "manylinux2014_ppc64le",  # refused as 'manylinux_2_17_ppc64le'
        "manylinux_3_0_x86_64",  # refused as "--platform: glibc 3.0 does not exist"
    ],
)
def test_linux_refusals_name_the_value_given(tag: str) -> None:
    with pytest.raises(InvalidTarget) as caught:
        make_targets(["3.11"], [tag])
    assert repr(tag) in str(caught.value)


def test_a_musl_major_version_that_does_not_exist_is_refused() -> None:
    with pytest.raises(InvalidTarget):
        make_targets(["3.11"], ["musllinux_2_3_x86_64"])


def test_every_target_names_the_same_marker_variables() -> None:
    linux = target("manylinux_2_28_x86_64").markers()
    windows = target("win_amd64").markers()
    assert sorted(windows) == sorted(linux)


@pytest.mark.parametrize(
    ("better", "worse"),
    [
        ("cp311-cp311-manylinux_2_28_x86_64", "py3-none-any"),
        ("cp311-cp311-manylinux_2_28_x86_64", "cp311-cp311-manylinux_2_17_x86_64"),
        ("cp311-cp311-manylinux_2_17_x86_64", "cp311-abi3-manylinux_2_28_x86_64"),
        ("cp311-abi3-manylinux_2_28_x86_64", "cp38-abi3-manylinux_2_17_x86_64"),
        ("cp38-abi3-manylinux_2_17_x86_64", "py3-none-manylinux_2_17_x86_64"),
        ("py3-none-manylinux_2_17_x86_64", "cp311-none-any"),
        ("cp311-none-any", "py3-none-any"),
    ],
)
def test_rank_orders_wheels_as_pip_prefers_them(better: str, worse: str) -> None:
    on = target("manylinux_2_28_x86_64")
    good, bad = rank(on, better), rank(on, worse)
    assert good is not None
    assert bad is not None
    assert good < bad


def test_rank_of_exact_tags() -> None:
    on = target("manylinux_2_28_x86_64")
    assert rank(on, "cp311-cp311-manylinux_2_28_x86_64") == 0
    assert rank(on, "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64") == 11
    assert rank(on, "py2.py3-none-any") == rank(on, "py3-none-any")


@pytest.mark.parametrize(
    ("platform_tag", "wheel_tags"),
    [
        ("manylinux_2_28_x86_64", "cp312-cp312-manylinux_2_28_x86_64"),
        ("manylinux_2_28_x86_64", "cp311-cp311-manylinux_2_34_x86_64"),
        ("manylinux_2_28_x86_64", "cp311-cp311-manylinux_2_17_aarch64"),
        ("manylinux_2_28_x86_64", "cp311-cp311-musllinux_1_2_x86_64"),
        ("manylinux_2_28_x86_64", "cp311-cp311-win_amd64"),
        ("manylinux_2_28_x86_64", "cp312-abi3-manylinux_2_17_x86_64"),
        ("manylinux_2_28_x86_64", "pp310-pypy310_pp73-manylinux_2_17_x86_64"),
        ("manylinux_2_28_x86_64", "py2-none-any"),
        ("manylinux1_x86_64", "cp311-cp311-manylinux2014_x86_64"),
        ("musllinux_1_1_x86_64", "cp311-cp311-musllinux_1_2_x86_64"),
        ("musllinux_1_2_x86_64", "cp311-cp311-manylinux_2_17_x86_64"),
        ("macosx_11_0_arm64", "cp311-cp311-macosx_10_9_x86_64"),
        ("macosx_10_9_x86_64", "cp311-cp311-macosx_11_0_arm64"),
        ("win_amd64", "cp311-cp311-win32"),
        ("win32", "cp311-cp311-win_amd64"),
    ],
)
def test_wheels_that_cannot_install_have_no_rank(platform_tag: str, wheel_tags: str) -> None:
    assert rank(target(platform_tag), wheel_tags) is None


@pytest.mark.parametrize(
    ("platform_tag", "wheel_tags"),
    [
        ("manylinux_2_28_x86_64", "cp38-abi3-manylinux_2_17_x86_64"),
        ("manylinux_2_28_x86_64", "cp311-cp311-manylinux2014_x86_64"),
        ("manylinux_2_28_x86_64", "cp311-cp311-manylinux_2_5_x86_64.manylinux1_x86_64"),
        ("manylinux_2_28_x86_64", "cp311-cp311-linux_x86_64"),
        ("manylinux_2_28_x86_64", "py2.py3-none-any"),
        ("manylinux2014_x86_64", "cp311-cp311-manylinux_2_17_x86_64"),
        ("musllinux_1_2_x86_64", "cp311-cp311-musllinux_1_1_x86_64"),
        ("macosx_11_0_arm64", "cp311-cp311-macosx_10_9_universal2"),
        ("macosx_11_0_arm64", "cp311-cp311-macosx_11_0_arm64"),
        ("win_amd64", "cp311-cp311-win_amd64"),
        ("win_arm64", "cp39-abi3-win_arm64"),
    ],
)
def test_wheels_that_install_have_a_rank(platform_tag: str, wheel_tags: str) -> None:
    assert rank(target(platform_tag), wheel_tags) is not None


def test_targets_compare_by_value_and_hash() -> None:
    first, second = target("win_amd64"), target("win_amd64")
    assert first == second
    assert hash(first) == hash(second)
    assert first != target("win_amd64", "3.12")
    assert len({first, second, target("win32")}) == 2
