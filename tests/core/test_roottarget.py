"""A build root's target read from its files: Python, libc and version, architecture."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from packaging.tags import Tag

from pipdepot.core.targets import platform_target
from pipdepot.element.roottarget import read_root_target
from pipdepot.errors import BuildRootError
from tests.roots import elf_executable, fake_root


def test_glibc_root_through_debian_like_symlinks(tmp_path: Path) -> None:
    target = read_root_target(fake_root(tmp_path / "root"))
    assert (target.python, target.full_version, target.libc, target.libc_version, target.arch) == (
        "3.9",
        "3.9.18",
        "glibc",
        (2, 31),
        "x86_64",
    )
    assert target.platform == "manylinux_2_31_x86_64"
    assert str(target) == "CPython 3.9.18 (/usr/bin/python3.9), glibc 2.31, x86_64"


def test_musl_root(tmp_path: Path) -> None:
    root = fake_root(
        tmp_path / "root",
        python="3.12",
        full_version="3.12.7",
        machine=183,
        loader="/lib/ld-musl-aarch64.so.1",
        loader_text=b"musl libc (aarch64)\nVersion %s\n\x001.2.4\x00",
    )
    target = read_root_target(root)
    assert target.platform == "musllinux_1_2_aarch64"
    assert target.python == "3.12"


def test_without_python3_the_newest_python3_x(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "root", python="3.9")
    (root / "usr" / "bin" / "python3").unlink()
    (root / "usr" / "bin" / "python3.12").write_bytes((root / "usr" / "bin" / "python3.9").read_bytes())
    assert read_root_target(root).python == "3.12"


def test_the_loader_is_read_inside_the_root_never_on_the_host(tmp_path: Path) -> None:
    """The loader's absolute symlink is resolved with the root as /: the host's glibc is not read."""
    root = fake_root(tmp_path / "root", loader_text=b"stable release version 2.17.\n")
    assert read_root_target(root).libc_version == (2, 17)


@pytest.mark.skipif(not Path("/usr/bin/python3.11").is_file(), reason="needs Debian's python3.11")
def test_real_debian_files(tmp_path: Path) -> None:
    """The host's own python3.11 and ld.so (bookworm's) copied into a root."""
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    shutil.copy("/usr/bin/python3.11", root / "usr" / "bin" / "python3.11")
    (root / "usr" / "bin" / "python3").symlink_to("python3.11")
    multiarch = root / "lib" / "x86_64-linux-gnu"
    multiarch.mkdir(parents=True)
    shutil.copy(Path("/lib64/ld-linux-x86-64.so.2").resolve(), multiarch / "ld-linux-x86-64.so.2")
    (root / "lib64").mkdir()
    (root / "lib64" / "ld-linux-x86-64.so.2").symlink_to("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    target = read_root_target(root)
    assert target.libc == "glibc"
    assert target.python == "3.11"
    assert target.full_version is not None
    assert target.full_version.startswith("3.11.")


def test_the_target_takes_the_wheels_that_root_can_install(tmp_path: Path) -> None:
    found = read_root_target(fake_root(tmp_path / "root"))
    target = platform_target(found.python, found.platform, full_version=found.full_version)
    assert str(target) == "cp39-manylinux_2_31_x86_64"
    assert target.markers()["python_full_version"] == "3.9.18"
    assert target.rank([Tag("cp39", "cp39", "manylinux_2_17_x86_64")]) is not None
    assert target.rank([Tag("cp39", "cp39", "manylinux_2_34_x86_64")]) is None


def test_roots_pipdepot_cannot_read_are_one_line_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BuildRootError, match="has no python3"):
        read_root_target(empty)
    pypy = tmp_path / "pypy"
    (pypy / "usr" / "bin").mkdir(parents=True)
    (pypy / "usr" / "bin" / "pypy3.10").write_bytes(elf_executable(62, "/lib64/ld-linux-x86-64.so.2"))
    (pypy / "usr" / "bin" / "python3").symlink_to("pypy3.10")
    with pytest.raises(BuildRootError, match="not CPython"):
        read_root_target(pypy)
    script = tmp_path / "script"
    (script / "usr" / "bin").mkdir(parents=True)
    (script / "usr" / "bin" / "python3.11").write_text("#!/bin/sh\n")
    (script / "usr" / "bin" / "python3").symlink_to("python3.11")
    with pytest.raises(BuildRootError, match="as an ELF executable"):
        read_root_target(script)
    unknown = fake_root(tmp_path / "unknown", loader_text=b"no banner here")
    with pytest.raises(BuildRootError, match="cannot tell the libc"):
        read_root_target(unknown)
    odd = fake_root(tmp_path / "odd", machine=9999)
    with pytest.raises(BuildRootError, match="ELF machine 9999"):
        read_root_target(odd)
