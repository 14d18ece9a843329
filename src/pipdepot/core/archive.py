"""Bounded reads of archive members: a wheel's METADATA, an sdist's PKG-INFO and pyproject.toml, an export.

Every distribution comes from someone else: a file with the right sha256 can
still hold a METADATA that inflates to gigabytes, a corrupt deflate stream, a
compression method no one knows, or a tar whose headers alone fill memory. Here
no member is read past :data:`MEMBER_LIMIT`, no tar header past
:data:`HEADER_LIMIT`, no tar beyond :data:`MAX_TAR_MEMBERS` members, and every
failure is an :class:`ArchiveError` with a one-line message.
"""

from __future__ import annotations

import tarfile
import zlib
from typing import TYPE_CHECKING, Self

from pipdepot.core.zipreader import ZipError, ZipReader, ZipTooLarge

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = [
    "MAX_TAR_MEMBERS",
    "MEMBER_LIMIT",
    "ArchiveError",
    "MemberTooLarge",
    "open_tar",
    "read_tar_member",
    "sdist_member",
    "tar_members",
    "wheel_metadata",
]

#: The most bytes read from one archive member (METADATA, PKG-INFO, pyproject.toml): real ones are
#: kilobytes, the longest READMEs a few hundred; past it a wheel is served with no PEP 658 metadata.
MEMBER_LIMIT = 4 * 1024 * 1024
#: The most bytes of one tar header (pax extended header, GNU long name): tarfile reads them whole.
HEADER_LIMIT = 1024 * 1024
#: The most tar members looked at: tarfile keeps an object per member it has read.
MAX_TAR_MEMBERS = 100_000
_EXTENDED = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_LONG = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_CHUNK = 1024 * 1024


def __dir__() -> list[str]:
    return __all__


class ArchiveError(ValueError):
    """A member cannot be read: damaged, of an unknown compression, too large; one line."""


class MemberTooLarge(ArchiveError):  # noqa: N818 (reads as a sentence: raise MemberTooLarge)
    """A member is larger than the limit."""


def wheel_metadata(path: Path) -> bytes | None:
    """The wheel's ``*.dist-info/METADATA``, byte for byte, at most :data:`MEMBER_LIMIT` bytes.

    ``None`` when the wheel has no top-level METADATA, or more than one.

    :raises ArchiveError: the archive or the member cannot be read.
    :raises OSError: the file cannot be read.
    """
    try:
        with ZipReader(path) as wheel:
            found = wheel.find(lambda n: n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
            return wheel.read(found[0], MEMBER_LIMIT) if len(found) == 1 else None
    except ZipTooLarge as exc:
        raise MemberTooLarge(str(exc)) from None
    except ZipError as exc:
        raise ArchiveError(str(exc)) from None


def sdist_member(path: Path, name: str) -> bytes | None:
    """``<top>/<name>`` of an sdist (``.tar.gz``, ``.zip``), at most :data:`MEMBER_LIMIT` bytes; or ``None``.

    :raises ArchiveError: the archive or the member cannot be read.
    :raises OSError: the file cannot be read.
    """

    def wanted(member: str) -> bool:
        return member.count("/") == 1 and member.endswith("/" + name)

    if path.name.endswith(".zip"):
        try:
            with ZipReader(path) as zipped:
                found = zipped.find(wanted, keep=1)
                return zipped.read(found[0], MEMBER_LIMIT) if found else None
        except ZipTooLarge as exc:
            raise MemberTooLarge(str(exc)) from None
        except ZipError as exc:
            raise ArchiveError(str(exc)) from None
    with open_tar(path) as archive:
        for member in tar_members(archive):
            if member.isfile() and wanted(member.name):
                return read_tar_member(archive, member, MEMBER_LIMIT)
    return None


class _BoundedTarInfo(tarfile.TarInfo):
    """A tar header that refuses, before tarfile reads them whole, huge extended headers and sparse files."""

    @classmethod
    def fromtarfile(cls, archive: tarfile.TarFile) -> Self:
        stream = archive.fileobj
        assert stream is not None  # noqa: S101 (an archive opened for reading)
        obj = cls.frombuf(stream.read(tarfile.BLOCKSIZE), archive.encoding, archive.errors)
        obj.offset = stream.tell() - tarfile.BLOCKSIZE
        if (obj.type in _EXTENDED or obj.type in _LONG) and obj.size > HEADER_LIMIT:
            raise ArchiveError(
                f"unreadable tar: a header of {obj.size} bytes, over the limit of {HEADER_LIMIT}"
            )
        if obj.type == tarfile.GNUTYPE_SPARSE:
            raise ArchiveError(f"unreadable tar: {obj.name}: sparse members are not supported")
        processed: Self = obj._proc_member(archive)  # type: ignore[attr-defined]  # noqa: SLF001
        return processed

    def _proc_gnusparse_10(self, member: tarfile.TarInfo, pax_headers: dict[str, str], *_: object) -> None:
        """GNU sparse 1.0 (named in a pax header): tarfile reads its map from the data unbounded."""
        name = pax_headers.get("GNU.sparse.name", member.name)
        raise ArchiveError(f"unreadable tar: {name}: sparse members are not supported")


def open_tar(path: Path) -> tarfile.TarFile:
    """``path`` opened as a plain or gzip-compressed tar, its headers bounded.

    Other compressions are refused: an xz stream may ask for a gigabyte of dictionary.

    :raises ArchiveError: not such a tar, or its first header is hostile.
    :raises OSError: the file cannot be read.
    """
    with path.open("rb") as stream:
        compressed = stream.read(2) == b"\x1f\x8b"
    try:
        return tarfile.open(path, "r:gz" if compressed else "r:", tarinfo=_BoundedTarInfo)
    except ArchiveError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, RecursionError, ValueError) as exc:
        raise ArchiveError(f"not a readable tar: {_first_line(exc)}") from None


def tar_members(archive: tarfile.TarFile, *, limit: int = MAX_TAR_MEMBERS) -> Iterator[tarfile.TarInfo]:
    """The archive's members in order, none kept by tarfile, at most ``limit`` of them.

    :raises ArchiveError: a damaged or hostile header, or more than ``limit`` members.
    """
    count = 0
    while True:
        try:
            member = archive.next()
        except ArchiveError:
            raise
        except (tarfile.TarError, EOFError, zlib.error, OSError, RecursionError, ValueError) as exc:
            message = "too many nested headers" if isinstance(exc, RecursionError) else _first_line(exc)
            raise ArchiveError(f"unreadable tar: {message}") from None
        archive.members = []  # type: ignore[attr-defined]  # tarfile keeps every member it read
        if member is None:
            return
        count += 1
        if count > limit:
            raise ArchiveError(f"more than {limit} members")
        yield member


def read_tar_member(archive: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    """A regular member's bytes, refused when its header says more than ``limit``.

    :raises MemberTooLarge: its size is over ``limit``.
    :raises ArchiveError: its data cannot be read.
    """
    if member.size > limit:
        raise MemberTooLarge(f"{member.name} is {member.size} bytes, over the limit of {limit}")
    try:
        stream = archive.extractfile(member)
        data = stream.read(member.size) if stream is not None else b""
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ArchiveError(f"{member.name}: {_first_line(exc)}") from None
    if len(data) != member.size:
        raise ArchiveError(f"{member.name}: truncated")
    return data


def _first_line(exc: BaseException) -> str:
    """An exception's message as one line (tarfile's span several)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
