"""Hostile archives, built here: zip bombs, corrupt deflate, unknown compression, tar bombs, lying exports.

Each is a real file with a valid name (and, served by the fake upstream, a
correct sha256): what an attacker who can upload to an index, or hand over an
export, would make. Large inflated sizes are written in slices, so building a
bomb never holds it in memory.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
import zipfile
from typing import TYPE_CHECKING, Any

from tests.wheels import build_sdist, build_wheel

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

MiB = 1024 * 1024
_SLICE = 4 * MiB


def metadata_head(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode()


def zip_bomb_wheel(directory: Path, name: str, version: str, inflated: int) -> Path:
    """A wheel whose METADATA (valid headers, then a description of spaces) inflates to ``inflated`` bytes."""
    path = directory / f"{name}-{version}-py3-none-any.whl"
    directory.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr(f"{name}/__init__.py", "VERSION = 'bomb'\n")
        info = zipfile.ZipInfo(f"{dist_info}/METADATA", date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=inflated >= 0x7FFFFFFF) as stream:
            head = metadata_head(name, version)
            stream.write(head)
            left = inflated - len(head)
            while left > 0:
                stream.write(b" " * min(_SLICE, left))
                left -= _SLICE
        archive.writestr(
            f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{dist_info}/RECORD", "")
    return path


def lying_zip_bomb_wheel(directory: Path, name: str, version: str, inflated: int) -> Path:
    """A zip bomb whose central directory and local header say METADATA is 100 bytes."""
    path = zip_bomb_wheel(directory, name, version, inflated)
    _patch_member(path, f"{name}-{version}.dist-info/METADATA", size=100)
    return path


def corrupt_deflate_wheel(directory: Path, name: str, version: str) -> Path:
    """A wheel whose METADATA's deflate stream starts with a block of the reserved type 3."""
    path = build_wheel(directory, name, version)
    member = f"{name}-{version}.dist-info/METADATA"
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data = bytearray(path.read_bytes())
    if info.compress_type != zipfile.ZIP_DEFLATED:  # build_wheel stores: rewrite it deflated
        path.unlink()
        with (
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
            zipfile.ZipFile(io.BytesIO(bytes(data))) as source,
        ):
            for item in source.infolist():
                archive.writestr(item.filename, source.read(item))
        data = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(member)
    start = _data_offset(data, info)
    data[start] = 0x07  # BFINAL=1, BTYPE=11: "invalid block type"
    path.write_bytes(bytes(data))
    return path


def unknown_method_wheel(directory: Path, name: str, version: str, method: int = 99) -> Path:
    """A wheel whose METADATA claims compression method ``method`` (no such method exists)."""
    path = build_wheel(directory, name, version)
    _patch_member(path, f"{name}-{version}.dist-info/METADATA", method=method)
    return path


def _data_offset(data: bytes | bytearray, info: zipfile.ZipInfo) -> int:
    name_length, extra_length = struct.unpack_from("<2H", data, info.header_offset + 26)
    offset: int = info.header_offset + 30 + name_length + extra_length
    return offset


def _patch_member(path: Path, member: str, *, method: int | None = None, size: int | None = None) -> None:
    """Rewrite ``member``'s compression method or uncompressed size in its local header and central entry."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    local = info.header_offset
    central = data.find(b"PK\x01\x02")
    while struct.unpack_from("<L", data, central + 42)[0] != local:  # the central entry of that member
        central = data.find(b"PK\x01\x02", central + 1)
    if method is not None:
        struct.pack_into("<H", data, local + 8, method)
        struct.pack_into("<H", data, central + 10, method)
    if size is not None:
        struct.pack_into("<L", data, local + 22, size)
        struct.pack_into("<L", data, central + 24, size)
    path.write_bytes(bytes(data))


def tar_bomb_sdist(directory: Path, name: str, version: str, inflated: int) -> Path:
    """An sdist whose PKG-INFO (valid headers, then spaces) is ``inflated`` bytes."""
    path = directory / f"{name}-{version}.tar.gz"
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        member = tarfile.TarInfo(f"{name}-{version}/PKG-INFO")
        member.size = inflated
        head = metadata_head(name, version)
        archive.addfile(member, _Spaces(head, inflated))
    return path


def pax_bomb_sdist(directory: Path, name: str, version: str, header: int) -> Path:
    """An sdist led by a pax extended header of ``header`` bytes, which tarfile reads whole."""
    path = directory / f"{name}-{version}.tar.gz"
    directory.mkdir(parents=True, exist_ok=True)
    block = tarfile.TarInfo("././@PaxHeader")
    block.type, block.size = tarfile.XHDTYPE, header
    with gzip.open(path, "wb", compresslevel=6) as stream:
        stream.write(block.tobuf(tarfile.USTAR_FORMAT))
        _write_spaces(stream, header + (-header % tarfile.BLOCKSIZE))
        good = build_sdist(directory / "inner", name, version).read_bytes()
        stream.write(gzip.decompress(good))
    return path


def many_members_sdist(directory: Path, name: str, version: str, members: int) -> Path:
    """An sdist of ``members`` empty files, its PKG-INFO last (tarfile keeps an object per member)."""
    path = directory / f"{name}-{version}.tar.gz"
    directory.mkdir(parents=True, exist_ok=True)
    empty = tarfile.TarInfo(f"{name}-{version}/empty").tobuf(tarfile.USTAR_FORMAT)
    data = metadata_head(name, version)
    info = tarfile.TarInfo(f"{name}-{version}/PKG-INFO")
    info.size = len(data)
    with gzip.open(path, "wb", compresslevel=6) as stream:
        for start in range(0, members, 8192):
            stream.write(empty * min(8192, members - start))
        stream.write(info.tobuf(tarfile.USTAR_FORMAT) + data.ljust(tarfile.BLOCKSIZE, b"\0"))
        stream.write(b"\0" * 2 * tarfile.BLOCKSIZE)
    return path


def sparse_map_bomb_sdist(directory: Path, name: str, version: str, inflated: int) -> Path:
    """An sdist whose PKG-INFO is a GNU sparse 1.0 file with an endless map (tarfile keeps every number)."""
    path = directory / f"{name}-{version}.tar.gz"
    directory.mkdir(parents=True, exist_ok=True)
    info = tarfile.TarInfo(f"{name}-{version}/GNUSparseFile.0/PKG-INFO")
    info.size = inflated
    info.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": f"{name}-{version}/PKG-INFO",
        "GNU.sparse.realsize": "100",
    }
    with gzip.open(path, "wb", compresslevel=6) as stream:
        stream.write(info.tobuf(tarfile.PAX_FORMAT))
        head = b"999999999999\n"
        stream.write(head)
        left = inflated - len(head)
        while left > 0:
            stream.write(b"1\n" * (min(_SLICE, left) // 2))
            left -= _SLICE
        stream.write(b"\0" * (-inflated % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE))
    return path


class _Spaces(io.RawIOBase):
    """``head``, then spaces up to ``size`` bytes: a file-like source that never holds them all."""

    def __init__(self, head: bytes, size: int) -> None:
        self.head, self.left = head, size

    def readable(self) -> bool:
        return True

    def read(self, count: int = -1) -> bytes:
        count = self.left if count < 0 else min(count, self.left)
        data = self.head[:count]
        self.head = self.head[count:]
        data += b" " * (count - len(data))
        self.left -= len(data)
        return data


def _write_spaces(stream: gzip.GzipFile, count: int) -> None:
    while count > 0:
        stream.write(b" " * min(_SLICE, count))
        count -= _SLICE


# -- export archives ------------------------------------------------------------------------


def rewrite_export(
    source: Path,
    target: Path,
    *,
    manifest: Callable[[dict[str, Any]], None] | None = None,
    extra: tuple[tuple[str, int], ...] = (),
    grow: dict[str, int] | None = None,
    rename: tuple[str, str] = ("", ""),
    raw_manifest: bytes | None = None,
) -> Path:
    """A copy of the export ``source``, made hostile.

    Its manifest changed in place by ``manifest``, ``extra`` members of spaces appended (name,
    size), members ending in a key of ``grow`` given that many more bytes than the manifest
    declares, ``rename[0]`` replaced by ``rename[1]`` in member names, and the manifest replaced by
    ``raw_manifest``.
    """
    compressed = target.name.endswith(".gz")
    with tarfile.open(source) as original, tarfile.open(target, "w:gz" if compressed else "w") as out:
        for member in original.getmembers():
            stream = original.extractfile(member)
            data = stream.read() if stream is not None else b""
            if member.name == "pipdepot-export.json" and manifest is not None:
                loaded = json.loads(data)
                manifest(loaded)
                data = json.dumps(loaded).encode()
            if member.name == "pipdepot-export.json" and raw_manifest is not None:
                data = raw_manifest
            for suffix, more in (grow or {}).items():
                if member.name.endswith(suffix):
                    data += b" " * more
            member.size = len(data)
            if rename[0]:
                member.name = member.name.replace(*rename)
            out.addfile(member, io.BytesIO(data))
        for name, size in extra:
            info = tarfile.TarInfo(name)
            info.size = size
            out.addfile(info, _Spaces(b"", size))
    return target


def manifest_files(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file record of an export manifest, in order."""
    return [record for project in manifest["projects"].values() for record in project["files"]]


def splice_pax_bomb(source: Path, target: Path, header: int) -> Path:
    """A copy of the gzip export ``source`` with a pax header of ``header`` bytes before its 2nd member."""
    data = gzip.decompress(source.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(data)) as original:
        offset = original.getmembers()[1].offset
    block = tarfile.TarInfo("././@PaxHeader")
    block.type, block.size = tarfile.XHDTYPE, header
    with gzip.open(target, "wb", compresslevel=6) as stream:
        stream.write(data[:offset] + block.tobuf(tarfile.USTAR_FORMAT))
        _write_spaces(stream, header + (-header % tarfile.BLOCKSIZE))
        stream.write(data[offset:])
    return target


#: Runs its arguments and writes their ``ru_maxrss`` (KiB) to a file. A child forked from this big test
#: process would count this process's memory until its exec; this small one's child counts little.
MEASURE_RSS = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)
