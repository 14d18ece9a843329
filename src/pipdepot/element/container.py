"""A container builder's command line, read and extended with the mirror's mounts (pure).

``pipdepot build -- buildah bud ...`` keeps the user's command and adds one
``--volume SRC:DST:ro`` per file pip and uv read, and one for the local mirror
at ``/tmp/pypi``: every RUN step sees them, and none of their bytes enters a
layer. A volume onto a path the base image lacks leaves an empty stub behind
(measured with buildah 1.28): :data:`STUB_FILES` and :data:`STUB_DIRECTORIES`
say what the operation removes from the image afterwards, and only when empty.

Why these two files: ``/etc/pip.conf`` is pip's site-wide file and
``/etc/uv/uv.toml`` uv's system file; both apply to every user and every
virtual environment a RUN step makes. Root's user files would be redundant, and
each extra mount point is one more stub.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pipdepot.element.plan import MOUNT_POINT
from pipdepot.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "PIP_CONF",
    "STUB_DIRECTORIES",
    "STUB_FILES",
    "UV_TOML",
    "BuilderCommand",
    "Isolation",
    "final_base_image",
    "find_containerfile",
    "is_loopback_url",
    "parse_builder",
]

PIP_CONF = PurePosixPath("/etc/pip.conf")
UV_TOML = PurePosixPath("/etc/uv/uv.toml")
#: Mount points that are files: removed from the image when the build left them empty.
STUB_FILES = (PIP_CONF, UV_TOML)
#: Directories a mount made: removed when empty, deepest first.
STUB_DIRECTORIES = (MOUNT_POINT, UV_TOML.parent)

Isolation = Literal["oci", "chroot", "rootless"]

#: The builders pipdepot drives, and the subcommands that build.
_BUILDERS = {"buildah": ("bud", "build"), "podman": ("build",)}
#: Global options (before the subcommand) of buildah and podman that take a value.
_GLOBAL_VALUED = frozenset(
    {
        "--root",
        "--runroot",
        "--storage-driver",
        "--storage-opt",
        "--registries-conf",
        "--registries-conf-dir",
        "--short-name-alias-conf",
        "--userns-uid-map",
        "--userns-gid-map",
        "--cgroup-manager",
        "--log-level",
        "--default-mounts-file",
        "--connection",
        "-c",
        "--identity",
        "--url",
        "--network-cmd-path",
        "--runtime",
        "--tmpdir",
        "--conmon",
        "--events-backend",
        "--hooks-dir",
        "--module",
        "--network-config-dir",
        "--volumepath",
        "--imagestore",
        "--config",
    }
)
#: The global options that choose the image storage; the follow-up commands need the same.
_STORAGE = frozenset({"--root", "--runroot", "--storage-driver", "--storage-opt"})
#: Build options that take a value (to find the context directory, the last positional).
_BUILD_VALUED = frozenset(
    {
        "-f",
        "--file",
        "-t",
        "--tag",
        "--build-arg",
        "--build-arg-file",
        "--isolation",
        "--network",
        "--net",
        "--runtime",
        "--format",
        "--iidfile",
        "--volume",
        "-v",
        "--secret",
        "--ssh",
        "--target",
        "--platform",
        "--arch",
        "--os",
        "--variant",
        "--label",
        "--annotation",
        "--env",
        "--cache-from",
        "--cache-to",
        "--cache-ttl",
        "--manifest",
        "--output",
        "-o",
        "--authfile",
        "--cert-dir",
        "--creds",
        "--signature-policy",
        "--sign-by",
        "--timestamp",
        "--logfile",
        "--jobs",
        "--userns",
        "--userns-uid-map",
        "--userns-gid-map",
        "--userns-uid-map-user",
        "--userns-gid-map-group",
        "--uts",
        "--ipc",
        "--pid",
        "--cgroupns",
        "--cgroup-parent",
        "--cpu-period",
        "--cpu-quota",
        "--cpu-shares",
        "--cpuset-cpus",
        "--cpuset-mems",
        "--memory",
        "-m",
        "--memory-swap",
        "--shm-size",
        "--ulimit",
        "--add-host",
        "--dns",
        "--dns-option",
        "--dns-search",
        "--device",
        "--cap-add",
        "--cap-drop",
        "--security-opt",
        "--decryption-key",
        "--from",
        "--hooks-dir",
        "--ignorefile",
        "--retry",
        "--retry-delay",
        "--unsetenv",
    }
)


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class BuilderCommand:
    """A builder's command line split where pipdepot adds its own options (after the subcommand)."""

    builder: str
    program: str
    head: tuple[str, ...]
    build_args: tuple[str, ...]

    @property
    def storage_options(self) -> tuple[str, ...]:
        """The global options that locate the image storage (``--root DIR``...), as given."""
        out: list[str] = []
        args = list(self.head[1:-1])
        while args:
            arg = args.pop(0)
            name = arg.split("=", 1)[0]
            if name in _STORAGE:
                out.append(arg)
                if "=" not in arg and args:
                    out.append(args.pop(0))
        return tuple(out)

    def option(self, *names: str) -> str | None:
        """The last value the build arguments give one of ``names`` (``--x V`` or ``--x=V``)."""
        values = self.options(*names)
        return values[-1] if values else None

    def options(self, *names: str) -> tuple[str, ...]:
        """Every value the build arguments give ``names``, in order."""
        found: list[str] = []
        args = self.build_args
        for index, arg in enumerate(args):
            if arg == "--":
                break
            name, sep, value = arg.partition("=")
            if name in names:
                if sep:
                    found.append(value)
                elif index + 1 < len(args):
                    found.append(args[index + 1])
        return tuple(found)

    def isolation(self, environ: Mapping[str, str]) -> Isolation:
        """How RUN steps are isolated: the flag, else ``BUILDAH_ISOLATION``, else the default."""
        value = self.option("--isolation") or environ.get("BUILDAH_ISOLATION") or ""
        if value in {"chroot", "rootless", "oci"}:
            return value  # type: ignore[return-value]
        return "oci" if os.geteuid() == 0 else "rootless"

    def host_network(self, environ: Mapping[str, str]) -> bool:
        """Whether RUN steps share this machine's network (and so its 127.0.0.1)."""
        return self.isolation(environ) == "chroot" or self.option("--network", "--net") == "host"

    def context(self) -> Path | None:
        """The build context directory: the last positional argument, if it is a directory."""
        positional: list[str] = []
        args = list(self.build_args)
        while args:
            arg = args.pop(0)
            if arg == "--":
                positional += args
                break
            if arg.startswith("-"):
                if "=" not in arg and arg in _BUILD_VALUED and args:
                    args.pop(0)
                continue
            positional.append(arg)
        if positional and Path(positional[-1]).is_dir():
            return Path(positional[-1])
        return None

    def with_options(self, options: tuple[str, ...]) -> tuple[str, ...]:
        """The full command line with ``options`` right after the subcommand."""
        return (*self.head, *options, *self.build_args)


def parse_builder(argv: tuple[str, ...], *, which: Mapping[str, str | None]) -> BuilderCommand:
    """Split ``buildah [GLOBAL...] bud|build ARGS`` or ``podman [GLOBAL...] build ARGS``.

    ``which`` maps the program as given to its path (``None``: not found), so this stays pure.

    :raises UsageError: no builder, one pipdepot does not drive, or not one of its build commands.
    """
    supported = "buildah (bud, build) and podman (build)"
    if not argv:
        raise UsageError(f"no builder given: put its command after `--`; pipdepot build supports {supported}")
    program = argv[0]
    builder = PurePosixPath(program).name
    if builder not in _BUILDERS:
        hint = (
            " (docker: use `pipdepot plan --format pip.conf` and a secret mount)"
            if builder == "docker"
            else ""
        )
        raise UsageError(
            f"pipdepot build does not know the builder {builder!r}: it supports {supported}{hint}"
        )
    if which.get(program) is None:
        raise UsageError(f"no builder found: {program!r} is not installed or not on PATH")
    index = 1
    while index < len(argv) and argv[index].startswith("-"):
        arg = argv[index]
        index += 2 if arg in _GLOBAL_VALUED and "=" not in arg else 1
    if index >= len(argv) or argv[index] not in _BUILDERS[builder]:
        got = argv[index] if index < len(argv) else "nothing"
        commands = " or ".join(f"`{builder} {c}`" for c in _BUILDERS[builder])
        raise UsageError(f"pipdepot build runs {commands}, not {got!r} ({supported})")
    return BuilderCommand(builder, program, tuple(argv[: index + 1]), tuple(argv[index + 1 :]))


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is this machine's loopback (``localhost``, 127.0.0.0/8, ``::1``).

    >>> is_loopback_url("http://127.0.0.1:3141/simple/"), is_loopback_url("file:///tmp/pypi")
    (True, False)
    """
    host = urlsplit(url).hostname
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def find_containerfile(command: BuilderCommand) -> Path | None:
    """The file the build reads: ``-f``/``--file``, else the context's Containerfile or Dockerfile."""
    given = command.option("-f", "--file")
    if given is not None and given != "-":
        return Path(given)
    context = command.context()
    if context is None:
        return None
    for name in ("Containerfile", "Dockerfile"):
        if (context / name).is_file():
            return context / name
    return None


def final_base_image(text: str, build_args: dict[str, str], *, target: str | None = None) -> str | None:
    r"""The image the final stage (or ``target``) starts from, following stage names; ``None``: scratch.

    ARG defaults before the first FROM and ``--build-arg`` values are substituted.

    >>> final_base_image("ARG B=debian\nFROM $B AS one\nRUN true\nFROM one\n", {})
    'debian'

    :raises UsageError: the file has no FROM, or one pipdepot cannot read.
    """
    args: dict[str, str] = {}
    stages: list[tuple[str, str | None]] = []
    for line in _instructions(text):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, sep, default = rest.strip().partition("=")
            args[name] = build_args.get(name, default.strip("\"'") if sep else "")
        elif keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            if not words:
                raise UsageError(f"cannot read the line {line!r}")
            image = _substitute(words[0], {**args, **build_args})
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append((image, alias))
    if not stages:
        raise UsageError("the Containerfile has no FROM line")
    image, _ = stages[-1]
    if target is not None:
        image = next((i for i, alias in stages if alias == target), image)
    names = {alias: i for i, alias in stages if alias}
    for _ in stages:
        if image not in names:
            break
        image = names[image]
    return None if image == "scratch" else image


def _instructions(text: str) -> list[str]:
    """The file's instructions, comments dropped and backslash continuations joined."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def _substitute(word: str, values: dict[str, str]) -> str:
    for name, value in sorted(values.items(), key=lambda item: -len(item[0])):
        word = word.replace("${" + name + "}", value).replace("$" + name, value)
    return word
