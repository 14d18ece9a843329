"""Build roots for tests: snapshots to prove a root came back exactly, and mount checks."""

from __future__ import annotations

import hashlib
import os
import stat
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
