"""What building a source tree or sdist installs first, by the rules pip applies (PEP 517, PEP 518).

An offline build root cannot fetch its build backend, so the mirror must hold
everything pip puts into the isolated build environment: ``build-system.requires``
(or pip's fallback for a project that names no build system), plus what the
backend's ``get_requires_for_build_wheel`` adds, where that is knowable without
running it: setuptools before 70.1 asks for ``wheel``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from pipdepot.core.archive import ArchiveError, sdist_member
from pipdepot.core.distribution import InvalidDistribution, first_line

if TYPE_CHECKING:
    from pathlib import Path

    from pipdepot.fill.lockfiles import Pin

__all__ = [
    "LEGACY_REQUIRES",
    "BuildSystem",
    "InvalidBuildSystem",
    "build_requirements",
    "parse_build_system",
    "project_build_system",
]

#: What pip (up to 24.x) installs to build a project with no ``build-system.requires``: pip 23.0.1
#: (Debian bookworm's) fails offline without ``wheel``.
LEGACY_REQUIRES = ("setuptools>=40.8.0", "wheel")
#: The first setuptools whose ``get_requires_for_build_wheel`` no longer returns ``["wheel"]``.
_SETUPTOOLS_WITHOUT_WHEEL = Version("70.1.0")
#: A local project's pyproject.toml larger than this is not one.
_MAX_PYPROJECT = 1024 * 1024


def __dir__() -> list[str]:
    return __all__


class InvalidBuildSystem(ValueError):  # noqa: N818 (reads as a sentence)
    """A pyproject.toml that cannot be read."""


@dataclass(frozen=True, slots=True)
class BuildSystem:
    """A project's build requirements and backend (``None``: setuptools' legacy backend)."""

    requires: tuple[str, ...]
    backend: str | None

    @property
    def setuptools(self) -> bool:
        """Whether the backend is setuptools' (which may ask for ``wheel`` at build time)."""
        return self.backend is None or self.backend.split(":")[0] == "setuptools.build_meta"

    def dynamic(self, pins: list[Pin]) -> tuple[str, ...]:
        """What the backend's ``get_requires_for_build_wheel`` adds, given the build environment's pins.

        setuptools before 70.1 returns ``["wheel"]``; its ``setup_requires`` (from running
        setup.py) cannot be known without running it.
        """
        if not self.setuptools or any(p.name == "wheel" for p in pins):
            return ()
        for pin in pins:
            if pin.name == "setuptools":
                try:
                    old = Version(pin.version) < _SETUPTOOLS_WITHOUT_WHEEL
                except InvalidVersion:
                    old = False
                return ("wheel",) if old else ()
        return ()


def parse_build_system(pyproject: bytes | None) -> BuildSystem:
    """The build system a ``pyproject.toml`` (``None``: none) declares, with pip's fallbacks.

    :raises InvalidBuildSystem: not UTF-8 TOML.
    """
    if pyproject is None:
        return BuildSystem(LEGACY_REQUIRES, None)
    try:
        system = tomllib.loads(pyproject.decode()).get("build-system")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidBuildSystem(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    if not isinstance(system, dict) or not isinstance(system.get("requires"), list):
        return BuildSystem(LEGACY_REQUIRES, None)
    backend = system.get("build-backend")
    return BuildSystem(
        tuple(str(r) for r in system["requires"]), backend if isinstance(backend, str) else None
    )


def project_build_system(directory: Path) -> BuildSystem:
    """The build system of a local source tree (its ``pyproject.toml``, if any).

    :raises InvalidBuildSystem: the file is unreadable, too large or not TOML.
    """
    path = directory / "pyproject.toml"
    try:
        with path.open("rb") as stream:
            data = stream.read(_MAX_PYPROJECT + 1)
    except FileNotFoundError:
        return parse_build_system(None)
    except OSError as exc:
        raise InvalidBuildSystem(f"{path}: {exc.strerror}") from None
    if len(data) > _MAX_PYPROJECT:
        raise InvalidBuildSystem(f"{path}: larger than {_MAX_PYPROJECT} bytes")
    try:
        return parse_build_system(data)
    except InvalidBuildSystem as exc:
        raise InvalidBuildSystem(f"{path}: {exc}") from None


def build_requirements(path: Path) -> BuildSystem:
    """What building the sdist at ``path`` installs first: its build system, by pip's rules.

    An offline build root cannot fetch its build backend, so the mirror must hold it too.

    :raises InvalidDistribution: the archive cannot be read.
    """
    try:
        return parse_build_system(sdist_member(path, "pyproject.toml"))
    except (OSError, ArchiveError, InvalidBuildSystem) as exc:
        raise InvalidDistribution(f"{path.name}: unreadable sdist: {first_line(exc)}") from None
