"""Target views: a project's page trimmed to what one build target could install.

pip reads, parses and evaluates every file a page lists; numpy's page lists 4,415 files to a
build that can use about twenty. A view lists only wheels whose tags the target supports,
sdists, and files whose Requires-Python admits the target's Python; a version left with no
such file goes. Nothing a target's installer would choose is ever dropped: where a rule
cannot be evaluated (an unparsable tag or specifier) the file stays.

A Requires-Python that every micro version of the target's Python meets is left out of the
view's entry: it cannot change a client's choice there, and pip before 24 parses it anew for
every file (a third of pip 23's work on botocore's page).

A view is named in the URL (``/+target/cp311-manylinux_2_36_x86_64/simple/``, the words
``sync`` uses for targets) or read from the installer's own User-Agent
(``/+auto/simple/``: pip and uv send their Python, libc and CPU), so a build root needs no
Python of its own when its configuration is written.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from pipdepot.core.targets import InvalidTarget, platform_target

if TYPE_CHECKING:
    from pipdepot.core.project import FileEntry
    from pipdepot.core.targets import Target

__all__ = ["TargetView", "view_from_agent", "view_named"]

_NAME = re.compile(r"cp3(\d{1,2})-([a-z0-9_]+)")
#: Micro versions tried: a file is kept if any admits it.
_MICROS = 40
_MAX_AGENT = 4096
_CPU = {"amd64": "x86_64", "x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class TargetView:
    """What one target can install: its wheel tags and its Python (any micro version of it).

    The micro version a client runs is not part of a view: a view's pages are rendered once
    and shared by every client of that target, so what they list must not depend on which
    client asked first. A file whose Requires-Python admits some micro version stays.
    """

    #: ``cp311-manylinux_2_36_x86_64``: the view's name, in URLs and cache keys.
    name: str
    target: Target

    def keeps(self, entry: FileEntry) -> bool:
        """Whether a build on this target could install the file."""
        filename = entry["filename"]
        if filename.endswith(".whl"):
            try:
                _, _, _, tag_set = parse_wheel_filename(filename)
            except InvalidWheelFilename:
                return True
            if self.target.rank(tag_set) is None:
                return False
        requires = entry.get("requires-python")
        return not isinstance(requires, str) or _admits(requires, self.target.python)[0]

    def trim(self, files: list[FileEntry]) -> list[FileEntry]:
        """The files this target could install, in their order, without a Requires-Python all meet."""
        kept: list[FileEntry] = []
        for entry in files:
            if not self.keeps(entry):
                continue
            requires = entry.get("requires-python")
            if isinstance(requires, str) and _admits(requires, self.target.python)[1]:
                kept.append({key: value for key, value in entry.items() if key != "requires-python"})
            else:
                kept.append(entry)
        return kept


@functools.lru_cache(maxsize=256)
def view_named(name: str) -> TargetView:
    """The view ``cp311-manylinux_2_36_x86_64`` names (made once: a target's tags are 900 objects).

    :raises InvalidTarget: not a CPython target with a platform tag pipdepot can target.
    """
    match = _NAME.fullmatch(name)
    if match is None:
        raise InvalidTarget(f"{name!r} is not a target like cp311-manylinux_2_36_x86_64")
    return TargetView(name, platform_target(f"3.{match.group(1)}", match.group(2)))


@functools.lru_cache(maxsize=1024)
def view_from_agent(agent: str) -> TargetView | None:
    """The view of the machine an installer runs on, from its User-Agent; ``None``: unknown.

    pip and uv append a JSON object (linehaul's) with the Python, implementation, libc and
    CPU. Anything else (another implementation, an unknown libc or CPU) gets no view: the
    full page is always right.
    """
    start = agent.find("{")
    if start == -1 or len(agent) > _MAX_AGENT:
        return None
    try:
        data = json.loads(agent[start:])
        implementation = data["implementation"]["name"]
        python = str(data["python"])
        cpu = _CPU.get(str(data.get("cpu", "")).lower())
        libc = (data.get("distro") or {}).get("libc") or {}
        system = str((data.get("system") or {}).get("name", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    parts = python.split(".")
    if implementation != "CPython" or system != "Linux" or cpu is None or len(parts) < 2:
        return None
    platform = _linux_platform(libc, cpu)
    if platform is None:
        return None
    try:
        return view_named(f"cp{parts[0]}{parts[1]}-{platform}")
    except InvalidTarget:
        return None


def _linux_platform(libc: object, cpu: str) -> str | None:
    if not isinstance(libc, dict):
        return None
    match = re.fullmatch(r"(\d+)\.(\d+)", str(libc.get("version", "")))
    if match is None:
        return None
    major, minor = match.groups()
    if libc.get("lib") == "glibc" and major == "2":
        return f"manylinux_2_{minor}_{cpu}"
    if libc.get("lib") == "musl" and major == "1":
        return f"musllinux_1_{minor}_{cpu}"
    return None


@functools.lru_cache(maxsize=4096)
def _admits(requires: str, minor: str) -> tuple[bool, bool]:
    """Whether ``requires`` admits some micro version of Python ``minor``, and whether it admits all.

    A specifier's verdict on ``minor.N`` changes only next to a micro version it names, so
    trying those, their neighbours and one past the largest decides "all" exactly. Anything
    unreadable counts as "some, not all": the file stays and so does its Requires-Python.
    """
    try:
        specifiers = SpecifierSet(requires)
        named = [Version(spec.version.removesuffix(".*")) for spec in specifiers]
    except (InvalidSpecifier, InvalidVersion):
        return True, False
    release = tuple(int(part) for part in minor.split("."))
    micros = set(range(_MICROS))
    for version in named:
        if version.release[:2] == release and len(version.release) > 2:
            micros.update((max(version.micro - 1, 0), version.micro, version.micro + 1))
    micros.add(max(micros) + 1)
    verdicts = [specifiers.contains(f"{minor}.{micro}", prereleases=True) for micro in sorted(micros)]
    return any(verdicts), all(verdicts)
