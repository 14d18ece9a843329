"""``pipdepot inject`` and ``pipdepot restore``: change a build root, then put it back exactly.

Every change goes through :class:`_Injector`, which records it in the root's
journal before making it; :func:`restore` undoes the journal in reverse. A
failed inject undoes itself; a killed one is undone by ``restore``. The
directories it changed get their times back last (the root's once the journal
is gone), unless their entries changed meanwhile.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from pipdepot.element.journal import Entry, Journal, directory_state
from pipdepot.element.mounts import bind_mount, is_mountpoint, mount_filesystem, unmount
from pipdepot.element.plan import MOUNT_POINT
from pipdepot.element.rootfs import RootFS
from pipdepot.errors import BuildRootError

if TYPE_CHECKING:
    from pipdepot.operations.plan import PlanReport

__all__ = ["SYSTEM_MOUNTS", "InjectReport", "RestoreReport", "inject", "require_os_root", "restore"]

#: What a build needs mounted in its root: (path in root, filesystem type or host path to bind).
SYSTEM_MOUNTS: tuple[tuple[PurePosixPath, str], ...] = (
    (PurePosixPath("/proc"), "proc"),
    (PurePosixPath("/sys"), "/sys"),
    (PurePosixPath("/dev"), "/dev"),
    (PurePosixPath("/dev/pts"), "/dev/pts"),
)
_RESOLV_CONF = PurePosixPath("/etc/resolv.conf")
_DIR_MODES = {PurePosixPath("/tmp"): 0o1777, PurePosixPath("/root"): 0o700}


def __dir__() -> list[str]:
    return __all__


@dataclass(slots=True)
class InjectReport:
    """What inject did, for the user."""

    root: Path
    written: list[tuple[str, str]] = field(default_factory=list)  # (path, "created"/"replaced")
    mounted: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RestoreReport:
    """What restore did; ``injected`` is false when there was nothing to undo."""

    root: Path
    injected: bool = True
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unmounted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # with the reason


def inject(
    report: PlanReport,
    *,
    system_mounts: bool = False,
    resolv_conf: bytes | None = None,
    force: bool = False,
) -> InjectReport:
    """Write the plan's files into ``report.root`` and mount the local mirror read-only.

    :raises BuildRootError: the root is already injected, cannot be changed, or (unless
        ``force``) has no OS layout; whatever was done before the failure has been undone.
    """
    if report.root is None:
        raise BuildRootError("no build root given")
    rootfs = RootFS.open(report.root)
    if not force:
        require_os_root(rootfs.root)
    journal = Journal.begin(rootfs.root)
    injector = _Injector(rootfs, journal, InjectReport(rootfs.root))
    try:
        for file in report.to_write:
            injector.write(file.path, file.content.encode(), file.mode)
        if resolv_conf is not None:
            injector.write(_RESOLV_CONF, resolv_conf, 0o644)
        if system_mounts:
            for inner, what in SYSTEM_MOUNTS:
                injector.mount(inner, what)
        if report.plan.mounts_mirror:
            injector.mount(MOUNT_POINT, str(report.plan.mirror_dir), read_only=True)
    except BaseException:
        restore(rootfs.root, force=True)
        raise
    return injector.report


def require_os_root(root: Path) -> None:
    """Refuse a directory that is not an OS root (``inject`` and ``chroot`` without ``--force``).

    :raises BuildRootError: one line naming what is missing.
    """
    rootfs = RootFS.open(root)
    missing = rootfs.missing_layout()
    if missing:
        raise BuildRootError(
            f"{rootfs.root} does not look like an OS root: no {', no '.join(missing)}",
            hint="give the root's top directory, or --force to use this one anyway",
        )


def restore(root: Path, *, force: bool = False) -> RestoreReport:
    """Undo the journal of ``root``: unmount, put replaced files back, remove what was created.

    Idempotent: each step checks whether it is still needed.

    :raises BuildRootError: the injecting process still runs (unless ``force``),
        or a step failed; the journal then stays, so restore can be run again.
    """
    rootfs = RootFS.open(root)
    journal = Journal.load(rootfs.root)
    report = RestoreReport(rootfs.root)
    if journal is None:
        report.injected = False
        return report
    if journal.owner.alive() and not force:
        raise BuildRootError(
            f"{rootfs.root} is held injected by running process {journal.owner.pid}",
            hint="it restores the root when it ends; stop it, or use --force",
        )
    times = [entry for entry in journal.entries if entry.op == "times"]
    for entry in reversed(journal.entries):
        if entry.op != "times":
            _undo(rootfs, journal, entry, report)
    for entry in times:
        if entry.path != "/":
            _put_back_times(rootfs, entry)
    journal.remove()
    for entry in times:
        if entry.path == "/":
            _put_back_times(rootfs, entry)
    return report


class _Injector:
    """Records each change in the journal, then makes it."""

    def __init__(self, rootfs: RootFS, journal: Journal, report: InjectReport) -> None:
        self.rootfs = rootfs
        self.journal = journal
        self.report = report
        self._seen = {entry.path for entry in journal.entries if entry.op in {"times", "mkdir"}}

    def changing(self, inner: PurePosixPath) -> None:
        """Record the times of directory ``inner`` before pipdepot's first change in it."""
        if str(inner) in self._seen:
            return
        self._seen.add(str(inner))
        host = self.rootfs.path(inner, follow_last=True)
        if host.is_dir():
            times, listing = directory_state(host)
            self.journal.record(Entry("times", str(inner), times=times, listing=listing))

    def ensure_dir(self, inner: PurePosixPath) -> Path:
        for depth in range(1, len(inner.parts) + 1):
            step = PurePosixPath(*inner.parts[:depth])
            host = self.rootfs.path(step, follow_last=True)
            if host.is_dir():
                continue
            if os.path.lexists(host) or self.rootfs.path(step).is_symlink():
                raise BuildRootError(f"{step} in {self.rootfs.root} is not a directory (or a dangling link)")
            self.changing(step.parent)
            self.journal.record(Entry("mkdir", str(step)))
            self._seen.add(str(step))
            host.mkdir()
            host.chmod(_DIR_MODES.get(step, 0o755))
        return self.rootfs.path(inner, follow_last=True)

    def write(self, inner: PurePosixPath, data: bytes, mode: int) -> None:
        self.ensure_dir(inner.parent)
        target = self.rootfs.path(inner)
        if target.is_dir() and not target.is_symlink():
            raise BuildRootError(f"{inner} in {self.rootfs.root} is a directory")
        staged = self.journal.staging_path()
        staged.write_bytes(data)
        staged.chmod(mode)
        self.changing(inner.parent)
        if os.path.lexists(target):
            name = self.journal.new_backup_name()
            self.journal.record(Entry("replace", str(inner), backup=name))
            _move(target, self.journal.backup_path(name))
            self.report.written.append((str(inner), "replaced"))
        else:
            self.journal.record(Entry("create", str(inner)))
            self.report.written.append((str(inner), "created"))
        _move(staged, target)

    def mount(self, inner: PurePosixPath, what: str, *, read_only: bool = False) -> None:
        target = self.ensure_dir(inner)
        if is_mountpoint(target):
            return  # mounted by someone else: theirs to keep
        self.journal.record(Entry("mount", str(inner), source=what))
        if what.startswith("/"):
            bind_mount(Path(what), target, read_only=read_only)
        else:
            mount_filesystem(what, target)
        self.report.mounted.append(str(inner))


def _undo(rootfs: RootFS, journal: Journal, entry: Entry, report: RestoreReport) -> None:
    inner = PurePosixPath(entry.path)
    if entry.op == "mount":
        target = rootfs.path(inner, follow_last=True)
        if is_mountpoint(target):
            lazy = unmount(target)
            report.unmounted.append(entry.path + (" (lazily: still in use)" if lazy else ""))
    elif entry.op == "replace":
        backup = journal.backup_path(entry.backup or "")
        if os.path.lexists(backup):
            _move(backup, rootfs.path(inner))
            report.restored.append(entry.path)
    elif entry.op == "create":
        _remove_created_file(rootfs.path(inner), entry.path, report)
    else:
        _remove_created_dir(rootfs.path(inner, follow_last=True), entry.path, report)


def _put_back_times(rootfs: RootFS, entry: Entry) -> None:
    """The directory's recorded times, if its entries are again those it had before inject."""
    target = rootfs.path(PurePosixPath(entry.path), follow_last=True)
    if entry.times is None or not target.is_dir() or target.is_symlink():
        return
    if directory_state(target)[1] == entry.listing:
        atime, mtime = entry.times
        os.utime(target, ns=(atime, mtime))


def _remove_created_file(target: Path, inner: str, report: RestoreReport) -> None:
    if target.is_dir() and not target.is_symlink():
        report.kept.append(f"{inner}: became a directory")
    elif os.path.lexists(target):
        target.unlink()
        report.removed.append(inner)


def _remove_created_dir(target: Path, inner: str, report: RestoreReport) -> None:
    if not target.is_dir() or target.is_symlink():
        return
    try:
        target.rmdir()
    except OSError as exc:
        if exc.errno not in {errno.ENOTEMPTY, errno.EEXIST, errno.EBUSY}:
            raise
        report.kept.append(f"{inner}/: not empty")
    else:
        report.removed.append(inner + "/")


def _move(source: Path, target: Path) -> None:
    """Rename, keeping inode, mode, owner and times; copy when on another filesystem."""
    try:
        source.replace(target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise BuildRootError(f"cannot move {source} to {target}: {exc.strerror}") from exc
        temporary = target.with_name(f".{target.name}.pipdepot-tmp")
        stat = source.lstat()
        shutil.copy2(source, temporary, follow_symlinks=False)
        os.chown(temporary, stat.st_uid, stat.st_gid, follow_symlinks=False)
        temporary.replace(target)
        source.unlink()
