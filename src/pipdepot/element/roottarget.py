"""What a build root installs for: its Python, libc and architecture, read from its files.

``chroot --check`` must prove the install for the root, not for the host
pipdepot runs on: a wheel for glibc 2.38 installs on the host and not in a
bookworm root (glibc 2.36). Nothing in the root is executed (a root may be for
another architecture, or hostile): ``python3`` is resolved inside the root, its
ELF header gives the architecture and its program interpreter (the dynamic
loader, which names the libc), and the loader's or libc's own text gives the
libc version. Every read is bounded.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from pipdepot.element.rootfs import RootFS
from pipdepot.errors import BuildRootError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["RootTarget", "read_root_target"]

#: ``python3`` as the root's processes find it (PATH order of pipdepot chroot's clean environment).
_INTERPRETERS = ("/usr/local/bin/python3", "/usr/bin/python3", "/bin/python3")
_CPYTHON = re.compile(r"python(3\.\d{1,2})")
#: ELF e_machine -> the architecture as wheel platform tags spell it.
_MACHINES = {62: "x86_64", 183: "aarch64", 3: "i686", 40: "armv7l", 21: "ppc64le", 22: "s390x"}
_PT_INTERP = 3
_GLIBC_BANNER = re.compile(rb"release version 2\.(\d{1,3})[.\s]")
_MUSL_VERSION = re.compile(rb"\x00(1\.(\d{1,2})\.\d{1,3})\x00")
_APK_MUSL = re.compile(r"^P:musl\nV:1\.(\d{1,2})\.", re.MULTILINE)
_MAX_HEADERS = 128
_MAX_SCAN = 64 * 1024 * 1024
_CHUNK = 1024 * 1024
_OVERLAP = 64
_LIBDIRS = ("/lib64", "/lib", "/usr/lib64", "/usr/lib")


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class RootTarget:
    """CPython ``python`` on ``arch``, with ``libc`` (``glibc`` or ``musl``) ``libc_version``."""

    python: str
    full_version: str | None
    libc: str
    libc_version: tuple[int, int]
    arch: str
    interpreter: str

    @property
    def platform(self) -> str:
        """The root's wheel platform tag: ``manylinux_2_36_x86_64``, ``musllinux_1_2_aarch64``."""
        major, minor = self.libc_version
        family = "manylinux" if self.libc == "glibc" else "musllinux"
        return f"{family}_{major}_{minor}_{self.arch}"

    def __str__(self) -> str:
        """``CPython 3.11.2 (/usr/bin/python3.11), glibc 2.36, x86_64``."""
        major, minor = self.libc_version
        return (
            f"CPython {self.full_version or self.python} ({self.interpreter}), "
            f"{self.libc} {major}.{minor}, {self.arch}"
        )


def read_root_target(root: Path) -> RootTarget:
    """Read the target of the root's ``python3`` from the root's files, executing nothing.

    :raises BuildRootError: the root has no ``python3``, or not one pipdepot can target, or
        its libc cannot be told; the message says which.
    """
    rootfs = RootFS.open(root)
    inner, binary = _interpreter(rootfs)
    match = _CPYTHON.fullmatch(binary.name)
    if match is None:
        raise BuildRootError(f"{inner} in {root} is not CPython 3.X: pipdepot checks for CPython only")
    python = match.group(1)
    try:
        arch, loader = _elf(binary)
    except (OSError, ValueError, struct.error) as exc:
        raise BuildRootError(f"cannot read {inner} in {root} as an ELF executable: {exc}") from None
    libc, version = _libc(rootfs, loader, arch)
    return RootTarget(python, _full_version(binary, python), libc, version, arch, inner)


def _interpreter(rootfs: RootFS) -> tuple[str, Path]:
    """The root's ``python3``; without one, its newest ``python3.X`` (what a build then names)."""
    for candidate in _INTERPRETERS:
        host = rootfs.path(PurePosixPath(candidate), follow_last=True)
        if host.is_file():
            return "/" + str(host.relative_to(rootfs.root)), host
    found: list[tuple[int, str]] = []
    for directory in {str(PurePosixPath(c).parent) for c in _INTERPRETERS}:
        host_dir = rootfs.path(PurePosixPath(directory), follow_last=True)
        if host_dir.is_dir():
            names = (p.name for p in host_dir.iterdir())
            found += [(int(n[8:]), f"{directory}/{n}") for n in names if re.fullmatch(r"python3\.\d{1,2}", n)]
    for _, candidate in sorted(found, reverse=True):
        host = rootfs.path(PurePosixPath(candidate), follow_last=True)
        if host.is_file():
            return "/" + str(host.relative_to(rootfs.root)), host
    raise BuildRootError(
        f"{rootfs.root} has no python3 ({', '.join(_INTERPRETERS)}, or python3.X beside them)"
    )


def _elf(binary: Path) -> tuple[str, str | None]:
    """The architecture and the program interpreter (``None``: linked statically) of an ELF file.

    :raises ValueError: not an ELF file of an architecture pipdepot knows.
    """
    with binary.open("rb") as stream:
        header = stream.read(64)
        if header[:4] != b"\x7fELF" or len(header) < 52 or header[4] not in {1, 2} or header[5] not in {1, 2}:
            raise ValueError("no ELF header")
        wide = header[4] == 2
        order = "<" if header[5] == 1 else ">"
        machine = struct.unpack_from(order + "H", header, 18)[0]
        arch = _MACHINES.get(machine)
        if arch is None or (arch == "ppc64le" and order == ">"):
            raise ValueError(f"ELF machine {machine} is not an architecture pipdepot can target")
        if wide:
            (phoff,) = struct.unpack_from(order + "Q", header, 32)
            size, count = struct.unpack_from(order + "HH", header, 54)
        else:
            (phoff,) = struct.unpack_from(order + "I", header, 28)
            size, count = struct.unpack_from(order + "HH", header, 42)
        if count > _MAX_HEADERS or size < (56 if wide else 32):
            raise ValueError("implausible program headers")
        stream.seek(phoff)
        table = stream.read(size * count)
        for index in range(count):
            if struct.unpack_from(order + "I", table, index * size)[0] != _PT_INTERP:
                continue
            fields = (order + "QQQQ", 8) if wide else (order + "IIII", 4)
            offset, _, _, length = struct.unpack_from(fields[0], table, index * size + fields[1])
            if length > 4096:
                raise ValueError("implausible interpreter path")
            stream.seek(offset)
            return arch, stream.read(length).split(b"\0", 1)[0].decode("utf-8", "replace")
    return arch, None


def _libc(rootfs: RootFS, loader: str | None, arch: str) -> tuple[str, tuple[int, int]]:
    """``glibc`` or ``musl`` and its version, from the loader the interpreter names (or libc.so.6)."""
    if loader is not None and "ld-musl" in PurePosixPath(loader).name:
        host = rootfs.path(PurePosixPath(loader), follow_last=True)
        found = {match.group(1): int(match.group(2)) for match in _scan(host, _MUSL_VERSION)}
        if len(found) == 1:
            return "musl", (1, next(iter(found.values())))
        apk = rootfs.path(PurePosixPath("/lib/apk/db/installed"), follow_last=True)
        if apk.is_file() and (record := _APK_MUSL.search(_head(apk))):
            return "musl", (1, int(record.group(1)))
        raise BuildRootError(f"cannot read the musl version of {rootfs.root} from {loader}")
    paths: list[Path] = []
    if loader is not None:
        host = rootfs.path(PurePosixPath(loader), follow_last=True)
        beside = PurePosixPath("/", host.parent.relative_to(rootfs.root), "libc.so.6")
        paths += [host, rootfs.path(beside, follow_last=True)]
    directories = (f"/lib/{arch}-linux-gnu", f"/usr/lib/{arch}-linux-gnu", *_LIBDIRS)
    paths += [rootfs.path(PurePosixPath(d, "libc.so.6"), follow_last=True) for d in directories]
    for host in paths:
        if host.is_file() and (match := next(_scan(host, _GLIBC_BANNER), None)):
            return "glibc", (2, int(match.group(1)))
    raise BuildRootError(
        f"cannot tell the libc of {rootfs.root}: no glibc version in {loader or 'libc.so.6'}, and not musl"
    )


def _full_version(binary: Path, python: str) -> str | None:
    """``3.11.2``: the interpreter's version string, if it appears alone in its binary."""
    pattern = re.compile(rb"\x00(" + re.escape(python.encode()) + rb"\.\d{1,3})(?:\x00| \()")
    found = {match.group(1).decode() for match in _scan(binary, pattern)}
    return found.pop() if len(found) == 1 else None


def _scan(path: Path, pattern: re.Pattern[bytes]) -> Iterator[re.Match[bytes]]:
    """``pattern``'s matches in the first 64 MiB of ``path``, read 1 MiB at a time."""
    seen: set[int] = set()
    try:
        with path.open("rb") as stream:
            carry, base = b"", 0
            while base < _MAX_SCAN and (chunk := stream.read(_CHUNK)):
                data = carry + chunk
                start = base - len(carry)
                for match in pattern.finditer(data):
                    if start + match.start() not in seen:
                        seen.add(start + match.start())
                        yield match
                carry, base = data[-_OVERLAP:], base + len(chunk)
    except OSError:
        return


def _head(path: Path) -> str:
    with path.open("rb") as stream:
        return stream.read(_CHUNK).decode("utf-8", "replace")
