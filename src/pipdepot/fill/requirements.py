"""What a mirror must hold, as read from requirements files and lock files.

Requirements files (pip's format) give requirements to resolve; the resolver
only ever sees the requirement lines pipdepot passes on, so an ``--index-url``
inside a file cannot send it around the mirror. ``--hash`` values are kept per
project, to check the files chosen. Lock files (``pylock.toml``, ``uv.lock``)
give exact pins and need no resolver: see :mod:`pipdepot.fill.lockfiles`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit
from urllib.request import url2pathname

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pipdepot.fill.lockfiles import Pin

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pipdepot.core.names import NormalizedName

__all__ = ["LocalProject", "RequirementSet", "RequirementsError", "is_url", "read_requirements"]

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


@dataclass(frozen=True, slots=True)
class LocalProject:
    """A path requirement: a source tree on this machine, built by the installer, never mirrored."""

    path: Path
    #: As the requirements file wrote it.
    text: str
    editable: bool = False


@dataclass(slots=True)
class RequirementSet:
    """Requirements and constraints to resolve, with the sha256 values each project allows."""

    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    hashes: dict[NormalizedName, set[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: How messages name this set.
    label: str = "requirements"
    #: Path requirements; their directories are also among ``requirements``, for the resolver.
    local: list[LocalProject] = field(default_factory=list)

    def exact_constraints(self) -> list[str]:
        """The constraints that pin one version (``==`` or ``===``), as written: a pins file's pins."""
        found = []
        for line in self.constraints:
            specifiers = list(Requirement(line).specifier)
            if len(specifiers) == 1 and specifiers[0].operator in {"==", "==="}:
                found.append(line)
        return found

    def alone(self, requirements: list[str], label: str) -> RequirementSet:
        """Some requirements on their own, under all of this set's constraints and hashes."""
        return RequirementSet(list(requirements), self.constraints, self.hashes, label=label)

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


#: Reads the text at a URL (``-r``/``-c`` lines and options may name one); raises RequirementsError.
Loader = Callable[[str], str]


def read_requirements(
    paths: Sequence[str | Path],
    constraints: Sequence[str | Path] = (),
    *,
    load: Loader | None = None,
    required: bool = True,
) -> RequirementSet:
    """Read requirements files and constraints files (following ``-r`` and ``-c``), by path or URL.

    :raises RequirementsError: a file is unreadable, a line is not a requirement, or (``required``)
        there is no requirement at all.
    """
    found = RequirementSet()
    for location in paths:
        _read(_Source(str(location), constraint=False, seen=frozenset(), load=load), found)
    for location in constraints:
        _read(_Source(str(location), constraint=True, seen=frozenset(), load=load), found)
    if required and not found.requirements:
        raise RequirementsError(f"no requirements in {', '.join(map(str, paths)) or 'the input'}")
    return found


def is_url(location: str) -> bool:
    """Whether ``location`` names a file by URL rather than by path."""
    return urlsplit(location).scheme.lower() in {"http", "https"}


@dataclass(frozen=True, slots=True)
class _Source:
    """A file being read (path or URL): whether its lines are constraints, the files including it."""

    location: str
    constraint: bool
    seen: frozenset[str]
    load: Loader | None

    def include(self, name: str, *, constraint: bool) -> _Source:
        """The file an ``-r``/``-c`` line names: a URL, or a path relative to this file."""
        if is_url(name):
            location = name
        elif is_url(self.location):
            location = urljoin(self.location, name)
        else:
            location = (
                str(PurePath(self.location).parent / name) if not PurePath(name).is_absolute() else name
            )
        seen = self.seen | {self.key}
        return _Source(location, self.constraint or constraint, seen, self.load)

    @property
    def key(self) -> str:
        """The file's identity, to refuse one that includes itself."""
        return self.location if is_url(self.location) else str(Path(self.location).resolve())

    def text(self) -> str:
        if is_url(self.location):
            if self.load is None:
                raise RequirementsError(f"{self.location}: a URL cannot be read here")
            return self.load(self.location)
        try:
            return Path(self.location).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise RequirementsError(f"cannot read requirements file {self.location}: {reason}") from None


def _read(source: _Source, found: RequirementSet) -> None:
    if source.key in source.seen:
        raise RequirementsError(f"{source.location}: includes itself")
    for number, line in _logical_lines(source.text()):
        line = _COMMENT.sub("", line).strip()  # noqa: PLW2901 (the same line, without its comment)
        if line:
            _line(line, f"{source.location}:{number}", source, found)


def _line(line: str, where: str, source: _Source, found: RequirementSet) -> None:
    if not line.startswith("-"):
        _requirement(line, where, found, constraint=source.constraint)
        return
    words = line.split()
    first = words[0]
    option, _, inline = first.partition("=")
    target = inline or (words[1] if len(words) > 1 else "")
    if first[:2] in {"-r", "-c", "-e"} and len(first) > 2:
        option, target = first[:2], first[2:]
    if option in {"-r", "--requirement", "-c", "--constraint"}:
        if not target:
            raise RequirementsError(f"{where}: {first} needs a file name")
        _read(source.include(target, constraint=option in {"-c", "--constraint"}), found)
        return
    if option in {"-e", "--editable"}:
        if not target:
            raise RequirementsError(f"{where}: {first} needs a path")
        if not _local_project(target, where, found, editable=True):
            found.notes.append(f"{where}: editable {target} left out: not a local directory")
        return
    if option not in _IGNORED:
        raise RequirementsError(f"{where}: unknown option {first!r}")
    found.notes.append(f"{where}: {option} left out: pipdepot resolves against its upstreams")


def _local_project(text: str, where: str, found: RequirementSet, *, editable: bool) -> bool:
    """A path requirement (``./project``, ``-e .``, ``file:///...``): taken as a local project.

    A relative path is taken from the current directory, as pip does, else from beside the
    requirements file. The project itself is not mirrored; uv resolves its dependencies, and
    its build system is read from its tree. ``False``: not a path to a directory.
    """
    if text.startswith("file:"):
        text = url2pathname(urlsplit(text).path)
    elif "://" in text:
        return False
    if "/" not in text and not text.startswith("."):
        return False
    path = Path(text).expanduser()
    candidates = (
        [path] if path.is_absolute() else [Path.cwd() / path, Path(where.rsplit(":", 1)[0]).parent / path]
    )
    for candidate in candidates:
        if candidate.is_dir():
            directory = candidate.resolve()
            if directory not in (p.path for p in found.local):
                found.local.append(LocalProject(directory, text, editable=editable))
                found.requirements.append(str(directory))
            return True
    if text.endswith((".whl", ".tar.gz", ".zip")):
        return False
    raise RequirementsError(f"{where}: {text}: no such directory")


def _requirement(line: str, where: str, found: RequirementSet, *, constraint: bool) -> None:
    options = [m.group(1) + "=" + m.group(2) for m in _OPTION.finditer(line)]
    text = _OPTION.sub("", line).strip()
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        if _local_project(text, where, found, editable=False):
            return
        if "/" in text or text.startswith("."):
            found.notes.append(f"{where}: {text!r} left out: a path or URL is not an index package")
            return
        reason = str(exc).splitlines()[0]
        raise RequirementsError(f"{where}: {text!r} is not a requirement: {reason}") from None
    if requirement.url and _local_project(requirement.url, where, found, editable=False):
        return
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
