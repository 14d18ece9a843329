"""The targets ``sync``, ``check`` and ``export`` work for: Python versions and wheel platforms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipdepot.errors import UsageError
from pipdepot.settings.sources import WORDS, from_flag, read_sources

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["TargetSettings", "load_targets"]


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class TargetSettings:
    """The targets ``sync``, ``check`` and ``export`` work for; empty means this interpreter and machine."""

    python_versions: tuple[str, ...]
    platforms: tuple[str, ...]


def load_targets(
    python_versions: tuple[str, ...], platforms: tuple[str, ...], environ: Mapping[str, str]
) -> TargetSettings:
    """``--python-version``/``PIPDEPOT_PYTHON_VERSIONS`` and ``--platform``/``PIPDEPOT_PLATFORMS``.

    Each from the flags, else the variable (space-separated), else the config file's
    ``python-versions``/``platforms`` lists.

    :raises UsageError: the config file is unusable.
    """
    try:
        sources = read_sources(None, environ)
        pythons = sources.setting(
            from_flag("--python-version", python_versions or None), "python-versions", WORDS, default=()
        )
        tags = sources.setting(from_flag("--platform", platforms or None), "platforms", WORDS, default=())
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return TargetSettings(pythons.value, tags.value)
