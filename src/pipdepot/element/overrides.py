"""What in a build root would still beat the configuration pipdepot writes.

pip gives ``[install]`` (and other command sections) precedence over
``[global]`` across all files, site files (``sys.prefix/pip.conf``) over user
and global files, and ``PIP_*`` variables over every file; uv's variables beat
its files. pipdepot replaces the files it knows; this finds the rest.
"""

from __future__ import annotations

import configparser
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from pipdepot.element.buildroot import INDEX_ENV_VARS

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pipdepot.element.rootfs import RootFS

__all__ = ["find_overrides"]

_INDEX_KEYS = frozenset({"index-url", "extra-index-url", "no-index", "find-links"})
#: Files pipdepot does not replace but pip reads: global XDG, site prefixes.
_PIP_FILES = (
    PurePosixPath("/etc/xdg/pip/pip.conf"),
    PurePosixPath("/usr/pip.conf"),
    PurePosixPath("/usr/local/pip.conf"),
)
_REPLACED = (
    PurePosixPath("/etc/pip.conf"),
    PurePosixPath("/root/.pip/pip.conf"),
    PurePosixPath("/root/.config/pip/pip.conf"),
)


def __dir__() -> list[str]:
    return __all__


def find_overrides(rootfs: RootFS) -> list[str]:
    """One warning per setting in the root that would win over pipdepot's files."""
    return [*_pip_file_overrides(rootfs), *_user_overrides(rootfs), *_environment_overrides(rootfs)]


def _pip_file_overrides(rootfs: RootFS) -> Iterable[str]:
    for path in _PIP_FILES:
        level = "global" if path.parent == PurePosixPath("/etc/xdg/pip") else "site"
        for section, key in _index_keys(rootfs, path):
            if level == "site" or section != "global":
                yield f"{path} [{section}] {key} ({level} config) wins over the file pipdepot writes"
    for path in _REPLACED:
        for section, key in _index_keys(rootfs, path):
            if section != "global":
                yield f"{path} [{section}] {key} is set: pipdepot replaces that file while injected"


def _user_overrides(rootfs: RootFS) -> Iterable[str]:
    for user_file in _other_users_files(rootfs):
        if any(True for _ in _index_keys(rootfs, user_file)):
            yield f"{user_file} sets an index for its user: it wins over /etc/pip.conf"


def _environment_overrides(rootfs: RootFS) -> Iterable[str]:
    environment = rootfs.path(PurePosixPath("/etc/environment"), follow_last=True)
    if not environment.is_file():
        return
    for line in environment.read_text(encoding="utf-8", errors="replace").splitlines():
        name = line.strip().removeprefix("export ").split("=", 1)[0].strip()
        if name in INDEX_ENV_VARS:
            yield f"/etc/environment sets {name}: login shells in the root prefer it over the mirror"


def _index_keys(rootfs: RootFS, path: PurePosixPath) -> Iterable[tuple[str, str]]:
    host = rootfs.path(path, follow_last=True)
    if not host.is_file():
        return
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read_string(host.read_text(encoding="utf-8", errors="replace"))
    except configparser.Error:
        return
    for section in parser.sections():
        for key in parser.options(section):
            if key.replace("_", "-") in _INDEX_KEYS:
                yield section, key


def _other_users_files(rootfs: RootFS) -> Iterable[PurePosixPath]:
    home = rootfs.path(PurePosixPath("/home"), follow_last=True)
    if not home.is_dir():
        return
    for user in sorted(home.iterdir()):
        for name in (".pip/pip.conf", ".config/pip/pip.conf"):
            yield PurePosixPath("/home", user.name, name)
