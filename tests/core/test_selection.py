"""Which file of a pinned version a target gets: the best wheel there, else the sdist, else nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pipdepot.core.names import NormalizedName
from pipdepot.core.targets import Target, make_targets
from pipdepot.fill.lockfiles import Pin
from pipdepot.fill.selection import choose_file, files_of_version

if TYPE_CHECKING:
    from pipdepot.core.project import FileEntry

LINUX = make_targets(["3.11"], ["manylinux_2_28_x86_64"])[0]
LINUX_312 = make_targets(["3.12"], ["manylinux_2_28_x86_64"])[0]
OLD_LINUX = make_targets(["3.11"], ["manylinux2014_x86_64"])[0]
WINDOWS = make_targets(["3.11"], ["win_amd64"])[0]
MAC = make_targets(["3.11"], ["macosx_11_0_arm64"])[0]


def entry(filename: str, sha256: str | None = None) -> FileEntry:
    found: FileEntry = {"filename": filename, "url": f"https://files.invalid/{filename}"}
    if sha256 is not None:
        found["hashes"] = {"sha256": sha256}
    return found


def pin(version: str = "1.0", *, hashes: set[str] | None = None, filenames: set[str] | None = None) -> Pin:
    return Pin(NormalizedName("foo"), version, frozenset(hashes or ()), frozenset(filenames or ()))


def chosen(entries: list[FileEntry], target: Target, wanted: Pin | None = None) -> str | None:
    found = choose_file(entries, wanted or pin(), target)
    return None if found is None else str(found["filename"])


FILES = [
    entry("foo-1.0.tar.gz"),
    entry("foo-1.0.zip"),
    entry("foo-1.0-py3-none-any.whl"),
    entry("foo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
    entry("foo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"),
    entry("foo-1.0-cp311-cp311-manylinux_2_34_x86_64.whl"),
    entry("foo-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"),
    entry("foo-1.0-cp311-cp311-win_amd64.whl"),
    entry("foo-1.0-cp311-cp311-macosx_10_9_x86_64.whl"),
    entry("foo-2.0-cp311-cp311-manylinux_2_28_x86_64.whl"),
]


@pytest.mark.parametrize(
    ("target", "filename"),
    [
        (LINUX, "foo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"),
        (OLD_LINUX, "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
        (LINUX_312, "foo-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"),
        (WINDOWS, "foo-1.0-cp311-cp311-win_amd64.whl"),
        (MAC, "foo-1.0-py3-none-any.whl"),
    ],
    ids=str,
)
def test_the_best_ranked_wheel_for_the_target(target: Target, filename: str) -> None:
    assert chosen(FILES, target) == filename


def test_order_of_entries_does_not_change_the_choice() -> None:
    assert chosen(list(reversed(FILES)), LINUX) == "foo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"


@pytest.mark.parametrize(
    ("files", "filename"),
    [
        (["foo-1.0.zip", "foo-1.0.tar.gz"], "foo-1.0.tar.gz"),
        (["foo-1.0.tar.gz", "foo-1.0.zip"], "foo-1.0.tar.gz"),
        (["foo-1.0.zip"], "foo-1.0.zip"),
        (["foo-1.0.zip", "foo-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"], "foo-1.0.zip"),
        (["foo-1.0-cp311-cp311-win_amd64.whl", "foo-1.0.tar.gz"], "foo-1.0.tar.gz"),
        (["foo-1.0.tar.gz", "foo-1.0-cp311-cp311-linux_x86_64.whl"], "foo-1.0-cp311-cp311-linux_x86_64.whl"),
    ],
)
def test_the_sdist_only_when_no_wheel_fits_tar_gz_before_zip(files: list[str], filename: str) -> None:
    assert chosen([entry(f) for f in files], LINUX) == filename


@pytest.mark.parametrize(
    "files",
    [
        [],
        ["foo-1.0-cp312-cp312-manylinux_2_28_x86_64.whl", "foo-1.0-cp311-cp311-manylinux_2_34_x86_64.whl"],
        ["foo-2.0.tar.gz", "foo-2.0-py3-none-any.whl"],
        ["foo-1.0-not-a-wheel.whl", "foo-1.0.egg", "foo-1.0.win32.exe"],
    ],
)
def test_none_when_nothing_fits(files: list[str]) -> None:
    assert chosen([entry(f) for f in files], LINUX) is None


@pytest.mark.parametrize(
    ("version", "files", "filename"),
    [
        ("1.0", ["foo-1.0.0-py3-none-any.whl"], "foo-1.0.0-py3-none-any.whl"),
        ("1.0.0", ["foo-1.0-py3-none-any.whl"], "foo-1.0-py3-none-any.whl"),
        ("1.0", ["Foo-1.0.0.tar.gz"], "Foo-1.0.0.tar.gz"),
        ("1.0a1", ["foo-1.0.0a1.tar.gz", "foo-1.0.tar.gz"], "foo-1.0.0a1.tar.gz"),
        (
            "1.0.post1",
            ["foo-1.0-1-py3-none-any.whl", "foo-1.0.post1-py3-none-any.whl"],
            "foo-1.0.post1-py3-none-any.whl",
        ),
        ("1.0", ["foo-1.0.post1.tar.gz", "foo-1.0-1-py3-none-any.whl"], "foo-1.0-1-py3-none-any.whl"),
        ("1!2.0", ["foo-2.0.tar.gz", "foo-1!2.0.tar.gz"], "foo-1!2.0.tar.gz"),
    ],
)
def test_versions_match_by_value(version: str, files: list[str], filename: str) -> None:
    assert chosen([entry(f) for f in files], LINUX, pin(version)) == filename


def test_files_of_version_compares_versions_not_strings() -> None:
    entries = [entry("foo-1.0.0.tar.gz"), entry("foo-1.0-py3-none-any.whl"), entry("foo-1.0.1.tar.gz")]
    assert [e["filename"] for e in files_of_version(entries, "1.0")] == [
        "foo-1.0.0.tar.gz",
        "foo-1.0-py3-none-any.whl",
    ]
    assert files_of_version(entries, "1.1") == []


def test_pin_hashes_allow_only_files_with_those_sha256() -> None:
    entries = [
        entry("foo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl", "a" * 64),
        entry("foo-1.0-py3-none-any.whl", "B" * 64),
        entry("foo-1.0.tar.gz", "c" * 64),
        entry("foo-1.0-cp311-abi3-manylinux_2_28_x86_64.whl"),
    ]
    assert chosen(entries, LINUX, pin(hashes={"a" * 64})) == "foo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    assert chosen(entries, LINUX, pin(hashes={"b" * 64, "c" * 64})) == "foo-1.0-py3-none-any.whl"
    assert chosen(entries, LINUX, pin(hashes={"c" * 64})) == "foo-1.0.tar.gz"
    assert chosen(entries, LINUX, pin(hashes={"d" * 64})) is None
    assert chosen(entries, LINUX) == "foo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"


def test_pin_filenames_allow_only_those_files() -> None:
    only = pin(filenames={"foo-1.0-py3-none-any.whl", "foo-1.0.zip"})
    assert chosen(FILES, LINUX, only) == "foo-1.0-py3-none-any.whl"
    assert chosen(FILES, LINUX, pin(filenames={"foo-1.0.zip"})) == "foo-1.0.zip"
    assert chosen(FILES, LINUX, pin(filenames={"foo-1.0-cp311-cp311-win_amd64.whl"})) is None


def test_hashes_and_filenames_both_apply() -> None:
    entries = [entry("foo-1.0-py3-none-any.whl", "a" * 64), entry("foo-1.0.tar.gz", "b" * 64)]
    both = pin(hashes={"a" * 64, "b" * 64}, filenames={"foo-1.0.tar.gz"})
    assert chosen(entries, LINUX, both) == "foo-1.0.tar.gz"
    neither = pin(hashes={"a" * 64}, filenames={"foo-1.0.tar.gz"})
    assert chosen(entries, LINUX, neither) is None


def test_usable_narrows_the_choice() -> None:
    refused: list[str] = []

    def not_manylinux(found: FileEntry) -> bool:
        if "manylinux" in found["filename"]:
            refused.append(found["filename"])
            return False
        return True

    best = choose_file(FILES, pin(), LINUX, usable=not_manylinux)
    assert best is not None
    assert best["filename"] == "foo-1.0-py3-none-any.whl"
    assert sorted(refused) == [
        "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "foo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        "foo-1.0-cp311-cp311-manylinux_2_34_x86_64.whl",
        "foo-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
    ]
    no_wheels = choose_file(FILES, pin(), LINUX, usable=lambda e: not e["filename"].endswith(".whl"))
    assert no_wheels is not None
    assert no_wheels["filename"] == "foo-1.0.tar.gz"
    assert choose_file(FILES, pin(), LINUX, usable=lambda _: False) is None


def test_the_entry_itself_is_returned() -> None:
    best = entry("foo-1.0-py3-none-any.whl", "a" * 64)
    best["requires-python"] = ">=3.8"
    assert choose_file([entry("foo-1.0.tar.gz"), best], pin(), LINUX) is best


@pytest.mark.parametrize(
    "files",
    [
        ["foo-1.0-py3-none-any.whl", "foo-1.0-2-py3-none-any.whl", "foo-1.0-1-py3-none-any.whl"],
        ["foo-1.0-1-py3-none-any.whl", "foo-1.0-2-py3-none-any.whl", "foo-1.0-py3-none-any.whl"],
    ],
)
def test_the_highest_build_tag_wins_among_equally_ranked_wheels(files: list[str]) -> None:
    assert chosen([entry(f) for f in files], LINUX) == "foo-1.0-2-py3-none-any.whl"
