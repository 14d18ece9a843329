"""Paths inside a build root, resolved as the root's own processes would see them.

A build root is someone else's file tree: ``/etc`` in it may be a symlink to
``/usr/etc``, or (in a hostile or broken root) to the host's ``/etc``. Every
path pipdepot touches is resolved here, following the root's symlinks with the
root as ``/``, so no write or mount ever lands outside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipdepot.errors import BuildRootError

__all__ = ["RootFS"]

_MAX_SYMLINKS = 40


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class RootFS:
    """A directory used as ``/`` by the builds that run in it."""

    root: Path

    @classmethod
    def open(cls, root: Path) -> RootFS:
        """Check ``root`` is a directory other than the host's ``/``.

        :raises BuildRootError: it is missing, not a directory, or ``/``.
        """
        if not root.exists():
            raise BuildRootError(f"build root {str(root)!r} does not exist")
        if not root.is_dir():
            raise BuildRootError(f"build root {str(root)!r} is not a directory")
        real = Path(os.path.realpath(root))
        if real == Path("/"):
            raise BuildRootError("refusing to use the host's / as a build root")
        return cls(real)

    def path(self, inner: PurePosixPath, *, follow_last: bool = False) -> Path:
        """The host path of ``inner``, with the root's symlinks resolved inside the root.

        The last component is followed only when ``follow_last`` is true, so a
        symlink itself can be replaced rather than the file it points to.

        :raises BuildRootError: a symlink loop.
        """
        parts = list(PurePosixPath("/", inner).parts[1:])
        resolved: list[str] = []
        hops = 0
        while parts:
            name = parts.pop(0)
            if name in {"", "."}:
                continue
            if name == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = self.root.joinpath(*resolved, name)
            if (parts or follow_last) and candidate.is_symlink():
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise BuildRootError(f"too many symlinks resolving {str(inner)!r} in {self.root}")
                target = PurePosixPath(candidate.readlink())
                if target.is_absolute():
                    resolved = []
                parts = list(target.parts[1:] if target.is_absolute() else target.parts) + parts
                continue
            resolved.append(name)
        return self.root.joinpath(*resolved)

    def missing_layout(self) -> list[str]:
        """What an OS root has and this one lacks: ``/etc``, ``/usr/bin`` or ``/bin``, ``/bin/sh``.

        Empty for any Linux distribution's root; an empty directory, a mistyped path or a
        project's own tree lack them, and pip and uv could never run there.
        """
        missing = []
        if not self.path(PurePosixPath("/etc"), follow_last=True).is_dir():
            missing.append("/etc")
        bins = [self.path(PurePosixPath(d), follow_last=True).is_dir() for d in ("/usr/bin", "/bin")]
        if not any(bins):
            missing.append("/usr/bin or /bin")
        shell = self.path(PurePosixPath("/bin/sh"), follow_last=True)
        if not (shell.is_file() and os.access(shell, os.X_OK)):
            missing.append("/bin/sh")
        return missing

    def lexists(self, inner: PurePosixPath) -> bool:
        """Whether something, even a dangling symlink, is at ``inner``."""
        return os.path.lexists(self.path(inner))
