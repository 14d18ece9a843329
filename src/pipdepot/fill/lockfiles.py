"""Exact pins: from a resolver's answer, or straight from ``pylock.toml`` (PEP 751) and ``uv.lock``.

A lock file already says which version of what, with hashes; pipdepot takes
those pins as they are, per target: a ``pylock.toml`` package applies where its
marker holds; a ``uv.lock`` is walked from its workspace members along the
dependencies whose markers hold, extras and dependency groups included.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packaging.markers import InvalidMarker, Marker, UndefinedEnvironmentName
from packaging.utils import canonicalize_name

if TYPE_CHECKING:
    from pathlib import Path

    from pipdepot.core.names import NormalizedName
    from pipdepot.core.targets import Target

__all__ = ["LockError", "LockFile", "Pin", "is_lock_file", "read_lock"]

_REGISTRY_ONLY = "only packages from an index can be mirrored"


def __dir__() -> list[str]:
    return __all__


class LockError(ValueError):
    """A lock file cannot be read or is not one pipdepot understands."""


@dataclass(frozen=True, slots=True)
class Pin:
    """One exact version the mirror must hold a file of.

    ``hashes`` (sha256) and ``filenames`` narrow which files may be used; empty means any.
    """

    name: NormalizedName
    version: str
    hashes: frozenset[str] = frozenset()
    filenames: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Package:
    pin: Pin
    marker: Marker | None
    #: (name, version or None, marker or None, extras) of each dependency (uv.lock only).
    dependencies: tuple[tuple[NormalizedName, str | None, Marker | None, tuple[str, ...]], ...]
    extras: dict[str, tuple[tuple[NormalizedName, str | None, Marker | None, tuple[str, ...]], ...]]
    root: bool


@dataclass(frozen=True, slots=True)
class LockFile:
    """A lock file's packages; :meth:`pins` picks those a target needs."""

    path: Path
    kind: str
    packages: tuple[_Package, ...]
    notes: tuple[str, ...]

    def pins(self, target: Target) -> list[Pin]:
        """The pins that apply to ``target``."""
        environment = target.markers()
        if self.kind == "pylock.toml":
            return [p.pin for p in self.packages if p.marker is None or _holds(p.marker, environment)]
        return self._walk(environment)

    def _walk(self, environment: dict[str, str]) -> list[Pin]:
        by_name: dict[NormalizedName, list[_Package]] = {}
        for package in self.packages:
            by_name.setdefault(package.pin.name, []).append(package)
        roots = [p for p in self.packages if p.root] or list(self.packages)
        chosen: dict[tuple[str, str], _Package] = {}
        followed: set[tuple[str, str, str]] = set()  # (name, version, extra): a cycle ends
        queue = [(p, tuple(p.extras)) for p in roots]
        while queue:
            package, extras = queue.pop()
            key = (package.pin.name, package.pin.version)
            fresh = key not in chosen
            chosen[key] = package
            edges = list(package.dependencies) if fresh else []
            for extra in extras:
                if (*key, extra) not in followed:
                    followed.add((*key, extra))
                    edges.extend(package.extras.get(extra, ()))
            for name, version, marker, wanted in edges:
                if marker is not None and not _holds(marker, environment):
                    continue
                candidates = [c for c in by_name.get(name, []) if version is None or c.pin.version == version]
                queue.extend((c, wanted) for c in candidates[:1])
        return [p.pin for p in chosen.values() if not p.root or p.pin.hashes or p.pin.filenames]


def is_lock_file(path: Path) -> bool:
    """Whether ``path`` is read as a lock file (by its name) rather than as requirements."""
    return path.name == "uv.lock" or (path.name.startswith("pylock.") and path.name.endswith(".toml"))


def read_lock(path: Path) -> LockFile:
    """Read ``pylock.toml`` / ``pylock.NAME.toml`` or ``uv.lock``.

    :raises LockError: unreadable, not TOML, or not a lock of that kind.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise LockError(f"cannot read lock file {path}: {reason}") from None
    try:
        if path.name == "uv.lock":
            packages, notes = _uv_lock(data)
            return LockFile(path, "uv.lock", packages, notes)
        packages, notes = _pylock(data)
        return LockFile(path, "pylock.toml", packages, notes)
    except (KeyError, TypeError, ValueError, AttributeError, InvalidMarker) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else ""
        raise LockError(f"{path}: not a usable lock file: {type(exc).__name__}: {reason}") from None


def _pylock(data: dict[str, Any]) -> tuple[tuple[_Package, ...], tuple[str, ...]]:
    if not str(data["lock-version"]).startswith("1."):
        raise ValueError(f"lock-version {data['lock-version']!r} is not 1.x")
    packages, notes = [], []
    for raw in data.get("packages", []):
        name = canonicalize_name(raw["name"])
        files = [*raw.get("wheels", []), *([raw["sdist"]] if "sdist" in raw else [])]
        files = [f for f in files if "url" in f]  # a file given only by path is not on any index
        if "version" not in raw or not files:
            notes.append(f"{raw['name']}: left out: {_REGISTRY_ONLY}")
            continue
        filenames = frozenset(f.get("name") or str(f["url"]).rsplit("/", 1)[-1] for f in files)
        hashes = frozenset(
            str(f["hashes"]["sha256"]).lower() for f in files if "sha256" in f.get("hashes", {})
        )
        marker = Marker(raw["marker"]) if raw.get("marker") else None
        pin = Pin(name, str(raw["version"]), hashes, filenames)
        packages.append(_Package(pin, marker, (), {}, root=False))
    return tuple(packages), tuple(notes)


def _uv_lock(data: dict[str, Any]) -> tuple[tuple[_Package, ...], tuple[str, ...]]:
    packages, notes = [], []
    for raw in data.get("package", []):
        name = canonicalize_name(raw["name"])
        source = raw.get("source", {})
        root = any(kind in source for kind in ("editable", "virtual", "directory"))
        files = [*raw.get("wheels", []), *([raw["sdist"]] if "sdist" in raw else [])]
        if not root and "registry" not in source:
            notes.append(f"{raw['name']}: left out: {_REGISTRY_ONLY}")
            continue
        filenames = frozenset(str(f["url"]).rsplit("/", 1)[-1] for f in files if "url" in f)
        hashes = frozenset(
            str(f["hash"]).removeprefix("sha256:").lower()
            for f in files
            if str(f.get("hash")).startswith("sha256:")
        )
        extras = {str(k): _edges(v) for k, v in raw.get("optional-dependencies", {}).items()}
        if root:  # a workspace member: all its groups and extras are wanted
            for group, edges in raw.get("dev-dependencies", {}).items():
                extras[f"group:{group}"] = _edges(edges)
        version = str(raw.get("version", "0"))
        pin = Pin(name, version, hashes, filenames)
        packages.append(_Package(pin, None, _edges(raw.get("dependencies", [])), extras, root=root))
    return tuple(packages), tuple(notes)


def _edges(
    raw: list[dict[str, Any]],
) -> tuple[tuple[NormalizedName, str | None, Marker | None, tuple[str, ...]], ...]:
    return tuple(
        (
            canonicalize_name(edge["name"]),
            str(edge["version"]) if "version" in edge else None,
            Marker(edge["marker"]) if edge.get("marker") else None,
            tuple(str(e) for e in edge.get("extra", [])),
        )
        for edge in raw
    )


def _holds(marker: Marker, environment: dict[str, str]) -> bool:
    """Whether ``marker`` holds on the target; one about extras or groups (PEP 751) always does.

    A mirror carries what any install of the lock might need, whichever extras and
    dependency groups it asks for.
    """
    try:
        return marker.evaluate({**environment, "extra": ""})
    except UndefinedEnvironmentName:
        return True
