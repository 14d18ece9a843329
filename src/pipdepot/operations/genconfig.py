"""``pipdepot gen-config``: the files of a permanent install, filled in from the settings.

A systemd unit (system, or ``--user`` for a laptop), the system user it runs as, an nginx
server block that sends cached files itself, and a config file holding every key pipdepot
reads (from :data:`pipdepot.settings.CONFIG_KEYS`, so it cannot fall behind the code).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import textwrap
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import tomli_w

from pipdepot.errors import ConfigError
from pipdepot.settings import CONFIG_KEYS, PlanFlags, load_settings

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pipdepot.settings import ServeSettings

__all__ = [
    "SYSTEM_MIRROR",
    "GenConfig",
    "GeneratedFile",
    "generate",
    "parse_listen",
    "settings_environ",
    "write",
]

#: The system unit's mirror when none is given: its StateDirectory=, kept across reboots and
#: package upgrades (a cache directory may be emptied, and a mirror filled for offline builds
#: is not a cache one can lose).
SYSTEM_MIRROR = Path("/var/lib/pipdepot")
_PLACEHOLDER = re.compile(r"@[A-Z_]+@")


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class GenConfig:
    """What to generate: the server's settings, nginx's address, and how pipdepot is run."""

    settings: ServeSettings
    #: nginx's ``listen`` address, ``ADDR:PORT`` (``[v6]:PORT`` for IPv6).
    listen: str
    #: A user unit for a laptop (no nginx, no system user) instead of a system unit.
    user: bool
    #: The command that runs pipdepot, e.g. ``(sys.executable, "-m", "pipdepot")``.
    command: Sequence[str]
    #: nginx's access log.
    access_log: str = "/var/log/nginx/pipdepot.access.log"


@dataclass(frozen=True, slots=True)
class GeneratedFile:
    """One file to write into the output directory."""

    name: str
    content: str
    purpose: str


def parse_listen(value: str) -> tuple[str, int]:
    """``ADDR:PORT`` as nginx's ``listen`` takes it.

    :raises ConfigError: not an address and a port.
    """
    host, sep, port = value.rpartition(":")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
        number = int(port)
    except ValueError:
        number = 0
    if not sep or not 0 < number < 65536 or (":" in bare) != host.startswith("["):
        raise ConfigError(f"--listen: {value!r} is not ADDR:PORT (e.g. 0.0.0.0:8080 or [::]:8080)")
    return bare, number


def generate(request: GenConfig) -> list[GeneratedFile]:
    """The files, in the order to install them.

    :raises ConfigError: nginx and pipdepot would listen on the same address.
    """
    settings = request.settings
    if not isinstance(settings.mirror_dir, Path):
        raise ConfigError(
            f"gen-config writes a unit and an nginx front for a mirror directory, not {settings.mirror_dir}",
            hint="for a mirror on S3, run pipdepot serve --mirror s3://... on each node: see docs/SCALE.md",
        )
    mirror_dir = settings.mirror_dir
    config = GeneratedFile("config.toml", config_toml(settings), "every setting pipdepot reads, commented")
    if request.user:
        unit = _fill(
            "pipdepot.user.service.in",
            EXEC=_exec(request.command),
            MIRROR=_unit_path(mirror_dir),
            MKDIR="/usr/bin/mkdir" if Path("/usr/bin/mkdir").exists() else "/bin/mkdir",
        )
        return [config, GeneratedFile("pipdepot.service", unit, "systemd user unit (laptop)")]
    listen_host, listen_port = parse_listen(request.listen)
    _check_apart(listen_host, listen_port, settings.host, settings.port)
    return [
        GeneratedFile(
            "pipdepot.sysusers.conf",
            _fill("pipdepot.sysusers.conf.in"),
            "the system user the unit runs as (systemd-sysusers)",
        ),
        config,
        GeneratedFile("pipdepot.service", _system_unit(request), "systemd system unit"),
        GeneratedFile(
            "nginx-pipdepot.conf",
            _fill(
                "nginx-pipdepot.conf.in",
                LISTEN=request.listen,
                CLIENT_URL=_client_url(listen_host, listen_port),
                BACKEND=_backend(settings.host, settings.port),
                MIRROR=str(settings.mirror_dir),
                ACCESS_LOG=request.access_log,
                UPLOAD_BODY=f"{settings.upload_limit // (1024 * 1024) + 5}m",  # the file, and its fields
            ),
            "nginx server block: cached files from nginx, the rest from pipdepot",
        ),
    ]


def write(output: Path, generated: list[GeneratedFile]) -> list[Path]:
    """Write the files into ``output`` (created if missing); the paths written.

    :raises ConfigError: ``output`` cannot be written.
    """
    written = []
    try:
        output.mkdir(parents=True, exist_ok=True)
        for item in generated:
            path = output / item.name
            temporary = path.with_name(f".{item.name}.tmp")
            temporary.write_text(item.content, encoding="utf-8")
            temporary.replace(path)
            written.append(path)
    except OSError as exc:
        raise ConfigError(f"--output: cannot write {exc.filename}: {exc.strerror}") from None
    return written


def config_toml(settings: ServeSettings) -> str:
    """Every key of :data:`CONFIG_KEYS`, described; the server's own set, the others commented.

    A commented key shows its default when it has one, so uncommenting it changes nothing.
    """
    plan = load_settings(PlanFlags(config=os.devnull), {"HOME": "/nonexistent"}).plan
    active: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "mirror-dir": str(settings.mirror_dir),
        "upstreams": list(settings.upstreams),
        "offline": settings.offline,
        "ttl": settings.ttl,
        "upstream-timeout": settings.upstream_timeout,
        "upstream-deadline": settings.upstream_deadline,
        "upstream-min-rate": settings.upstream_min_rate,
        "upload-limit": settings.upload_limit // (1024 * 1024),
        "reads-need-token": settings.reads_need_token,
    }
    defaults: dict[str, object] = {
        "mirror-urls": [s.value for s in plan.mirror_urls],
        "no-pypi": plan.no_pypi.value,
        "public-index": plan.public_index.value,
        "trusted-hosts": list(plan.trusted_hosts.value),
        "uv-index-strategy": plan.uv_index_strategy.value,
        "target-view": plan.target_view.value,
    }
    lines = [
        "# pipdepot's config file (written by `pipdepot gen-config`): every key pipdepot reads.",
        "# Keys set below are the server's settings; the commented ones show their default.",
        "# Command-line flags and PIPDEPOT_* variables override this file.",
    ]
    for key, (readers, meaning) in CONFIG_KEYS.items():
        lines += [
            "",
            *textwrap.wrap(
                f"{key} ({readers}): {meaning}", 98, initial_indent="# ", subsequent_indent="#   "
            ),
        ]
        if key in active:
            lines.append(tomli_w.dumps({key: active[key]}).rstrip("\n"))
        elif key in defaults and defaults[key] != []:
            lines.append("# " + tomli_w.dumps({key: defaults[key]}).rstrip("\n"))
    return "\n".join(lines) + "\n"


def _system_unit(request: GenConfig) -> str:
    settings = request.settings
    mirror = settings.mirror_dir
    assert isinstance(mirror, Path)  # noqa: S101 (generate refuses an object store)
    if mirror == SYSTEM_MIRROR:
        directive = "StateDirectory=pipdepot"
        mirror_lines = (
            "# The mirror: /var/lib/pipdepot, created for the service and owned by it; 0755 so that\n"
            "# nginx can read it.\n"
            "StateDirectory=pipdepot\nStateDirectoryMode=0755"
        )
        install = "   (the mirror, /var/lib/pipdepot, is created by systemd at the first start)"
    else:
        path = _unit_path(mirror)
        directive = f"ReadWritePaths={path}"
        mirror_lines = (
            "# The mirror, the only place the service may write; it must exist and belong to pipdepot.\n"
            f"ReadWritePaths={path}"
        )
        install = f"   install -d -o pipdepot -g pipdepot -m 0755 {shlex.quote(str(mirror))}"
    capabilities = "CapabilityBoundingSet="
    if settings.port < 1024:
        capabilities = (
            "# A port below 1024: the one capability it needs.\n"
            "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE"
        )
    else:
        capabilities = "# No capabilities at all.\n" + capabilities
    in_home = any(
        path.is_relative_to(home)
        for path in (Path(request.command[0]), mirror)
        for home in ("/home", "/root")
    )
    return _fill(
        "pipdepot.service.in",
        EXEC=_exec(request.command),
        MIRROR_INSTALL=install,
        MIRROR_DIRECTIVE=directive,
        MIRROR_LINES=mirror_lines,
        PROTECT_HOME="read-only" if in_home else "yes",
        CAPABILITIES=capabilities,
    )


def _check_apart(listen_host: str, listen_port: int, host: str, port: int) -> None:
    wildcard = {"0.0.0.0", "::"}  # noqa: S104 (addresses compared, not bound)
    same_host = listen_host == host or listen_host in wildcard or host in wildcard
    if listen_port == port and same_host:
        raise ConfigError(
            f"--listen {listen_host}:{listen_port} and pipdepot's --host {host} --port {port} overlap: "
            "give nginx or pipdepot another port"
        )


def _client_url(host: str, port: int) -> str:
    if host in {"0.0.0.0", "::"}:  # noqa: S104
        return f"http://HOST:{port}/simple/ (HOST: this machine's name or address)"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/simple/"


def _backend(host: str, port: int) -> str:
    """Where nginx reaches pipdepot: a wildcard address is reached on loopback."""
    reach = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host)  # noqa: S104
    if reach is None:
        reach = f"[{host}]" if ":" in host else host
    return f"{reach}:{port}"


def _exec(command: Sequence[str]) -> str:
    """An ExecStart= command line: absolute program, each word quoted as systemd reads it."""
    return " ".join(_unit_word(word) for word in command)


def _unit_word(word: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:=+-]+", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def _unit_path(path: Path) -> str:
    """A path for a unit file, where ``%`` starts a specifier and spaces separate paths."""
    text = str(path)
    if re.search(r"[\s\"'\\]", text):
        raise ConfigError(f"mirror directory {text!r}: a path with spaces or quotes cannot go into a unit")
    return text.replace("%", "%%")


def _fill(template: str, **values: str) -> str:
    text = (files("pipdepot") / "deploy" / template).read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    left = _PLACEHOLDER.search(text)
    if left is not None:  # a template and its caller disagree: a bug, never the user's input
        raise AssertionError(f"{template}: {left.group()} not filled")
    return text


def settings_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of the environment gen-config's defaults depend on: where home and the cache are.

    Nothing else of the shell (``PIPDEPOT_*``, the config file) goes into the files: they say
    what the command line says, wherever they are generated.
    """
    return {k: environ[k] for k in ("HOME", "XDG_CACHE_HOME") if k in environ}
