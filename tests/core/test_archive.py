"""The bounded archive reader: limits hold, and damaged archives fail only with ArchiveError."""

from __future__ import annotations

import contextlib
import gzip
import random
import struct
import zipfile
from typing import TYPE_CHECKING

import pytest

from pipdepot.core.archive import MEMBER_LIMIT, ArchiveError, MemberTooLarge, sdist_member, wheel_metadata
from tests import hostile
from tests.wheels import build_sdist, build_wheel

if TYPE_CHECKING:
    from pathlib import Path


def test_metadata_is_read_byte_for_byte(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "foo", "1.0", requires=("bar>=1",))
    with zipfile.ZipFile(wheel) as archive:
        assert wheel_metadata(wheel) == archive.read("foo-1.0.dist-info/METADATA")


def test_a_deflated_metadata_is_inflated(tmp_path: Path) -> None:
    wheel = tmp_path / "foo-1.0-py3-none-any.whl"
    text = hostile.metadata_head("foo", "1.0") + b"x" * 100_000
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("foo-1.0.dist-info/METADATA", text)
    assert wheel_metadata(wheel) == text


def test_metadata_of_exactly_the_limit_is_read_and_one_byte_more_is_not(tmp_path: Path) -> None:
    head = hostile.metadata_head("foo", "1.0")
    for size, fits in ((MEMBER_LIMIT, True), (MEMBER_LIMIT + 1, False)):
        wheel = tmp_path / str(size) / "foo-1.0-py3-none-any.whl"
        wheel.parent.mkdir()
        with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("foo-1.0.dist-info/METADATA", head.ljust(size, b" "))
        if fits:
            assert len(wheel_metadata(wheel) or b"") == size
        else:
            with pytest.raises(MemberTooLarge):
                wheel_metadata(wheel)


def test_a_bomb_that_lies_about_its_size_stops_at_the_limit(tmp_path: Path) -> None:
    wheel = hostile.lying_zip_bomb_wheel(tmp_path, "liar", "1.0", 64 * 1024 * 1024)
    with pytest.raises(MemberTooLarge, match="inflates past the limit"):
        wheel_metadata(wheel)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (hostile.corrupt_deflate_wheel, "corrupt deflate stream"),
        (hostile.unknown_method_wheel, "compression method 99 is not supported"),
    ],
)
def test_undecodable_metadata_is_an_archive_error(tmp_path: Path, make: object, message: str) -> None:
    wheel = make(tmp_path, "foo", "1.0")  # type: ignore[operator]
    with pytest.raises(ArchiveError, match=message):
        wheel_metadata(wheel)


def test_an_offset_past_the_end_is_an_archive_error(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "foo", "1.0")
    data = bytearray(wheel.read_bytes())
    entry = data.find(b"PK\x01\x02")
    while not data[entry + 46 :].startswith(b"foo-1.0.dist-info/METADATA"):
        entry = data.find(b"PK\x01\x02", entry + 1)
    struct.pack_into("<L", data, entry + 42, 0xFFFFFFF0)
    wheel.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="past the end"):
        wheel_metadata(wheel)


def test_a_wheel_without_a_single_metadata_gives_none(tmp_path: Path) -> None:
    wheel = tmp_path / "foo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("foo/__init__.py", "")
    assert wheel_metadata(wheel) is None


def test_a_tar_sdist_member_over_the_limit_is_refused_by_its_header(tmp_path: Path) -> None:
    sdist = hostile.tar_bomb_sdist(tmp_path, "foo", "1.0", MEMBER_LIMIT + 1)
    with pytest.raises(MemberTooLarge):
        sdist_member(sdist, "PKG-INFO")


@pytest.mark.parametrize("seed", range(4))
def test_damaged_archives_fail_only_with_archive_errors(tmp_path: Path, seed: int) -> None:
    """Bytes of the central directory and of tar headers overwritten at random, 400 times each."""
    rng = random.Random(seed)  # noqa: S311 (reproducible damage, not secrets)
    wheel_bytes = build_wheel(tmp_path / "src", "foo", "1.0", requires=("a", "b")).read_bytes()
    tar_bytes = gzip.decompress(build_sdist(tmp_path / "src", "foo", "1.0", buildable=True).read_bytes())
    directory = wheel_bytes.find(b"PK\x01\x02")
    wheel, sdist = tmp_path / "foo-1.0-py3-none-any.whl", tmp_path / "foo-1.0.tar.gz"
    for _ in range(400):
        for original, start in ((wheel_bytes, directory), (tar_bytes, 0)):
            data = bytearray(original)
            for _ in range(rng.randint(1, 4)):
                at = rng.randrange(start, len(data))
                data[at : at + 8] = rng.choice([b"\xff" * 8, rng.randbytes(8), bytes([rng.randrange(256)])])
            with contextlib.suppress(ArchiveError):  # anything else fails the test
                if original is wheel_bytes:
                    wheel.write_bytes(bytes(data))
                    wheel_metadata(wheel)
                else:
                    sdist.write_bytes(gzip.compress(bytes(data)))
                    sdist_member(sdist, "PKG-INFO")
