"""Mounting and unmounting with util-linux, and asking the kernel what is mounted."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pipdepot.errors import BuildRootError

__all__ = ["bind_mount", "is_mountpoint", "mount_filesystem", "unmount"]


def __dir__() -> list[str]:
    return __all__


def is_mountpoint(path: Path) -> bool:
    """Whether something is mounted exactly at ``path`` (in this mount namespace)."""
    target = os.path.realpath(path)
    with Path("/proc/self/mountinfo").open(encoding="utf-8", errors="surrogateescape") as info:
        return any(_unescape(line.split(" ", 5)[4]) == target for line in info)


def bind_mount(source: Path, target: Path, *, read_only: bool) -> None:
    """Bind ``source`` at ``target``; read-only binds need a remount, done here.

    :raises BuildRootError: mount failed (message from mount).
    """
    _run("mount", "--bind", str(source), str(target))
    # Private, so mounts made below it (by us or by the build) never propagate back to the
    # host's tree when the host's mounts are shared, as systemd makes them.
    _run("mount", "--make-private", str(target))
    if read_only:
        try:
            _run("mount", "-o", "remount,bind,ro", str(target))
        except BuildRootError:
            unmount(target)
            raise


def mount_filesystem(fstype: str, target: Path) -> None:
    """Mount a kernel filesystem (``proc``, ``sysfs``, ``devpts``) at ``target``."""
    _run("mount", "-t", fstype, fstype, str(target))


def unmount(target: Path) -> bool:
    """Unmount ``target`` and anything mounted below it; lazily if it is busy.

    :returns: whether a lazy unmount was needed (a process still uses it).
    :raises BuildRootError: it stays mounted even lazily.
    """
    try:
        _run("umount", "--recursive", str(target))
    except BuildRootError:
        _run("umount", "--recursive", "--lazy", str(target))
        return True
    return False


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        reason = detail[-1] if detail else f"exit status {result.returncode}"
        raise BuildRootError(
            f"{' '.join(argv)} failed: {reason}",
            hint="mounting needs root (run pipdepot with sudo)" if os.geteuid() != 0 else None,
        )


def _unescape(field: str) -> str:
    """Mountinfo escapes space, tab, newline and backslash as octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field
