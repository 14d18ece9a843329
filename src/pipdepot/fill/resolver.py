"""Resolve requirements with uv's resolver, against an index pipdepot serves.

pipdepot writes no resolver: ``uv pip compile`` does it, reading PEP 658
metadata files from the index instead of whole wheels, for any Python version
and platform (``--python-version``, ``--python-platform``). It runs with no
configuration and no environment of the host's, a fresh cache and no Python
downloads, so the only thing it talks to is the index it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pipdepot.fill.lockfiles import Pin

if TYPE_CHECKING:
    from pathlib import Path

    from pipdepot.core.targets import Target

__all__ = ["ResolutionError", "resolve"]

_KEPT_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")


#: How uv words a failure of the index rather than of the requirements ("Failed to download and
#: build" is a build that failed).
_INDEX_FAILURE = re.compile(r"Failed to fetch|Failed to download(?! and build)|server error")
#: uv's words when an sdist's build backend ran and failed (not when its environment was missing).
_BACKEND_FAILURE = re.compile(r"build backend returned an error|Build backend failed")
_FAILED_BUILD = re.compile(r"Failed to (?:download and )?build `([^`=\s]+)==([^`\s]+)`")


def __dir__() -> list[str]:
    return __all__


class ResolutionError(Exception):
    """The requirements do not resolve for a target; the message is uv's, its lines kept.

    uv explains a conflict as a chain of "because" lines, drawn as a tree: flattened into
    one line it cannot be read, so it keeps its lines (without uv's warnings).
    """

    @property
    def index_failed(self) -> bool:
        """Whether an index answered with an error (an upstream behind pipdepot down: a 502).

        Anything else is the requirements' own fault: no set of versions, or an old sdist whose
        setup.py no longer runs ("Failed to build", met in a real OpenStack upper-constraints file).
        """
        return _INDEX_FAILURE.search(str(self)) is not None

    @property
    def build_failed(self) -> bool:
        """Whether an sdist's own build backend failed while preparing its metadata.

        Its files and build environment were there: what fails is the sdist's setup code with
        the backend the environment gives (setup.py importing ``pkg_resources``, gone from
        setuptools 82), which no mirror content changes.
        """
        return _BACKEND_FAILURE.search(str(self)) is not None and not self.index_failed

    @property
    def failed_build(self) -> tuple[str, str] | None:
        """The project and version whose sdist failed to build, as uv names them."""
        match = _FAILED_BUILD.search(str(self))
        return (match.group(1), match.group(2)) if match and self.build_failed else None

    @property
    def conflict(self) -> bool:
        """Whether uv found no set of versions (the input's fault), not that an index failed."""
        return "No solution found" in str(self) and not self.index_failed


async def resolve(requirements: Path, target: Target, *, index_url: str, cache_dir: Path) -> list[Pin]:
    """The exact versions ``requirements`` need on ``target``, from the index at ``index_url``.

    :raises ResolutionError: no set of versions satisfies them (or the index failed).
    """
    import uv  # noqa: PLC0415 (finds the binary; only these commands need it)

    command = [
        uv.find_uv_bin(),
        "pip",
        "compile",
        "--no-config",
        "--no-header",
        "--no-annotate",
        "--no-python-downloads",
        "--color=never",
        "--cache-dir",
        str(cache_dir),
        "--index-url",
        index_url,
        "--index-strategy",
        "first-index",
        "--python-version",
        target.python,
        *(["--python-platform", target.uv_platform] if target.uv_platform else []),
        str(requirements),
    ]
    environment = {k: os.environ[k] for k in _KEPT_ENVIRONMENT if k in os.environ}
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=environment,
    )
    try:
        out, err = await process.communicate()
    except BaseException:  # cancelled (pipdepot stopped): uv must not outlive it, writing to removed dirs
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await asyncio.shield(process.wait())
        raise
    if process.returncode != 0:
        raise ResolutionError(_readable(err.decode(errors="replace")))
    return _pins(out.decode())


def _pins(output: str) -> list[Pin]:
    pins = []
    for line in output.splitlines():
        text = line.split("#", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        specifiers = list(requirement.specifier)
        if len(specifiers) == 1 and specifiers[0].operator == "==":
            pins.append(Pin(canonicalize_name(requirement.name), specifiers[0].version))
    return pins


def _readable(message: str) -> str:
    """The report of uv without its warnings and blank lines, the common indentation removed."""
    lines = [line.rstrip() for line in message.splitlines()]
    lines = [line for line in lines if line.strip() and not line.startswith("warning:")]
    indent = min((len(line) - len(line.lstrip()) for line in lines), default=0)
    text = "\n".join(line[indent:] for line in lines)
    return re.sub(r"^error: ", "", text) or "uv failed without a message"
