"""A wheel or sdist on local disk, checked before it may enter the mirror (``pipdepot add``).

The filename, the archive and the metadata inside must agree on the project and
version: a file the mirror would list under the wrong name, or that pip would
reject after download, is refused up front.
"""

from __future__ import annotations

import tarfile
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.metadata import parse_email
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from pipdepot.core.buildsystem import BuildSystem, InvalidBuildSystem, parse_build_system
from pipdepot.core.digests import file_sha256

if TYPE_CHECKING:
    from pathlib import Path

    from pipdepot.core.names import NormalizedName

__all__ = ["InvalidDistribution", "LocalDistribution", "build_requirements", "inspect_distribution"]

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
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, KeyError) as exc:
        raise InvalidDistribution(f"{filename}: unreadable archive: {_first_line(exc)}") from None
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


def _wheel_metadata(path: Path) -> bytes:
    with zipfile.ZipFile(path) as wheel:
        found = [n for n in wheel.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if len(found) != 1:
            raise InvalidDistribution(f"{path.name}: a wheel needs exactly one *.dist-info/METADATA")
        return wheel.read(found[0])


def _sdist_metadata(path: Path) -> bytes:
    data = _sdist_member(path, "PKG-INFO")
    if data is None:
        raise InvalidDistribution(f"{path.name}: an sdist needs <name>-<version>/PKG-INFO")
    return data


def build_requirements(path: Path) -> BuildSystem:
    """What building the sdist at ``path`` installs first: its build system, by pip's rules.

    An offline build root cannot fetch its build backend, so the mirror must hold it too.

    :raises InvalidDistribution: the archive cannot be read.
    """
    try:
        return parse_build_system(_sdist_member(path, "pyproject.toml"))
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, InvalidBuildSystem) as exc:
        raise InvalidDistribution(f"{path.name}: unreadable sdist: {_first_line(exc)}") from None


def _sdist_member(path: Path, name: str) -> bytes | None:
    """``<top>/<name>`` of an sdist, or ``None``."""
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            found = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/" + name)]
            return archive.read(found[0]) if found else None
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            if member.isfile() and member.name.count("/") == 1 and member.name.endswith("/" + name):
                stream = archive.extractfile(member)
                return stream.read() if stream is not None else None
    return None


def _first_line(exc: BaseException) -> str:
    """An exception's message as one line (tarfile's span several)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
