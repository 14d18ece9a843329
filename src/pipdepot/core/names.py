"""Project names and distribution filenames, by the rules of ``packaging``."""

from __future__ import annotations

from packaging.utils import (
    InvalidName,
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

__all__ = ["NormalizedName", "normalize_project", "project_of_filename", "version_of_filename"]

_MAX_NAME = 200


def __dir__() -> list[str]:
    return __all__


def normalize_project(name: str) -> NormalizedName | None:
    """The PEP 503 form of ``name``, or ``None`` when it is not a valid project name.

    >>> normalize_project("Flask_SQLAlchemy")
    'flask-sqlalchemy'
    >>> normalize_project("../etc") is None
    True
    """
    if not name or len(name) > _MAX_NAME:
        return None
    try:
        return canonicalize_name(name, validate=True)
    except InvalidName:
        return None


def project_of_filename(filename: str) -> NormalizedName | None:
    """The project a wheel or sdist filename belongs to, or ``None`` if it is neither."""
    parsed = _parse(filename)
    return None if parsed is None else parsed[0]


def version_of_filename(filename: str) -> str | None:
    """The version in a wheel or sdist filename, as written there."""
    parsed = _parse(filename)
    return None if parsed is None else parsed[1]


def _parse(filename: str) -> tuple[NormalizedName, str] | None:
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return _parse_legacy(filename)
    return name, str(version)


def _parse_legacy(filename: str) -> tuple[NormalizedName, str] | None:
    """Old sdists (``Foo-Bar-1.0.tar.gz``, ``.zip``, ``.tar.bz2``): split on the last dash."""
    for suffix in (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz"):
        if filename.endswith(suffix):
            stem = filename[: -len(suffix)]
            name, dash, version = stem.rpartition("-")
            normalized = normalize_project(name) if dash else None
            if normalized and version:
                return normalized, version
    return None
