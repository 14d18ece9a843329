"""Build roots for tests: snapshots to prove a root came back exactly, and mount checks."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from pathlib import Path

Snapshot = dict[str, tuple[object, ...]]

#: Directories pipdepot writes in (or mounts or creates something in): their mtimes count too.
#: Others are left out, since a command run in the root may change them.
ACTED_ON = frozenset(
    {".", "etc", "etc/uv", "etc/xdg", "etc/xdg/pip", "root", "root/.pip", "root/.config"}
    | {"root/.config/pip", "root/.config/uv", "tmp"}
)


def snapshot(root: Path) -> Snapshot:
    """Every path under ``root`` with type, mode, owner, and content hash or link target.

    The directories of :data:`ACTED_ON`, the root itself included, also have their mtime.
    """
    info = root.stat()
    result: Snapshot = {".": (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_mtime_ns)}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(directory, name)
            info = path.lstat()
            key = str(path.relative_to(root))
            if stat.S_ISREG(info.st_mode):
                detail: object = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(info.st_mode):
                detail = str(path.readlink())
            else:
                detail = info.st_mtime_ns if stat.S_ISDIR(info.st_mode) and key in ACTED_ON else None
            result[key] = (
                stat.S_IFMT(info.st_mode),
                stat.S_IMODE(info.st_mode),
                info.st_uid,
                info.st_gid,
                detail,
            )
    return result


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``."""
    prefix = os.path.realpath(root)
    found = []
    with Path("/proc/self/mountinfo").open() as info:
        for line in info:
            point = line.split(" ")[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def diff(before: Snapshot, after: Snapshot) -> list[str]:
    """Human-readable differences, empty when the snapshots are equal."""
    out = [f"gone: {k}" for k in sorted(before.keys() - after.keys())]
    out += [f"new: {k}" for k in sorted(after.keys() - before.keys())]
    out += [
        f"changed: {k} {before[k]} -> {after[k]}"
        for k in sorted(before.keys() & after.keys())
        if before[k] != after[k]
    ]
    return out


def elf_executable(machine: int, interpreter: str | None, *, payload: bytes = b"") -> bytes:
    """A 64-bit little-endian ELF header with a PT_INTERP naming ``interpreter``, then ``payload``.

    Enough for pipdepot to read a root's architecture and libc from; nothing runs it.
    """
    interp = interpreter.encode() + b"\0" if interpreter is not None else b""
    count = 1 if interpreter is not None else 0
    header = b"\x7fELF\x02\x01\x01" + bytes(9)
    header += struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, 0, 64, 0, 0, 64, 56, count, 0, 0, 0)
    table = struct.pack("<IIQQQQQQ", 3, 4, 64 + 56 * count, 0, 0, len(interp), len(interp), 1)
    return header + (table if count else b"") + interp + b"\0" + payload


def fake_root(
    root: Path,
    *,
    python: str = "3.9",
    full_version: str = "3.9.18",
    machine: int = 62,
    loader: str = "/lib64/ld-linux-x86-64.so.2",
    loader_text: bytes = b"ld.so (GNU libc) stable release version 2.31.\n",
) -> Path:
    """A root with only what says its target: ``python3`` -> ``python3.X`` (ELF), and its loader.

    The loader is reached through an absolute symlink, as on Debian, and holds ``loader_text``.
    ``/etc`` and ``/bin/sh`` make it look like an OS root (``inject`` and ``chroot`` refuse others).
    """
    binary = root / "usr" / "bin" / f"python{python}"
    binary.parent.mkdir(parents=True)
    (root / "etc").mkdir()
    (binary.parent / "sh").write_bytes(b"")
    (binary.parent / "sh").chmod(0o755)
    (root / "bin").symlink_to("usr/bin")
    binary.write_bytes(elf_executable(machine, loader, payload=f"\0{full_version}\0".encode()))
    (binary.parent / "python3").symlink_to(binary.name)
    real = root / "usr" / "lib" / "loader" / Path(loader).name
    real.parent.mkdir(parents=True)
    real.write_bytes(b"\x7fELF" + bytes(60) + loader_text)
    link = root / loader.lstrip("/")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(f"/usr/lib/loader/{real.name}")
    return root
