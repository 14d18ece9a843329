"""What a mirror must hold, as read from requirements files and lock files.

Requirements files (pip's format) give requirements to resolve; the resolver
only ever sees the requirement lines pipdepot passes on, so an ``--index-url``
inside a file cannot send it around the mirror. ``--hash`` values are kept per
project, to check the files chosen. Lock files (``pylock.toml``, ``uv.lock``)
give exact pins and need no resolver: see :mod:`pipdepot.core.locks`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pipdepot.core.locks import Pin

if TYPE_CHECKING:
    from pathlib import Path

    from pipdepot.core.names import NormalizedName

__all__ = ["RequirementSet", "RequirementsError", "read_requirements"]

#: Options that only say where or how pip installs: the mirror decides where, so they are left out.
_IGNORED = frozenset(
    {
        "-i",
        "--index-url",
        "--extra-index-url",
        "--no-index",
        "-f",
        "--find-links",
        "--trusted-host",
        "--pre",
        "--prefer-binary",
        "--only-binary",
        "--no-binary",
        "--require-hashes",
        "--use-feature",
        "--config-settings",
    }
)
#: ``#`` starts a comment at the start of a line or after whitespace (pip's rule).
_COMMENT = re.compile(r"(^|\s+)#.*$")
#: Per-requirement options, ``--hash=sha256:...`` or ``--hash sha256:...``.
_OPTION = re.compile(r"\s(--[a-z-]+)(?:=|\s+)(\S+)")


def __dir__() -> list[str]:
    return __all__


class RequirementsError(ValueError):
    """A requirements file cannot be read or has a line pipdepot cannot understand."""


@dataclass(slots=True)
class RequirementSet:
    """Requirements and constraints to resolve, with the sha256 values each project allows."""

    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    hashes: dict[NormalizedName, set[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: How messages name this set.
    label: str = "requirements"

    def hashed(self, pins: list[Pin]) -> list[Pin]:
        """The resolver's pins, each narrowed to the sha256 values its requirement allows."""
        return [Pin(p.name, p.version, frozenset(self.hashes.get(p.name, ()))) for p in pins]

    def write(self, directory: Path) -> Path:
        """The requirements as a file for the resolver (constraints beside it); its path."""
        constraints = directory / "constraints.txt"
        constraints.write_text("".join(f"{line}\n" for line in self.constraints), encoding="utf-8")
        requirements = directory / "requirements.in"
        lines = [f"-c {constraints}", *self.requirements]
        requirements.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        return requirements


def read_requirements(paths: list[Path]) -> RequirementSet:
    """Read requirements files (following ``-r`` and ``-c``).

    :raises RequirementsError: a file is unreadable or a line is not a requirement.
    """
    found = RequirementSet()
    for path in paths:
        _read(_Source(path, constraint=False, seen=frozenset()), found)
    if not found.requirements:
        raise RequirementsError(f"no requirements in {', '.join(map(str, paths))}")
    return found


@dataclass(frozen=True, slots=True)
class _Source:
    """A file being read: whether its lines are constraints, and the files that include it."""

    path: Path
    constraint: bool
    seen: frozenset[Path]

    def include(self, name: str, *, constraint: bool) -> _Source:
        return _Source(
            self.path.parent / name, self.constraint or constraint, self.seen | {self.path.resolve()}
        )


def _read(source: _Source, found: RequirementSet) -> None:
    path = source.path
    if path.resolve() in source.seen:
        raise RequirementsError(f"{path}: includes itself")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise RequirementsError(f"cannot read requirements file {path}: {reason}") from None
    for number, line in _logical_lines(text):
        line = _COMMENT.sub("", line).strip()  # noqa: PLW2901 (the same line, without its comment)
        if line:
            _line(line, f"{path}:{number}", source, found)


def _line(line: str, where: str, source: _Source, found: RequirementSet) -> None:
    if not line.startswith("-"):
        _requirement(line, where, found, constraint=source.constraint)
        return
    words = line.split()
    first = words[0]
    option, _, inline = first.partition("=")
    target = inline or (words[1] if len(words) > 1 else "")
    if first[:2] in {"-r", "-c"} and len(first) > 2:
        option, target = first[:2], first[2:]
    if option in {"-r", "--requirement", "-c", "--constraint"}:
        if not target:
            raise RequirementsError(f"{where}: {first} needs a file name")
        _read(source.include(target, constraint=option in {"-c", "--constraint"}), found)
        return
    if option in {"-e", "--editable"}:
        found.notes.append(f"{where}: editable requirement left out: a mirror holds index packages only")
        return
    if option not in _IGNORED:
        raise RequirementsError(f"{where}: unknown option {first!r}")
    found.notes.append(f"{where}: {option} left out: pipdepot resolves against its upstreams")


def _requirement(line: str, where: str, found: RequirementSet, *, constraint: bool) -> None:
    options = [m.group(1) + "=" + m.group(2) for m in _OPTION.finditer(line)]
    text = _OPTION.sub("", line).strip()
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        if "/" in text or text.startswith("."):
            found.notes.append(f"{where}: {text!r} left out: a path or URL is not an index package")
            return
        reason = str(exc).splitlines()[0]
        raise RequirementsError(f"{where}: {text!r} is not a requirement: {reason}") from None
    if requirement.url:
        found.notes.append(f"{where}: {requirement.name} @ URL left out: not an index package")
        return
    name = canonicalize_name(requirement.name)
    for option in options:
        key, _, value = option.partition("=")
        if key != "--hash":
            raise RequirementsError(f"{where}: {requirement.name}: unknown option {option!r}")
        algorithm, _, digest = value.partition(":")
        if algorithm != "sha256":
            found.notes.append(
                f"{where}: {requirement.name}: only sha256 hashes are checked, not {algorithm}"
            )
            continue
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise RequirementsError(f"{where}: {requirement.name}: {option!r} is not a sha256 hash")
        found.hashes.setdefault(name, set()).add(digest.lower())
    (found.constraints if constraint else found.requirements).append(str(requirement))


def _logical_lines(text: str) -> list[tuple[int, str]]:
    r"""Lines with ``\\`` continuations joined, numbered by where they start."""
    lines: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\") and not raw.lstrip().startswith("#"):  # pip never continues a comment
            pending += raw[:-1] + " "
            continue
        lines.append((start, pending + raw))
        pending = ""
    if pending:
        lines.append((start, pending))
    return lines
