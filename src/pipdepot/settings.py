"""Settings: flags, ``PIPDEPOT_*`` variables, the element's ``DIB_*`` variables, a file.

:func:`load_settings` is the one place where sources are merged, highest
first: command-line flags, ``PIPDEPOT_*`` variables, diskimage-builder's
``DIB_*`` variables (with the ``pypi`` element's meaning), the TOML config
file, defaults. It reads nothing but the mapping and the file it is given, and
every value it returns names its source, so ``pipdepot plan`` can say why.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast, get_args

from pipdepot.core.urls import validate_index_url
from pipdepot.element.buildroot import INDEX_ENV_VARS
from pipdepot.element.plan import PlanInputs, Sourced, UvIndexStrategy
from pipdepot.errors import ConfigError, UsageError
from pipdepot.storage.locate import MirrorLocation, S3Location, is_object_store

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "CONFIG_KEYS",
    "PlanFlags",
    "ServeFlags",
    "ServeSettings",
    "Settings",
    "TargetSettings",
    "load_serve_settings",
    "load_settings",
    "load_targets",
]

T = TypeVar("T")

_PUBLIC_INDEX_CONSTANT = "PYPI_SIMPLE_ENDPOINT"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_DIB_URL = re.compile(r"(DIB_)?PYPI_MIRROR_URL(?:_(\d+))?")
_PASSTHROUGH = ("TERM", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")

#: Every key the config file may hold: the commands that read it, and what it sets. ``pipdepot
#: gen-config`` writes its commented config file from this table, and a key not in it is refused,
#: so no key is read without being documented.
CONFIG_KEYS: dict[str, tuple[str, str]] = {
    "host": ("serve", "address to listen on (PIPDEPOT_HOST; default 127.0.0.1)"),
    "port": ("serve", "port to listen on (PIPDEPOT_PORT; default 3141)"),
    "mirror-dir": (
        "serve, sync, check, add, ls, export, import, plan, inject, chroot",
        (
            "the local mirror directory, a static PEP 503 tree with the server's state in "
            "DIR/.pipdepot (PIPDEPOT_MIRROR_DIR, DIB_IMAGE_CACHE/pypi/mirror; "
            "default ~/.cache/image-create/pypi/mirror)"
        ),
    ),
    "upstreams": (
        "serve, sync",
        (
            "upstream indexes in order; per project the first that has it serves it, never a merge "
            "(PIPDEPOT_UPSTREAMS; default PyPI)"
        ),
    ),
    "offline": (
        "serve, plan, inject, chroot",
        (
            "serve: never contact upstream, serve only cached files; plan/inject/chroot: only the "
            "mirrors, never the public index (PIPDEPOT_OFFLINE, DIB_OFFLINE; default false)"
        ),
    ),
    "ttl": (
        "serve",
        "seconds before a cached project page is refreshed from upstream (PIPDEPOT_TTL; default 600)",
    ),
    "upstream-timeout": (
        "serve",
        (
            "seconds before an upstream connection or read is given up and the cache served "
            "(PIPDEPOT_UPSTREAM_TIMEOUT; default 10)"
        ),
    ),
    "upstream-deadline": (
        "serve",
        (
            "seconds an upstream exchange (a page with its retries, a metadata file, a passed-through "
            "range) may take in all before it is given up (PIPDEPOT_UPSTREAM_DEADLINE; default 30)"
        ),
    ),
    "upstream-min-rate": (
        "serve",
        (
            "bytes a second a file download must bring, counted over each upstream-deadline-long "
            "window, or it is abandoned and the next client starts afresh "
            "(PIPDEPOT_UPSTREAM_MIN_RATE; default 8192)"
        ),
    ),
    "python-versions": (
        "sync, check, export",
        "Python versions to fill or check the mirror for (PIPDEPOT_PYTHON_VERSIONS; default this machine's)",
    ),
    "platforms": (
        "sync, check, export",
        "wheel platform tags to fill or check the mirror for (PIPDEPOT_PLATFORMS; default this machine's)",
    ),
    "mirror-urls": (
        "plan, inject, chroot",
        (
            "index URLs a build root uses, the first primary, the others extra indexes "
            "(PIPDEPOT_MIRROR_URLS, DIB_PYPI_MIRROR_URL*; default file:///tmp/pypi, the mounted mirror)"
        ),
    ),
    "no-pypi": (
        "plan, inject, chroot",
        (
            "do not add the public index as the last extra index, even online "
            "(PIPDEPOT_NO_PYPI, DIB_NO_PYPI_PIP; default false)"
        ),
    ),
    "public-index": (
        "plan, inject, chroot",
        "the public index added last when online (PIPDEPOT_PUBLIC_INDEX; default PyPI)",
    ),
    "retries": (
        "plan, inject, chroot",
        "pip's retries per request (PIPDEPOT_RETRIES, DIB_PIP_RETRIES; default pip's own)",
    ),
    "timeout": (
        "plan, inject, chroot",
        "pip's socket timeout in seconds (PIPDEPOT_TIMEOUT, DIB_PIP_TIMEOUT; default pip's own)",
    ),
    "trusted-hosts": (
        "plan, inject, chroot",
        (
            "hosts pip and uv also trust; plain-http mirror hosts always are "
            "(PIPDEPOT_TRUSTED_HOSTS, DIB_PYPI_TRUSTED_HOST; default none)"
        ),
    ),
    "uv-index-strategy": (
        "plan, inject, chroot",
        (
            "uv's index strategy: first-index, unsafe-first-match or unsafe-best-match "
            "(PIPDEPOT_UV_INDEX_STRATEGY; default first-index)"
        ),
    ),
    "target-view": (
        "plan, inject, chroot",
        (
            "when a mirror URL is a running pipdepot serve, point pip and uv at its target view "
            "(/+auto/simple/: pages trimmed to the installer's own Python and platform) "
            "(PIPDEPOT_TARGET_VIEW; default true)"
        ),
    ),
    "upload-limit": (
        "serve",
        "the largest file an upload may carry, in MiB (PIPDEPOT_UPLOAD_LIMIT; default 100)",
    ),
    "reads-need-token": (
        "serve",
        (
            "answer pages and files only to clients that send a token, as uploads do "
            "(PIPDEPOT_READS_NEED_TOKEN; default false)"
        ),
    ),
}
_CONFIG_KEYS = frozenset(CONFIG_KEYS)


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class PlanFlags:
    """Command-line values as typed; ``None`` or empty means the flag was not given."""

    mirror_urls: tuple[str, ...] = ()
    offline: bool | None = None
    no_pypi: bool | None = None
    public_index: str | None = None
    retries: str | None = None
    timeout: str | None = None
    trusted_hosts: tuple[str, ...] = ()
    mirror_dir: str | None = None
    uv_index_strategy: str | None = None
    config: str | None = None
    target_view: bool | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything an operation needs to know, parsed once."""

    plan: PlanInputs
    config_file: Path | None
    #: ``PIP_*``/``UV_*`` variables set in this process's environment that choose
    #: indexes; a build tool that passes its environment into the root would let
    #: them win over the files pipdepot writes.
    host_index_env: tuple[str, ...]
    #: The terminal type and proxy variables, the only host variables a chroot command gets.
    passthrough_env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ServeFlags:
    """``pipdepot serve``'s command-line values; ``None`` or empty means not given."""

    host: str | None = None
    port: str | None = None
    mirror_dir: str | None = None
    upstreams: tuple[str, ...] = ()
    offline: bool | None = None
    ttl: str | None = None
    upstream_timeout: str | None = None
    config: str | None = None
    upstream_deadline: str | None = None
    upstream_min_rate: str | None = None
    upload_limit: str | None = None
    reads_need_token: bool | None = None


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """How the mirror server runs."""

    host: str
    port: int
    #: A directory, or ``s3://BUCKET/PREFIX`` (with the AWS variables it is opened with).
    mirror_dir: MirrorLocation
    upstreams: tuple[str, ...]
    offline: bool
    ttl: float
    upstream_timeout: float
    config_file: Path | None
    upstream_deadline: float = 30.0
    upstream_min_rate: int = 8 * 1024
    #: The largest file an upload may carry, in bytes.
    upload_limit: int = 100 * 1024 * 1024
    #: Every request (but ``/+health``) needs a token, as uploads do.
    reads_need_token: bool = False


def load_serve_settings(flags: ServeFlags, environ: Mapping[str, str]) -> ServeSettings:
    """Merge the sources of the server's settings, as :func:`load_settings` does for the plan.

    The mirror directory is the element's: ``--mirror``, ``PIPDEPOT_MIRROR_DIR``,
    ``$DIB_IMAGE_CACHE/pypi/mirror``, the config file, ``~/.cache/image-create/pypi/mirror``.

    :raises UsageError: a value is unusable; the message names its source.
    """
    try:
        return _load_serve(flags, environ)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _load_serve(flags: ServeFlags, environ: Mapping[str, str]) -> ServeSettings:
    env = {k: v for k, v in environ.items() if v != ""}
    config_file, config = _read_config(flags.config, env)
    where = f"config file {config_file}"
    host = _first(
        _flag("--host", flags.host),
        _env(env, "PIPDEPOT_HOST"),
        _config(config, "host", where, _as_str),
        default="127.0.0.1",
    )
    port = _first(
        _flag("--port", flags.port),
        _env(env, "PIPDEPOT_PORT"),
        _config(config, "port", where, _as_scalar),
        default="3141",
    )
    mirror_dir = _mirror_dir(_flag("--mirror", flags.mirror_dir), env, config, where)
    upstreams = _first(
        _flag("--upstream", flags.upstreams or None),
        _env_list(env, "PIPDEPOT_UPSTREAMS"),
        _config(config, "upstreams", where, _as_str_tuple),
        default=(_public_index_default(),),
    )
    for url in upstreams.value:
        validate_index_url(url, source=upstreams.source)
    offline = _first(
        _flag("--offline/--online", flags.offline),
        _env_bool(env, "PIPDEPOT_OFFLINE"),
        _config(config, "offline", where, _as_bool),
        default=False,
    )
    ttl = _first(
        _flag("--ttl", flags.ttl),
        _env(env, "PIPDEPOT_TTL"),
        _config(config, "ttl", where, _as_scalar),
        default="600",
    )
    timeout = _first(
        _flag("--upstream-timeout", flags.upstream_timeout),
        _env(env, "PIPDEPOT_UPSTREAM_TIMEOUT"),
        _config(config, "upstream-timeout", where, _as_scalar),
        default="10",
    )
    deadline = _first(
        _flag("--upstream-deadline", flags.upstream_deadline),
        _env(env, "PIPDEPOT_UPSTREAM_DEADLINE"),
        _config(config, "upstream-deadline", where, _as_scalar),
        default="30",
    )
    min_rate = _first(
        _flag("--upstream-min-rate", flags.upstream_min_rate),
        _env(env, "PIPDEPOT_UPSTREAM_MIN_RATE"),
        _config(config, "upstream-min-rate", where, _as_scalar),
        default="8192",
    )
    upload_limit = _first(
        _flag("--upload-limit", flags.upload_limit),
        _env(env, "PIPDEPOT_UPLOAD_LIMIT"),
        _config(config, "upload-limit", where, _as_scalar),
        default="100",
    )
    reads_need_token = _first(
        _flag("--reads-need-token/--open-reads", flags.reads_need_token),
        _env_bool(env, "PIPDEPOT_READS_NEED_TOKEN"),
        _config(config, "reads-need-token", where, _as_bool),
        default=False,
    )
    return ServeSettings(
        host=host.value,
        port=_as_port(port.value, port.source),
        mirror_dir=_as_mirror_location(mirror_dir, env),
        upstreams=upstreams.value,
        offline=offline.value,
        ttl=_as_seconds(ttl.value, ttl.source, allow_zero=True),
        upstream_timeout=_as_seconds(timeout.value, timeout.source, allow_zero=False),
        config_file=config_file,
        upstream_deadline=_as_seconds(deadline.value, deadline.source, allow_zero=False),
        upstream_min_rate=_as_rate(min_rate.value, min_rate.source),
        upload_limit=_as_mebibytes(upload_limit.value, upload_limit.source),
        reads_need_token=reads_need_token.value,
    )


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
    env = {k: v for k, v in environ.items() if v != ""}
    try:
        config_file, config = _read_config(None, env)
        where = f"config file {config_file}"
        pythons = _first(
            _flag("--python-version", python_versions or None),
            _env_list(env, "PIPDEPOT_PYTHON_VERSIONS"),
            _config(config, "python-versions", where, _as_str_tuple),
            default=(),
        )
        tags = _first(
            _flag("--platform", platforms or None),
            _env_list(env, "PIPDEPOT_PLATFORMS"),
            _config(config, "platforms", where, _as_str_tuple),
            default=(),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return TargetSettings(pythons.value, tags.value)


def load_settings(flags: PlanFlags, environ: Mapping[str, str]) -> Settings:
    """Merge every source into :class:`Settings`.

    :raises UsageError: a value is unusable; the message names the flag,
        variable or file it came from, and nothing has been written.
    """
    try:
        return _load(flags, environ)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _load(flags: PlanFlags, environ: Mapping[str, str]) -> Settings:
    env = {k: v for k, v in environ.items() if v != ""}
    config_file, config = _read_config(flags.config, env)
    where = f"config file {config_file}"
    notes = [
        f"{name} is empty and ignored"
        for name in sorted(environ)
        if environ[name] == "" and _DIB_URL.fullmatch(name)
    ]
    mirror_urls = _mirror_urls(flags, env, config, where, notes)
    offline = _first(
        _flag("--offline/--online", flags.offline),
        _env_bool(env, "PIPDEPOT_OFFLINE"),
        _dib_flag(env, "DIB_OFFLINE", notes),
        _config(config, "offline", where, _as_bool),
        default=False,
    )
    no_pypi = _first(
        _flag("--no-pypi/--pypi", flags.no_pypi),
        _env_bool(env, "PIPDEPOT_NO_PYPI"),
        _dib_flag(env, "DIB_NO_PYPI_PIP", notes),
        _config(config, "no-pypi", where, _as_bool),
        default=False,
    )
    public_index = _first(
        _flag("--public-index", flags.public_index),
        _env(env, "PIPDEPOT_PUBLIC_INDEX"),
        _config(config, "public-index", where, _as_str),
        default=_public_index_default(),
    )
    validate_index_url(public_index.value, source=public_index.source)
    retries: Sourced[str | None] = _first(
        _flag("--retries", flags.retries),
        _env(env, "PIPDEPOT_RETRIES"),
        _env(env, "DIB_PIP_RETRIES"),
        _config(config, "retries", where, _as_scalar),
        default=None,
    )
    timeout: Sourced[str | None] = _first(
        _flag("--timeout", flags.timeout),
        _env(env, "PIPDEPOT_TIMEOUT"),
        _env(env, "DIB_PIP_TIMEOUT"),
        _config(config, "timeout", where, _as_scalar),
        default=None,
    )
    trusted = _first(
        _flag("--trusted-host", flags.trusted_hosts or None),
        _env_list(env, "PIPDEPOT_TRUSTED_HOSTS"),
        _env_list(env, "DIB_PYPI_TRUSTED_HOST"),
        _config(config, "trusted-hosts", where, _as_str_tuple),
        default=(),
    )
    mirror_dir = _mirror_dir(_flag("--mirror-dir", flags.mirror_dir), env, config, where)
    strategy = _first(
        _flag("--uv-index-strategy", flags.uv_index_strategy),
        _env(env, "PIPDEPOT_UV_INDEX_STRATEGY"),
        _config(config, "uv-index-strategy", where, _as_str),
        default="first-index",
    )
    target_view = _first(
        _flag("--target-view/--no-target-view", flags.target_view),
        _env_bool(env, "PIPDEPOT_TARGET_VIEW"),
        _config(config, "target-view", where, _as_bool),
        default=True,
    )
    inputs = PlanInputs(
        mirror_urls=mirror_urls,
        offline=offline,
        no_pypi=no_pypi,
        public_index=public_index,
        retries=_optional(retries, _as_retries),
        timeout=_optional(timeout, _as_timeout),
        trusted_hosts=trusted,
        mirror_dir=Sourced(_as_mirror_dir(mirror_dir), mirror_dir.source),
        uv_index_strategy=_parse(strategy, _as_strategy),
        notes=tuple(notes),
        target_view=target_view,
    )
    host_env = tuple(name for name in INDEX_ENV_VARS if name in env)
    passthrough = tuple((name, env[name]) for name in _PASSTHROUGH if name in env)
    return Settings(
        plan=inputs, config_file=config_file, host_index_env=host_env, passthrough_env=passthrough
    )


# -- sources ---------------------------------------------------------------


def _first(*candidates: Sourced[T] | None, default: T) -> Sourced[T]:
    for candidate in candidates:
        if candidate is not None:
            return candidate
    return Sourced(default, "default")


def _flag(name: str, value: T | None) -> Sourced[T] | None:
    return None if value is None else Sourced(value, f"flag {name}")


def _env(env: Mapping[str, str], name: str) -> Sourced[str] | None:
    return Sourced(env[name], name) if name in env else None


def _env_bool(env: Mapping[str, str], name: str) -> Sourced[bool] | None:
    return Sourced(_as_bool(env[name], name), name) if name in env else None


def _env_list(env: Mapping[str, str], name: str) -> Sourced[tuple[str, ...]] | None:
    return Sourced(tuple(env[name].split()), name) if name in env else None


def _dib_flag(env: Mapping[str, str], name: str, notes: list[str]) -> Sourced[bool] | None:
    """diskimage-builder's rule: any non-empty value is true, even ``0``."""
    if name not in env:
        return None
    if env[name].strip().lower() in _FALSE:
        notes.append(
            f"{name}={env[name]!r} counts as set, as in diskimage-builder (any non-empty value); "
            f"use the pipdepot flag or variable to say otherwise"
        )
    return Sourced(True, name)  # noqa: FBT003


def _mirror_dir(
    flag: Sourced[str] | None, env: Mapping[str, str], config: Mapping[str, object], where: str
) -> Sourced[str]:
    """The local mirror directory, the same for the element and the server."""
    return _first(
        flag,
        _env(env, "PIPDEPOT_MIRROR_DIR"),
        _dib_mirror_dir(env),
        _config(config, "mirror-dir", where, _as_str),
        default=str(_image_cache(env) / "pypi" / "mirror"),
    )


def _dib_mirror_dir(env: Mapping[str, str]) -> Sourced[str] | None:
    if "DIB_IMAGE_CACHE" not in env:
        return None
    return Sourced(str(Path(env["DIB_IMAGE_CACHE"]) / "pypi" / "mirror"), "DIB_IMAGE_CACHE")


def _image_cache(env: Mapping[str, str]) -> Path:
    """diskimage-builder's default ``DIB_IMAGE_CACHE``: ``~/.cache/image-create``, XDG-aware."""
    xdg = env.get("XDG_CACHE_HOME", "")
    cache = Path(xdg) if xdg.startswith("/") else Path(env.get("HOME", str(Path.home()))) / ".cache"
    return cache / "image-create"


def _config(
    config: Mapping[str, object],
    key: str,
    where: str,
    convert: Callable[[object, str], T],
) -> Sourced[T] | None:
    if key not in config:
        return None
    source = f"{where} ({key})"
    return Sourced(convert(config[key], source), source)


def _read_config(flag: str | None, env: Mapping[str, str]) -> tuple[Path | None, dict[str, object]]:
    if flag is not None:
        path, explicit = Path(flag), "--config"
    elif "PIPDEPOT_CONFIG" in env:
        path, explicit = Path(env["PIPDEPOT_CONFIG"]), "PIPDEPOT_CONFIG"
    else:
        xdg = env.get("XDG_CONFIG_HOME", "")
        home = Path(env.get("HOME", str(Path.home())))
        path, explicit = (
            (Path(xdg) if xdg.startswith("/") else home / ".config") / "pipdepot" / "config.toml",
            "",
        )
        if not path.is_file():
            return None, {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{explicit}: config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"config file {path}: {exc}") from None
    unknown = sorted(set(data) - _CONFIG_KEYS)
    if unknown:
        raise ValueError(f"config file {path}: unknown key {unknown[0]!r}")
    return path, data


def _mirror_urls(
    flags: PlanFlags,
    env: Mapping[str, str],
    config: Mapping[str, object],
    where: str,
    notes: list[str],
) -> tuple[Sourced[str], ...]:
    if flags.mirror_urls:
        found = tuple(Sourced(url, "flag --mirror-url") for url in flags.mirror_urls)
    elif "PIPDEPOT_MIRROR_URLS" in env:
        found = tuple(Sourced(url, "PIPDEPOT_MIRROR_URLS") for url in env["PIPDEPOT_MIRROR_URLS"].split())
    elif dib := _dib_mirror_urls(env, notes):
        found = dib
    elif "mirror-urls" in config:
        urls = _as_str_tuple(config["mirror-urls"], f"{where} (mirror-urls)")
        found = tuple(Sourced(url, f"{where} (mirror-urls)") for url in urls)
    else:
        found = ()
    return tuple(Sourced(validate_index_url(s.value, source=s.source), s.source) for s in found)


def _dib_mirror_urls(env: Mapping[str, str], notes: list[str]) -> tuple[Sourced[str], ...]:
    """The ``pypi`` element's ``DIB_PYPI_MIRROR_URL*`` and legacy ``PYPI_MIRROR_URL*`` variables.

    Each family is ordered base first, then ``_N`` by number (``_10`` after
    ``_9``), the ``DIB_`` family before the legacy one, as the element reads
    them. The primary is the first base that is set; with no base, the first
    ``_N`` is promoted. Empty values never become blank entries.
    """
    ranked: list[tuple[int, int, str]] = []
    for name in env:
        match = _DIB_URL.fullmatch(name)
        if match is None:
            if name.startswith(("DIB_PYPI_MIRROR_URL", "PYPI_MIRROR_URL")):
                notes.append(f"{name} is ignored: mirror variables are named like DIB_PYPI_MIRROR_URL_<N>")
            continue
        family = 0 if match.group(1) else 1
        number = -1 if match.group(2) is None else int(match.group(2))
        ranked.append((family, number, name))
    if not ranked:
        return ()
    ranked.sort()
    if any(family == 1 for family, _, _ in ranked):
        notes.append("PYPI_MIRROR_URL* variables are deprecated: use DIB_PYPI_MIRROR_URL*")
    bases = [name for _, number, name in ranked if number < 0]
    names = [name for _, _, name in ranked]
    primary = bases[0] if bases else names[0]
    if not bases:
        notes.append(f"DIB_PYPI_MIRROR_URL is not set: {primary} is the primary index")
    ordered = [primary, *(name for name in names if name != primary)]
    return tuple(Sourced(env[name], name) for name in ordered)


def _public_index_default() -> str:
    """The public index's address, from the library that knows it rather than from us.

    The constant is read from pypi-simple's source: importing the package pulls in pydantic,
    requests and bs4, 15 MB a server would carry for its whole life to read one string.
    """
    spec = importlib.util.find_spec("pypi_simple")
    if spec is not None and spec.origin is not None:
        with contextlib.suppress(OSError, SyntaxError, ValueError):
            tree = ast.parse(Path(spec.origin).read_bytes())
            for node in tree.body:
                if (
                    isinstance(node, ast.AnnAssign | ast.Assign)
                    and _PUBLIC_INDEX_CONSTANT in {ast.unparse(t) for t in _targets_of(node)}
                    and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)
                ):
                    return node.value.value
    from pypi_simple import PYPI_SIMPLE_ENDPOINT  # noqa: PLC0415 (the slow way, if its source moved)

    return str(PYPI_SIMPLE_ENDPOINT)


def _targets_of(node: ast.AnnAssign | ast.Assign) -> list[ast.expr]:
    return node.targets if isinstance(node, ast.Assign) else [node.target]


# -- conversions -------------------------------------------------------------


def _parse(value: Sourced[str], convert: Callable[[object, str], T]) -> Sourced[T]:
    return Sourced(convert(value.value, value.source), value.source)


def _optional(value: Sourced[str | None], convert: Callable[[object, str], T]) -> Sourced[T | None]:
    if value.value is None:
        return Sourced(None, value.source)
    return _parse(Sourced(value.value, value.source), convert)


def _as_bool(value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{source}: {value!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def _as_str(value: object, source: str) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"{source}: {value!r} is not a string")


def _as_scalar(value: object, source: str) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{source}: {value!r} is not a number")


def _as_str_tuple(value: object, source: str) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(cast("list[str]", value))
    raise ValueError(f"{source}: {value!r} is not a list of strings")


def _as_retries(value: object, source: str) -> int:
    text = str(value).strip()
    if not text.isdigit():
        raise ValueError(f"{source}: {value!r} is not a number of retries (0 or more)")
    return int(text)


def _as_timeout(value: object, source: str) -> float:
    try:
        seconds = float(str(value).strip())
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86400:
        raise ValueError(f"{source}: {value!r} is not a timeout in seconds (more than 0)")
    return seconds


def _as_port(value: object, source: str) -> int:
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{source}: {value!r} is not a TCP port (1-65535)")
    return int(text)


def _as_seconds(value: object, source: str, *, allow_zero: bool) -> float:
    try:
        seconds = float(str(value).strip())
    except ValueError:
        seconds = -1.0
    if seconds < 0 or (seconds == 0 and not allow_zero) or seconds > 365 * 86400:
        raise ValueError(f"{source}: {value!r} is not a number of seconds")
    return seconds


def _as_rate(value: object, source: str) -> int:
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) < 1 << 40:
        raise ValueError(f"{source}: {value!r} is not a number of bytes per second (more than 0)")
    return int(text)


def _as_mebibytes(value: object, source: str) -> int:
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) <= 1 << 20:
        raise ValueError(f"{source}: {value!r} is not a size in MiB (1 to 1048576)")
    return int(text) * 1024 * 1024


def _as_mirror_location(value: Sourced[str], env: Mapping[str, str]) -> MirrorLocation:
    """The mirror's directory or ``s3://`` location (the element's bind mount needs a directory)."""
    if is_object_store(value.value):
        try:
            return S3Location.of(value.value, env)
        except ConfigError as exc:
            raise ValueError(f"{value.source}: {exc}") from None
    return _as_mirror_dir(value)


def _as_mirror_dir(value: Sourced[str]) -> Path:
    """The mirror directory; a path that is something else is refused here, for every command alike."""
    if is_object_store(value.value):
        raise ValueError(
            f"{value.source}: {value.value} is an object store; the element bind-mounts a local "
            "directory (fill one with pipdepot export and import)"
        )
    path = Path(value.value).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{value.source}: {path} is not a directory")
    return path


def _as_strategy(value: object, source: str) -> UvIndexStrategy:
    choices = get_args(UvIndexStrategy)
    if value not in choices:
        raise ValueError(f"{source}: {value!r} is not one of {', '.join(choices)}")
    return cast("UvIndexStrategy", value)
