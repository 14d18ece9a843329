"""`pipdepot chroot --check` proves for the root's target, read from the root, not for the host's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.roots import diff, fake_root, snapshot
from tests.wheels import build_wheel

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import PipdepotRunner


def test_a_wheel_for_a_newer_glibc_than_the_roots_is_missing(
    tmp_path: Path, run_pipdepot: PipdepotRunner
) -> None:
    """The host (glibc 2.36 here) takes a manylinux_2_34 wheel; a root with glibc 2.31 cannot."""
    root = fake_root(tmp_path / "root", python="3.9", full_version="3.9.18")
    mirror = tmp_path / "mirror"
    wheel = build_wheel(tmp_path / "dist", "fastlib", "1.0", tag="cp39-cp39-manylinux_2_34_x86_64")
    run_pipdepot("add", str(wheel), "--mirror", str(mirror))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("fastlib\n")
    before = snapshot(root)
    argv = ["chroot", str(root), "--offline", "--mirror-dir", str(mirror), "--check", str(requirements)]
    result = run_pipdepot(*argv, "--", "true", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "target: cp39-manylinux_2_31_x86_64 (CPython 3.9.18 (/usr/bin/python3.9), glibc 2.31, x86_64)"
        in result.stdout
    )
    assert "missing: " in result.stdout
    assert "fastlib" in result.stdout
    assert "cp39-manylinux_2_31_x86_64" in result.stdout.split("missing: ", 1)[1]
    assert diff(before, snapshot(root)) == []

    older = build_wheel(tmp_path / "dist", "fastlib", "1.0", tag="cp39-cp39-manylinux_2_17_x86_64")
    run_pipdepot("add", str(older), "--mirror", str(mirror))
    check = run_pipdepot(
        "check",
        "-r",
        str(requirements),
        "--python-version",
        "3.9",
        "--platform",
        "manylinux_2_31_x86_64",
        "--mirror",
        str(mirror),
    )
    assert "ok: cp39-manylinux_2_31_x86_64: 1 file" in check.stdout


def test_a_root_whose_target_cannot_be_read_is_refused_untouched(
    tmp_path: Path, run_pipdepot: PipdepotRunner
) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "sh").write_bytes(b"")  # an OS root in looks, with no python3
    (root / "usr" / "bin" / "sh").chmod(0o755)
    (root / "bin").symlink_to("usr/bin")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("anything\n")
    before = snapshot(root)
    argv = ["chroot", str(root), "--offline", "--mirror-dir", str(tmp_path), "--check", str(requirements)]
    result = run_pipdepot(*argv, "--", "true", check=False)
    assert result.returncode == 1
    assert "has no python3" in result.stderr
    assert diff(before, snapshot(root)) == []
