"""A wheel or sdist on local disk, checked before it may enter the mirror (``pipdepot add``, uploads).

The filename, the archive and the metadata inside must agree on the project and
version: a file the mirror would list under the wrong name, or that pip would
reject after download, is refused up front.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.metadata import RawMetadata, parse_email
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from pipdepot.core.archive import MEMBER_LIMIT, ArchiveError, MemberTooLarge, sdist_member, wheel_metadata
from pipdepot.storage.digests import file_sha256

if TYPE_CHECKING:
    from pathlib import Path

    from pipdepot.core.names import NormalizedName

__all__ = [
    "InvalidDistribution",
    "LocalDistribution",
    "check_metadata",
    "first_line",
    "inspect_distribution",
    "parse_filename",
]

_SDIST_SUFFIXES = (".tar.gz", ".zip")


def __dir__() -> list[str]:
    return __all__


class InvalidDistribution(ValueError):  # noqa: N818 (reads as a sentence: raise InvalidDistribution)
    """The file is not a wheel or sdist pipdepot can list."""


@dataclass(frozen=True, slots=True)
class LocalDistribution:
    """A checked local distribution file."""

    path: Path
    filename: str
    name: NormalizedName
    version: str
    sha256: str
    size: int
    #: The wheel's METADATA, served as the PEP 658 ``.metadata`` file; ``None`` for an sdist.
    metadata: bytes | None
    requires_python: str | None


def inspect_distribution(path: Path) -> LocalDistribution:
    """Read and check ``path``.

    :raises InvalidDistribution: its name, archive or metadata is unusable; the message says which.
    """
    filename = path.name
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
            reader = _wheel_metadata
        elif filename.endswith(_SDIST_SUFFIXES):
            name, version = parse_sdist_filename(filename)
            reader = _sdist_metadata
        else:
            raise InvalidDistribution(f"{filename}: not a wheel (.whl) or an sdist (.tar.gz, .zip)")
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise InvalidDistribution(f"{filename}: {exc}") from None
    try:
        metadata = reader(path)
    except MemberTooLarge:
        raise InvalidDistribution(
            f"{filename}: its metadata is larger than {MEMBER_LIMIT // (1024 * 1024)} MiB"
        ) from None
    except (OSError, ArchiveError) as exc:
        raise InvalidDistribution(f"{filename}: unreadable archive: {first_line(exc)}") from None
    raw = _agreeing(filename, name, version, metadata)
    sha256, size = file_sha256(path)
    return LocalDistribution(
        path=path,
        filename=filename,
        name=name,
        version=str(version),
        sha256=sha256,
        size=size,
        metadata=metadata if filename.endswith(".whl") else None,
        requires_python=raw.get("requires_python"),
    )


def check_metadata(filename: str, metadata: bytes) -> None:
    """Check that ``metadata`` (a PEP 658 file) names the project and version ``filename`` does.

    :raises InvalidDistribution: the filename does not parse, or the metadata disagrees.
    """
    name, version = parse_filename(filename)
    _agreeing(filename, name, version, metadata)


def parse_filename(filename: str) -> tuple[NormalizedName, Version]:
    """The project and version a wheel's or sdist's filename names.

    :raises InvalidDistribution: it is not a valid wheel or sdist filename.
    """
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        raise InvalidDistribution(f"{filename}: {exc}") from None
    return name, version


def _agreeing(filename: str, name: NormalizedName, version: Version, metadata: bytes) -> RawMetadata:
    """The parsed metadata, after checking it names ``name`` and ``version``."""
    raw, _ = parse_email(metadata)
    inner_name, inner_version = raw.get("name"), raw.get("version")
    if inner_name is None or canonicalize_name(inner_name) != name:
        raise InvalidDistribution(f"{filename}: its metadata names project {inner_name!r}, not {name!r}")
    try:
        same_version = inner_version is not None and Version(inner_version) == version
    except InvalidVersion:
        same_version = False
    if not same_version:
        raise InvalidDistribution(
            f"{filename}: its metadata says version {inner_version!r}, not {str(version)!r}"
        )
    return raw


def _wheel_metadata(path: Path) -> bytes:
    data = wheel_metadata(path)
    if data is None:
        raise InvalidDistribution(f"{path.name}: a wheel needs exactly one *.dist-info/METADATA")
    return data


def _sdist_metadata(path: Path) -> bytes:
    data = sdist_member(path, "PKG-INFO")
    if data is None:
        raise InvalidDistribution(f"{path.name}: an sdist needs <name>-<version>/PKG-INFO")
    return data


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (tarfile's span several)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
