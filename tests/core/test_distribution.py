"""Local wheels and sdists checked before they may enter the mirror, and what building an sdist needs."""

from __future__ import annotations

import hashlib
import io
import tarfile
import tomllib
import zipfile
from typing import TYPE_CHECKING

import pytest
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from pipdepot.core.distribution import InvalidDistribution, inspect_distribution
from pipdepot.fill.buildsystem import (
    BuildSystem,
    InvalidBuildSystem,
    build_requirements,
    parse_build_system,
    project_build_system,
)
from pipdepot.fill.lockfiles import Pin
from tests.wheels import build_sdist, build_wheel

if TYPE_CHECKING:
    from pathlib import Path


def refusal(path: Path) -> str:
    with pytest.raises(InvalidDistribution) as caught:
        inspect_distribution(path)
    return str(caught.value)


def write_zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def write_tar(path: Path, members: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in members.items():
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return path


def metadata(name: str, version: str, *extra: str) -> str:
    return "\n".join(["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", *extra, ""])


def test_a_wheel_is_read_with_its_metadata(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "My-Pkg", "1.0", requires=("attrs>=20",), tag="py3-none-any")
    found = inspect_distribution(wheel)
    assert found.path == wheel
    assert found.filename == "My_Pkg-1.0-py3-none-any.whl"
    assert found.name == "my-pkg"
    assert found.version == "1.0"
    assert found.sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert found.size == wheel.stat().st_size
    assert found.metadata == b"Metadata-Version: 2.1\nName: My-Pkg\nVersion: 1.0\nRequires-Dist: attrs>=20\n"
    assert found.requires_python is None


def test_a_platform_wheel_keeps_its_version_normalized(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "foo", "2.0.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    found = inspect_distribution(wheel)
    assert (found.filename, found.name, found.version) == (
        "foo-2.0.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "foo",
        "2.0.0",
    )


def test_requires_python_comes_from_the_metadata(tmp_path: Path) -> None:
    wheel = write_zip(
        tmp_path / "foo-1.0-py3-none-any.whl",
        {"foo-1.0.dist-info/METADATA": metadata("foo", "1.0", "Requires-Python: >=3.9")},
    )
    assert inspect_distribution(wheel).requires_python == ">=3.9"


def test_metadata_versions_compare_by_value(tmp_path: Path) -> None:
    wheel = write_zip(
        tmp_path / "foo-1.0-py3-none-any.whl", {"foo-1.0.dist-info/METADATA": metadata("Foo", "1.0.0")}
    )
    assert inspect_distribution(wheel).version == "1.0"


@pytest.mark.parametrize("buildable", [False, True])
def test_an_sdist_is_read_from_its_pkg_info(tmp_path: Path, buildable: bool) -> None:
    sdist = build_sdist(tmp_path, "my-pkg", "2.1", buildable=buildable, build_requires=("flit_core>=3",))
    found = inspect_distribution(sdist)
    assert found.filename == "my_pkg-2.1.tar.gz"
    assert (found.name, found.version) == ("my-pkg", "2.1")
    assert found.sha256 == hashlib.sha256(sdist.read_bytes()).hexdigest()
    assert found.size == sdist.stat().st_size
    assert found.metadata is None
    assert found.requires_python is None


def test_a_zip_sdist_is_read_too(tmp_path: Path) -> None:
    sdist = write_zip(
        tmp_path / "foo-3.0.zip",
        {"foo-3.0/PKG-INFO": metadata("foo", "3.0", "Requires-Python: >=3.10"), "foo-3.0/setup.py": ""},
    )
    found = inspect_distribution(sdist)
    assert (found.name, found.version, found.metadata, found.requires_python) == (
        "foo",
        "3.0",
        None,
        ">=3.10",
    )


@pytest.mark.parametrize(
    "filename", ["foo-1.0.tar.bz2", "foo-1.0.egg", "foo-1.0.exe", "foo-1.0.tgz", "README"]
)
def test_a_file_that_is_neither_wheel_nor_sdist_is_refused(tmp_path: Path, filename: str) -> None:
    path = tmp_path / filename
    path.write_bytes(b"whatever")
    assert refusal(path) == f"{filename}: not a wheel (.whl) or an sdist (.tar.gz, .zip)"


@pytest.mark.parametrize("filename", ["foo-1.0.whl", "foo-one-py3-none-any.whl", "foo.tar.gz", "foo-bar.zip"])
def test_a_bad_filename_is_refused_with_packagings_reason(tmp_path: Path, filename: str) -> None:
    path = tmp_path / filename
    path.write_bytes(b"whatever")
    parse = parse_wheel_filename if filename.endswith(".whl") else parse_sdist_filename
    with pytest.raises((InvalidWheelFilename, InvalidSdistFilename)) as reason:
        parse(filename)
    kind = "wheel" if filename.endswith(".whl") else "sdist"
    message = refusal(path)
    assert message == f"{filename}: {reason.value}"
    assert message.startswith(f"{filename}: Invalid {kind} filename")
    assert "\n" not in message


def test_a_wheel_whose_metadata_names_another_project_is_refused(tmp_path: Path) -> None:
    wheel = write_zip(
        tmp_path / "foo-1.0-py3-none-any.whl", {"foo-1.0.dist-info/METADATA": metadata("bar", "1.0")}
    )
    assert refusal(wheel) == "foo-1.0-py3-none-any.whl: its metadata names project 'bar', not 'foo'"


def test_a_wheel_whose_metadata_names_no_project_is_refused(tmp_path: Path) -> None:
    wheel = write_zip(
        tmp_path / "foo-1.0-py3-none-any.whl",
        {"foo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nVersion: 1.0\n"},
    )
    assert refusal(wheel) == "foo-1.0-py3-none-any.whl: its metadata names project None, not 'foo'"


@pytest.mark.parametrize(
    ("inner", "shown"), [("1.1", "'1.1'"), ("not a version", "'not a version'"), (None, "None")]
)
def test_a_wheel_whose_metadata_has_another_version_is_refused(
    tmp_path: Path, inner: str | None, shown: str
) -> None:
    text = f"Metadata-Version: 2.1\nName: foo\n{'' if inner is None else f'Version: {inner}'}\n"
    wheel = write_zip(tmp_path / "foo-1.0-py3-none-any.whl", {"foo-1.0.dist-info/METADATA": text})
    assert refusal(wheel) == f"foo-1.0-py3-none-any.whl: its metadata says version {shown}, not '1.0'"


def test_an_sdist_whose_pkg_info_disagrees_with_its_name_is_refused(tmp_path: Path) -> None:
    sdist = build_sdist(tmp_path, "foo", "1.0")
    renamed = sdist.rename(tmp_path / "foo-1.1.tar.gz")
    assert refusal(renamed) == "foo-1.1.tar.gz: its metadata says version '1.0', not '1.1'"
    other = renamed.rename(tmp_path / "bar-1.0.tar.gz")
    assert refusal(other) == "bar-1.0.tar.gz: its metadata names project 'foo', not 'bar'"


@pytest.mark.parametrize(
    "members",
    [
        {"foo/__init__.py": ""},
        {"foo-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\n"},
        {"deep/foo-1.0.dist-info/METADATA": metadata("foo", "1.0")},
        {
            "foo-1.0.dist-info/METADATA": metadata("foo", "1.0"),
            "foo-0.9.dist-info/METADATA": metadata("foo", "1.0"),
        },
    ],
)
def test_a_wheel_without_exactly_one_metadata_is_refused(tmp_path: Path, members: dict[str, str]) -> None:
    wheel = write_zip(tmp_path / "foo-1.0-py3-none-any.whl", members)
    assert refusal(wheel) == "foo-1.0-py3-none-any.whl: a wheel needs exactly one *.dist-info/METADATA"


@pytest.mark.parametrize(
    "members", [{"foo-1.0/setup.py": ""}, {"PKG-INFO": metadata("foo", "1.0")}, {"a/b/PKG-INFO": "x"}]
)
def test_an_sdist_without_top_level_pkg_info_is_refused(tmp_path: Path, members: dict[str, str]) -> None:
    sdist = write_tar(tmp_path / "foo-1.0.tar.gz", members)
    assert refusal(sdist) == "foo-1.0.tar.gz: an sdist needs <name>-<version>/PKG-INFO"


def test_a_corrupt_wheel_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "foo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x03\x04 this is not really a zip file")
    assert (
        refusal(wheel)
        == "foo-1.0-py3-none-any.whl: unreadable archive: not a zip archive (no end of central directory)"
    )


def test_a_truncated_wheel_is_refused(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "foo", "1.0")
    data = wheel.read_bytes()
    wheel.write_bytes(data[: len(data) // 2])
    assert (
        refusal(wheel)
        == "foo-1.0-py3-none-any.whl: unreadable archive: not a zip archive (no end of central directory)"
    )


def test_a_corrupt_zip_sdist_is_refused(tmp_path: Path) -> None:
    sdist = tmp_path / "foo-1.0.zip"
    sdist.write_bytes(b"not a zip at all")
    assert (
        refusal(sdist) == "foo-1.0.zip: unreadable archive: not a zip archive (no end of central directory)"
    )


def test_a_corrupt_tar_sdist_is_refused_in_one_line(tmp_path: Path) -> None:
    sdist = tmp_path / "foo-1.0.tar.gz"
    sdist.write_bytes(b"not a tarball")
    message = refusal(sdist)
    assert message.startswith("foo-1.0.tar.gz: unreadable archive: ")
    assert "\n" not in message


def test_a_truncated_tar_sdist_is_refused(tmp_path: Path) -> None:
    sdist = build_sdist(tmp_path, "foo", "1.0")
    data = sdist.read_bytes()
    sdist.write_bytes(data[: len(data) // 2])
    assert refusal(sdist).startswith("foo-1.0.tar.gz: unreadable archive: ")


@pytest.mark.parametrize(
    ("build_requires", "expected"),
    [
        (("hatchling>=1.25",), ["hatchling>=1.25"]),
        (("setuptools>=64", "wheel"), ["setuptools>=64", "wheel"]),
        ((), []),
    ],
)
def test_build_requirements_are_the_pyproject_build_system_requires(
    tmp_path: Path, build_requires: tuple[str, ...], expected: list[str]
) -> None:
    sdist = build_sdist(tmp_path, "foo", "1.0", buildable=True, build_requires=build_requires)
    assert list(build_requirements(sdist).requires) == expected


def test_an_sdist_without_pyproject_needs_the_legacy_setuptools(tmp_path: Path) -> None:
    system = build_requirements(build_sdist(tmp_path, "foo", "1.0"))
    # pip 23.0.1 (bookworm's) installs wheel too, and fails offline without it
    assert system.requires == ("setuptools>=40.8.0", "wheel")
    assert system.setuptools


@pytest.mark.parametrize(
    ("pyproject", "expected"),
    [
        ('[project]\nname = "foo"\n', ["setuptools>=40.8.0", "wheel"]),
        ('[build-system]\nbuild-backend = "x"\n', ["setuptools>=40.8.0", "wheel"]),
        ('build-system = "odd"\n', ["setuptools>=40.8.0", "wheel"]),
        ('[build-system]\nrequires = ["flit_core >=3.2,<4"]\n', ["flit_core >=3.2,<4"]),
    ],
)
def test_build_requirements_when_pyproject_says_little(
    tmp_path: Path, pyproject: str, expected: list[str]
) -> None:
    sdist = write_tar(
        tmp_path / "foo-1.0.tar.gz",
        {"foo-1.0/PKG-INFO": metadata("foo", "1.0"), "foo-1.0/pyproject.toml": pyproject},
    )
    assert list(build_requirements(sdist).requires) == expected


def test_build_requirements_read_only_the_top_level_pyproject(tmp_path: Path) -> None:
    sdist = write_tar(
        tmp_path / "foo-1.0.tar.gz",
        {
            "foo-1.0/PKG-INFO": metadata("foo", "1.0"),
            "foo-1.0/vendored/pyproject.toml": '[build-system]\nrequires = ["wrong"]\n',
        },
    )
    assert list(build_requirements(sdist).requires) == ["setuptools>=40.8.0", "wheel"]


def test_build_requirements_of_a_zip_sdist(tmp_path: Path) -> None:
    sdist = write_zip(
        tmp_path / "foo-1.0.zip",
        {
            "foo-1.0/PKG-INFO": metadata("foo", "1.0"),
            "foo-1.0/pyproject.toml": '[build-system]\nrequires = ["pdm-backend"]\n',
        },
    )
    assert list(build_requirements(sdist).requires) == ["pdm-backend"]
    bare = write_zip(tmp_path / "bar-1.0.zip", {"bar-1.0/PKG-INFO": metadata("bar", "1.0")})
    assert list(build_requirements(bare).requires) == ["setuptools>=40.8.0", "wheel"]


@pytest.mark.parametrize("pyproject", [b"[build-system\n", b"requires = \xff\n"])
def test_an_unreadable_pyproject_is_refused(tmp_path: Path, pyproject: bytes) -> None:
    sdist = tmp_path / "foo-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        member = tarfile.TarInfo("foo-1.0/pyproject.toml")
        member.size = len(pyproject)
        archive.addfile(member, io.BytesIO(pyproject))
    with pytest.raises((tomllib.TOMLDecodeError, UnicodeDecodeError)) as reason:
        tomllib.loads(pyproject.decode())
    with pytest.raises(InvalidDistribution) as caught:
        build_requirements(sdist)
    assert str(caught.value) == f"foo-1.0.tar.gz: unreadable sdist: {reason.value}"


def test_a_corrupt_zip_sdist_has_no_build_requirements_to_read(tmp_path: Path) -> None:
    sdist = tmp_path / "foo-1.0.zip"
    sdist.write_bytes(b"not a zip")
    with pytest.raises(InvalidDistribution) as caught:
        build_requirements(sdist)
    assert (
        str(caught.value) == "foo-1.0.zip: unreadable sdist: not a zip archive (no end of central directory)"
    )


@pytest.mark.parametrize(
    ("backend", "setuptools", "added"),
    [
        ("setuptools.build_meta", "70.0.0", ("wheel",)),
        ("setuptools.build_meta:__legacy__", "69.5.1", ("wheel",)),
        (None, "65.5.0", ("wheel",)),
        ("setuptools.build_meta", "70.1.0", ()),
        ("setuptools.build_meta", "80.9.0", ()),
        ("hatchling.build", "65.5.0", ()),
    ],
)
def test_old_setuptools_asks_for_wheel_at_build_time(
    backend: str | None, setuptools: str, added: tuple[str, ...]
) -> None:
    """setuptools < 70.1's get_requires_for_build_wheel returns ["wheel"]: pip installs it too."""
    system = BuildSystem(("setuptools<71",), backend)
    assert system.dynamic([Pin(canonicalize_name("setuptools"), setuptools)]) == added
    with_wheel = [Pin(canonicalize_name("setuptools"), setuptools), Pin(canonicalize_name("wheel"), "0.45.1")]
    assert system.dynamic(with_wheel) == ()


def test_the_backend_is_read_with_the_requirements() -> None:
    system = parse_build_system(
        b'[build-system]\nrequires = ["flit_core"]\nbuild-backend = "flit_core.buildapi"\n'
    )
    assert system == BuildSystem(("flit_core",), "flit_core.buildapi")
    assert not system.setuptools


def test_a_local_project_without_pyproject_builds_with_legacy_setuptools(tmp_path: Path) -> None:
    assert project_build_system(tmp_path).requires == ("setuptools>=40.8.0", "wheel")
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = ["hatchling"]\n')
    assert project_build_system(tmp_path).requires == ("hatchling",)
    (tmp_path / "pyproject.toml").write_bytes(b"x" * (1024 * 1024 + 1))
    with pytest.raises(InvalidBuildSystem, match="larger than"):
        project_build_system(tmp_path)
