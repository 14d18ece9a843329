"""Install targets: a Python version and a platform, as wheel tags, markers and uv's words. Pure.

A mirror filled for one machine is wrong for another, so ``sync`` and ``check``
work per target. A target is given as a wheel platform tag
(``manylinux_2_28_x86_64``, ``macosx_11_0_arm64``, ``win_amd64``); from it come
the tags a wheel may carry to install there (in pip's order of preference), the
PEP 508 marker environment, and the ``--python-platform`` uv resolves for.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from packaging import markers, tags

if TYPE_CHECKING:
    from collections.abc import Iterable

    from packaging.tags import Tag

__all__ = [
    "InvalidTarget",
    "Target",
    "host_target",
    "make_targets",
    "parse_python_version",
    "platform_target",
]

_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_(x86_64|aarch64|i686|ppc64le|s390x|armv7l)")
_LEGACY_MANYLINUX = re.compile(
    r"(manylinux1|manylinux2010|manylinux2014)_(x86_64|aarch64|i686|ppc64le|s390x)"
)
_LEGACY_GLIBC = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_MUSLLINUX = re.compile(r"musllinux_(\d+)_(\d+)_(x86_64|aarch64|i686|armv7l)")
_LINUX = re.compile(r"linux_(x86_64|aarch64|i686|armv7l|ppc64le|s390x)")
_MACOS = re.compile(r"macosx_(\d+)_(\d+)_(arm64|x86_64|universal2)")
_WINDOWS = {"win_amd64": "x86_64", "win_arm64": "arm64", "win32": "x86"}
#: manylinux glibc versions uv can target (``--python-platform <arch>-manylinux_2_N``).
_UV_GLIBC = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)


def __dir__() -> list[str]:
    return __all__


class InvalidTarget(ValueError):  # noqa: N818 (reads as a sentence: raise InvalidTarget)
    """A ``--python-version`` or ``--platform`` value pipdepot cannot target."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the requirements must install: CPython ``python`` (``3.11``) on ``platform``.

    ``platform`` is ``None`` for this machine's own platform.
    """

    python: str
    platform: str | None
    tags: tuple[Tag, ...]
    environment: tuple[tuple[str, str], ...]
    uv_platform: str | None
    _order: dict[Tag, int] = field(default_factory=dict, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        self._order.update((tag, i) for i, tag in reversed(list(enumerate(self.tags))))

    def __str__(self) -> str:
        """``cp311-manylinux_2_28_x86_64``, or ``cp311-host``: how messages name the target."""
        return f"cp{self.python.replace('.', '')}-{self.platform or 'host'}"

    def markers(self) -> dict[str, str]:
        """The PEP 508 environment, for evaluating markers."""
        return dict(self.environment)

    def rank(self, tag_set: Iterable[Tag]) -> int | None:
        """How good a wheel with ``tag_set`` is here (lower is better), or ``None`` if it cannot install."""
        ranks = [self._order[tag] for tag in tag_set if tag in self._order]
        return min(ranks) if ranks else None


def parse_python_version(value: str) -> tuple[int, int]:
    """``3.11`` as ``(3, 11)``.

    :raises InvalidTarget: it is not a CPython 3 minor version.

    >>> parse_python_version("3.12")
    (3, 12)
    """
    match = re.fullmatch(r"3\.(\d{1,2})", value.strip())
    if match is None or not 6 <= int(match.group(1)) <= 99:
        raise InvalidTarget(f"--python-version {value!r} is not a Python version like 3.11")
    return 3, int(match.group(1))


def host_target(python: str | None = None) -> Target:
    """The machine pipdepot runs on, with its own interpreter's version or ``python``."""
    version = parse_python_version(python) if python else sys.version_info[:2]
    platforms = list(tags.platform_tags())
    environment = {k: str(v) for k, v in markers.default_environment().items()}
    return _target(version, None, platforms, environment, None)


def make_targets(pythons: Iterable[str], platforms: Iterable[str]) -> list[Target]:
    """Every combination asked for; this machine's version or platform where none is given.

    :raises InvalidTarget: a value is not a usable version or platform tag.
    """
    versions = list(dict.fromkeys(pythons)) or [f"{sys.version_info[0]}.{sys.version_info[1]}"]
    for version in versions:
        parse_python_version(version)
    chosen = list(dict.fromkeys(platforms))
    if not chosen:
        return [host_target(version) for version in versions]
    return [_platform_target(parse_python_version(v), platform) for v in versions for platform in chosen]


def platform_target(python: str, platform: str, *, full_version: str | None = None) -> Target:
    """One target, with the interpreter's exact version (``3.11.2``) for markers when it is known.

    :raises InvalidTarget: a value is not a usable version or platform tag.
    """
    return _platform_target(parse_python_version(python), platform, full_version)


def _platform_target(version: tuple[int, int], platform: str, full_version: str | None = None) -> Target:
    platforms, environment, uv_platform = _describe(platform)
    if full_version is not None:
        environment = {**environment, "python_full_version": full_version}
    return _target(version, platform, platforms, environment, uv_platform)


def _target(
    version: tuple[int, int],
    platform: str | None,
    platforms: list[str],
    environment: dict[str, str],
    uv_platform: str | None,
) -> Target:
    interpreter = f"cp{version[0]}{version[1]}"
    tag_list = (
        *tags.cpython_tags(version, abis=[interpreter], platforms=platforms),
        *tags.compatible_tags(version, interpreter, platforms),
    )
    environment = dict(environment)
    full = environment.get("python_full_version") if platform is not None else None
    full = full or f"{version[0]}.{version[1]}.0"
    environment.update(
        python_version=f"{version[0]}.{version[1]}",
        python_full_version=full,
        implementation_name="cpython",
        platform_python_implementation="CPython",
        implementation_version=full,
    )
    return Target(
        f"{version[0]}.{version[1]}",
        platform,
        tag_list,
        tuple(sorted(environment.items())),
        uv_platform,
    )


def _describe(platform: str) -> tuple[list[str], dict[str, str], str]:
    """The platform tags, marker values and uv platform of a wheel platform tag.

    :raises InvalidTarget: it is not a tag pipdepot (and uv) can target.
    """
    if match := _MANYLINUX.fullmatch(platform):
        major, minor, arch = int(match.group(1)), int(match.group(2)), match.group(3)
        return _linux(platform, arch, (major, minor))
    if match := _LEGACY_MANYLINUX.fullmatch(platform):
        return _linux(platform, match.group(2), _LEGACY_GLIBC[match.group(1)])
    if match := _MUSLLINUX.fullmatch(platform):
        if match.group(1) != "1":
            raise InvalidTarget(
                f"--platform {platform!r}: musl {match.group(1)}.{match.group(2)} does not exist"
            )
        minor, arch = int(match.group(2)), match.group(3)
        names = [f"musllinux_1_{m}_{arch}" for m in range(minor, -1, -1)] + [f"linux_{arch}"]
        return names, _posix("linux", "Linux", arch), f"{_uv_arch(arch, platform)}-unknown-linux-musl"
    if match := _LINUX.fullmatch(platform):
        arch = match.group(1)
        return [platform], _posix("linux", "Linux", arch), f"{_uv_arch(arch, platform)}-unknown-linux-gnu"
    if match := _MACOS.fullmatch(platform):
        version, arch = (int(match.group(1)), int(match.group(2))), match.group(3)
        machine = "arm64" if arch in {"arm64", "universal2"} else "x86_64"
        names = list(tags.mac_platforms(version, machine))
        uv_arch = "aarch64" if machine == "arm64" else "x86_64"
        return names, _posix("darwin", "Darwin", machine), f"{uv_arch}-apple-darwin"
    if platform in _WINDOWS:
        machine = {"x86_64": "AMD64", "arm64": "ARM64", "x86": "x86"}[_WINDOWS[platform]]
        uv_arch = {"x86_64": "x86_64", "arm64": "aarch64", "x86": "i686"}[_WINDOWS[platform]]
        environment = {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt"}
        environment.update(platform_machine=machine, platform_release="", platform_version="")
        return [platform], environment, f"{uv_arch}-pc-windows-msvc"
    if re.fullmatch(r"[a-z0-9_]+", platform):
        raise InvalidTarget(
            f"--platform {platform!r}: not a platform pipdepot can target "
            "(manylinux_2_N_ARCH, manylinux2014_ARCH, musllinux_1_N_ARCH, linux_ARCH, "
            "macosx_X_Y_ARCH, win_amd64, win_arm64, win32)"
        )
    raise InvalidTarget(f"--platform {platform!r} is not a wheel platform tag (like manylinux_2_28_x86_64)")


def _linux(platform: str, arch: str, glibc: tuple[int, int]) -> tuple[list[str], dict[str, str], str]:
    major, minor = glibc
    if major != 2:  # glibc 2 is the only one there is
        raise InvalidTarget(f"--platform {platform!r}: glibc {major}.{minor} does not exist")
    names: list[str] = []
    for m in range(minor, 4, -1):
        names.append(f"manylinux_2_{m}_{arch}")
        names.extend(f"{legacy}_{arch}" for legacy, version in _LEGACY_GLIBC.items() if version == (2, m))
    names.append(f"linux_{arch}")
    usable = [v for v in _UV_GLIBC if v <= minor] or [_UV_GLIBC[0]]
    uv_platform = f"{_uv_arch(arch, platform)}-manylinux_2_{usable[-1]}"
    return names, _posix("linux", "Linux", arch), uv_platform


def _uv_arch(arch: str, platform: str) -> str:
    if arch not in {"x86_64", "aarch64"}:
        raise InvalidTarget(f"--platform {platform!r}: uv resolves Linux only for x86_64 and aarch64")
    return arch


def _posix(sys_platform: str, system: str, machine: str) -> dict[str, str]:
    return {
        "sys_platform": sys_platform,
        "platform_system": system,
        "os_name": "posix",
        "platform_machine": machine,
        "platform_release": "",
        "platform_version": "",
    }
