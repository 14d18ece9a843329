"""The journal of an injected build root: what was created, replaced and mounted.

It lives in the root itself, at ``/.pipdepot``, so it travels with the root and
its presence alone says "injected". Each step is recorded *before* it is
taken, and the journal is replaced atomically, so after a crash at any moment
the journal describes at least what was done, and undoing a recorded step that
never happened is a no-op. Backups of replaced files and staged new files live
beside it, on the root's own filesystem, so putting a file back is a rename.
The times of each existing directory pipdepot changes are recorded before its
first change, the root's own before the journal's directory is made in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from pipdepot.errors import BuildRootError

__all__ = ["JOURNAL_DIR", "Entry", "Journal", "Owner", "directory_state"]

#: The journal's directory, relative to the build root.
JOURNAL_DIR = ".pipdepot"
_FORMAT = 1

Op = Literal["mkdir", "create", "replace", "mount", "times"]


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class Entry:
    """One step taken in the root; ``path`` is inside the root.

    ``times`` (a directory's atime and mtime in ns) and ``listing`` (its entries' fingerprint)
    are what a ``times`` entry saw before pipdepot's first change in that directory.
    """

    op: Op
    path: str
    backup: str | None = None
    source: str | None = None
    times: list[int] | None = None
    listing: str | None = None


@dataclass(frozen=True, slots=True)
class Owner:
    """The process that holds the root injected: pid plus start time, so a reused pid is not it."""

    pid: int
    start: str

    @classmethod
    def current(cls) -> Owner:
        """The running process."""
        return cls(os.getpid(), _start_time(os.getpid()))

    def alive(self) -> bool:
        """Whether that very process still runs."""
        return self.pid != os.getpid() and _start_time(self.pid) == self.start != ""


class Journal:
    """The append-only record of one injection, saved atomically after each append."""

    def __init__(self, directory: Path, entries: list[Entry], owner: Owner) -> None:
        self.directory = directory
        self.entries = entries
        self.owner = owner

    @classmethod
    def begin(cls, root: Path) -> Journal:
        """Start the journal of ``root``; creating its directory is the lock.

        :raises BuildRootError: the root is already injected.
        """
        directory = root / JOURNAL_DIR
        times, listing = directory_state(root)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            raise BuildRootError(
                f"{root} is already injected (its journal {directory} exists)",
                hint=f"run `pipdepot restore {root}` first",
            ) from None
        (directory / "backup").mkdir(mode=0o700)
        (directory / "staging").mkdir(mode=0o700)
        journal = cls(directory, [Entry("times", "/", times=times, listing=listing)], Owner.current())
        journal._save()
        return journal

    @classmethod
    def load(cls, root: Path) -> Journal | None:
        """The journal of ``root``, or ``None`` when the root is not injected.

        :raises BuildRootError: the journal cannot be read.
        """
        directory = root / JOURNAL_DIR
        if not directory.is_dir():
            return None
        path = directory / "journal.json"
        if not path.exists():  # killed between creating the directory and the first save
            return cls(directory, [], Owner(0, ""))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entries = [Entry(**item) for item in data["entries"]]
            owner = Owner(int(data["owner"]["pid"]), str(data["owner"]["start"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BuildRootError(f"cannot read the journal {path}: {exc}") from exc
        return cls(directory, entries, owner)

    def record(self, entry: Entry) -> None:
        """Append ``entry`` and save, before the step it describes is taken."""
        self.entries.append(entry)
        self._save()

    def backup_path(self, name: str) -> Path:
        """Where a replaced file is kept, by the name its entry records."""
        return self.directory / "backup" / name

    def new_backup_name(self) -> str:
        """A fresh backup name."""
        return str(sum(1 for entry in self.entries if entry.op == "replace"))

    def staging_path(self) -> Path:
        """A private place to write a new file completely before renaming it into place."""
        return self.directory / "staging" / str(len(self.entries))

    def remove(self) -> None:
        """Delete the journal, once every entry has been undone."""
        shutil.rmtree(self.directory)

    def _save(self) -> None:
        path = self.directory / "journal.json"
        temporary = path.with_suffix(".tmp")
        data = {
            "format": _FORMAT,
            "owner": asdict(self.owner),
            "entries": [{k: v for k, v in asdict(e).items() if v is not None} for e in self.entries],
        }
        with temporary.open("w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1)
            stream.flush()
            os.fsync(stream.fileno())
        temporary.replace(path)
        _fsync_dir(self.directory)


def directory_state(directory: Path) -> tuple[list[int], str]:
    """A directory's atime and mtime (ns) and a fingerprint of its entries' names.

    Restore puts the times back only where the entries are again those fingerprinted:
    a directory the command itself changed keeps the time of that change.
    """
    info = directory.stat()
    names = sorted(entry.name for entry in directory.iterdir())
    listing = hashlib.sha256("\0".join(names).encode("utf-8", "surrogateescape")).hexdigest()
    return [info.st_atime_ns, info.st_mtime_ns], listing


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return ""
    # Field 22 (starttime) counts after the command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]
