"""A zip archive's members found and read with bounded memory: the wheel's METADATA, an sdist's PKG-INFO.

:mod:`zipfile` builds an object for every member before any can be read (a
wheel of a million members: hundreds of megabytes) and inflates a member whole
on ``read()`` (a 400 KB wheel whose METADATA inflates to 400 MB). Here the
central directory is scanned entry by entry, only the wanted members are kept,
and a member is inflated in slices, stopping one byte past the caller's limit.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Self

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

__all__ = ["MAX_MEMBERS", "ZipError", "ZipMember", "ZipReader", "ZipTooLarge"]

#: Central directory entries scanned at most (real wheels have thousands; the scan stays under a second).
MAX_MEMBERS = 500_000
_EOCD = struct.Struct("<4s4H2LH")
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_ENTRY = struct.Struct("<4s6H3L5H2L")
_LOCAL = struct.Struct("<4s5H3L2H")
_MAX_COMMENT = 0xFFFF
_STORED, _DEFLATED = 0, 8
_ENCRYPTED, _UTF8 = 0x1, 0x800
_CHUNK = 64 * 1024
#: The longest central directory entry: fixed part, then name, extra field and comment.
_ENTRY_MAX = 46 + 3 * 0xFFFF
_CD_CHUNK = 1024 * 1024


def __dir__() -> list[str]:
    return __all__


class ZipError(ValueError):
    """The archive, or the member asked for, cannot be read; the message is one line."""


class ZipTooLarge(ZipError):  # noqa: N818 (reads as a sentence: raise ZipTooLarge)
    """The member inflates past the caller's limit."""


@dataclass(frozen=True, slots=True)
class ZipMember:
    """One central directory entry."""

    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int


class ZipReader:
    """An open zip archive: :meth:`find` members by name, :meth:`read` one with a limit.

    :raises ZipError: (on creation) no end of central directory, or a split archive.
    :raises OSError: the file cannot be read.
    """

    def __init__(self, path: Path) -> None:
        self._stream: BinaryIO = path.open("rb")
        try:
            self._cd_offset, self._cd_size, self._entries, self._concat = self._directory()
        except BaseException:
            self._stream.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self._stream.close()

    def find(self, wanted: Callable[[str], bool], *, keep: int = 2) -> list[ZipMember]:
        """The first ``keep`` members whose name ``wanted`` accepts (enough to tell one from several).

        :raises ZipError: the central directory is damaged or has over :data:`MAX_MEMBERS` entries.
        """
        found: list[ZipMember] = []
        for member in self._scan():
            if wanted(member.name):
                found.append(member)
                if len(found) >= keep:
                    break
        return found

    def read(self, member: ZipMember, limit: int) -> bytes:
        """The member's bytes, inflated; at most ``limit``.

        :raises ZipTooLarge: it inflates past ``limit``.
        :raises ZipError: it is encrypted, compressed by a method other than stored or deflate,
            truncated, or its inflated bytes do not match the size and CRC the archive states.
        """
        if member.flags & _ENCRYPTED:
            raise ZipError(f"{member.name} is encrypted")
        if member.method not in (_STORED, _DEFLATED):
            raise ZipError(f"{member.name}: compression method {member.method} is not supported")
        if member.size > limit:
            raise ZipTooLarge(f"{member.name} is {member.size} bytes, over the limit of {limit}")
        if self._concat + member.offset + _LOCAL.size > self._end:
            raise ZipError(f"{member.name}: its offset is past the end of the archive")
        self._stream.seek(self._concat + member.offset)
        header = self._exactly(_LOCAL.size, member.name)
        signature, *_, name_length, extra_length = _LOCAL.unpack(header)
        if signature != b"PK\x03\x04":
            raise ZipError(f"{member.name}: bad local header")
        if self._exactly(name_length, member.name) != member.raw_name:
            raise ZipError(f"{member.name}: its local header names another file")
        self._stream.seek(extra_length, 1)
        data = self._inflate(member, limit) if member.method == _DEFLATED else self._stored(member, limit)
        if len(data) != member.size or zlib.crc32(data) != member.crc:
            raise ZipError(f"{member.name}: size or CRC differs from the central directory")
        return data

    # -- the central directory ----------------------------------------------------------------

    def _directory(self) -> tuple[int, int, int, int]:
        """Offset, size and entry count of the central directory, and bytes prepended to the archive."""
        end = self._end = self._stream.seek(0, 2)
        start = max(0, end - _EOCD.size - _MAX_COMMENT)
        self._stream.seek(start)
        tail = self._stream.read(end - start)
        at = tail.rfind(b"PK\x05\x06")
        while at >= 0 and at + _EOCD.size + int.from_bytes(tail[at + 20 : at + 22], "little") > len(tail):
            at = tail.rfind(b"PK\x05\x06", 0, at)
        if at < 0 or at + _EOCD.size > len(tail):
            raise ZipError("not a zip archive (no end of central directory)")
        _, disk, cd_disk, _, entries, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
        position = start + at
        locator = tail[at - _EOCD64_LOCATOR.size : at] if at >= _EOCD64_LOCATOR.size else b""
        if locator.startswith(b"PK\x06\x07"):
            _, _, eocd64, _ = _EOCD64_LOCATOR.unpack(locator)
            if eocd64 + _EOCD64.size > end:
                raise ZipError("damaged zip64 end of central directory")
            self._stream.seek(eocd64)
            record = self._stream.read(_EOCD64.size)
            if len(record) != _EOCD64.size or not record.startswith(b"PK\x06\x06"):
                raise ZipError("damaged zip64 end of central directory")
            _, _, _, _, disk, cd_disk, _, entries, cd_size, cd_offset = _EOCD64.unpack(record)
            position = eocd64
        if disk != 0 or cd_disk != 0:
            raise ZipError("split zip archives are not supported")
        concat = position - cd_size - cd_offset
        if concat < 0:
            raise ZipError("damaged central directory (its size and offset overrun the file)")
        return cd_offset + concat, cd_size, entries, concat

    def _scan(self) -> Iterator[ZipMember]:
        if self._entries > MAX_MEMBERS:
            raise ZipError(f"{self._entries} members, over the limit of {MAX_MEMBERS}")
        self._stream.seek(self._cd_offset)
        remaining = self._cd_size
        buffer, at = b"", 0
        for _ in range(self._entries):
            if len(buffer) - at < _ENTRY_MAX and remaining:
                more = self._stream.read(min(remaining, _CD_CHUNK))
                remaining -= len(more)
                buffer, at = buffer[at:] + more, 0
            if len(buffer) - at < _ENTRY.size:
                raise ZipError("truncated central directory")
            fields = _ENTRY.unpack_from(buffer, at)
            signature, _, _, flags, method, _, _, crc, compressed, size, n, m, k, _, _, _, offset = fields
            start, at = at + _ENTRY.size, at + _ENTRY.size + n + m + k
            if signature != b"PK\x01\x02" or at > len(buffer):
                raise ZipError("damaged central directory")
            raw_name = buffer[start : start + n]
            size, compressed, offset = _zip64(buffer[start + n : start + n + m], size, compressed, offset)
            name = raw_name.decode("utf-8" if flags & _UTF8 else "cp437", errors="replace")
            yield ZipMember(name, raw_name, flags, method, crc, compressed, size, offset)

    # -- member data ----------------------------------------------------------------------------

    def _stored(self, member: ZipMember, limit: int) -> bytes:
        if member.compressed != member.size:
            raise ZipError(f"{member.name}: stored, yet its sizes differ")
        return self._exactly(min(member.size, limit), member.name)

    def _inflate(self, member: ZipMember, limit: int) -> bytes:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        out = bytearray()
        remaining, pending = member.compressed, b""
        try:
            while not inflater.eof:
                if not pending:
                    if not remaining:
                        raise ZipError(f"{member.name}: truncated deflate stream")
                    pending = self._exactly(min(remaining, _CHUNK), member.name)
                    remaining -= len(pending)
                out += inflater.decompress(pending, limit + 1 - len(out))
                pending = inflater.unconsumed_tail
                if len(out) > limit:
                    raise ZipTooLarge(f"{member.name} inflates past the limit of {limit} bytes")
        except zlib.error as exc:
            raise ZipError(f"{member.name}: corrupt deflate stream ({exc})") from None
        return bytes(out)

    def _exactly(self, count: int, what: str) -> bytes:
        data = self._stream.read(count)
        if len(data) != count:
            raise ZipError(f"{what}: truncated archive")
        return data


def _zip64(extra: bytes, size: int, compressed: int, offset: int) -> tuple[int, int, int]:
    """Sizes and offset, from the zip64 extra field where the entry says 0xFFFFFFFF."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<2H", extra, at)
        if kind == 1:
            values = extra[at + 4 : at + 4 + length]
            fields = [size, compressed, offset]
            position = 0
            for index, value in enumerate(fields):
                if value == 0xFFFFFFFF:
                    if position + 8 > len(values):
                        raise ZipError("damaged zip64 extra field")
                    fields[index] = int.from_bytes(values[position : position + 8], "little")
                    position += 8
            return fields[0], fields[1], fields[2]
        at += 4 + length
    return size, compressed, offset
