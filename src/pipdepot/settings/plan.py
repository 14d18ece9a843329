"""The element's settings: the plan's inputs, from flags, variables, diskimage-builder's and a file.

Here diskimage-builder's ``DIB_*`` variables count, with the ``pypi`` element's meaning, between
pipdepot's own ``PIPDEPOT_*`` variables and the config file: a build that already sets them for
the element keeps working.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipdepot.core.urls import validate_index_url
from pipdepot.element.buildroot import INDEX_ENV_VARS
from pipdepot.element.plan import PlanInputs, Sourced
from pipdepot.errors import UsageError
from pipdepot.settings.sources import (
    BOOL,
    NUMBER,
    TEXT,
    WORDS,
    Sources,
    from_flag,
    public_index_default,
    read_sources,
)
from pipdepot.settings.values import (
    as_mirror_dir,
    as_retries,
    as_str_tuple,
    as_strategy,
    as_timeout,
    optional,
    parse,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["PlanFlags", "Settings", "load_settings"]

_DIB_URL = re.compile(r"(DIB_)?PYPI_MIRROR_URL(?:_(\d+))?")
_PASSTHROUGH = ("TERM", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


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
    sources = read_sources(flags.config, environ)
    setting, env = sources.setting, sources.env
    notes = [
        f"{name} is empty and ignored"
        for name in sorted(environ)
        if environ[name] == "" and _DIB_URL.fullmatch(name)
    ]
    mirror_urls = _mirror_urls(flags, sources, notes)
    offline = setting(
        from_flag("--offline/--online", flags.offline),
        "offline",
        BOOL,
        dib=sources.dib_flag("DIB_OFFLINE", notes),
        default=False,
    )
    no_pypi = setting(
        from_flag("--no-pypi/--pypi", flags.no_pypi),
        "no-pypi",
        BOOL,
        dib=sources.dib_flag("DIB_NO_PYPI_PIP", notes),
        default=False,
    )
    public_index = setting(
        from_flag("--public-index", flags.public_index), "public-index", TEXT, default=public_index_default()
    )
    validate_index_url(public_index.value, source=public_index.source)
    retries: Sourced[str | None] = setting(
        from_flag("--retries", flags.retries),
        "retries",
        NUMBER,
        dib=sources.variable("DIB_PIP_RETRIES", NUMBER),
        default=None,
    )
    timeout: Sourced[str | None] = setting(
        from_flag("--timeout", flags.timeout),
        "timeout",
        NUMBER,
        dib=sources.variable("DIB_PIP_TIMEOUT", NUMBER),
        default=None,
    )
    trusted = setting(
        from_flag("--trusted-host", flags.trusted_hosts or None),
        "trusted-hosts",
        WORDS,
        dib=sources.variable("DIB_PYPI_TRUSTED_HOST", WORDS),
        default=(),
    )
    mirror_dir = sources.mirror_dir(from_flag("--mirror-dir", flags.mirror_dir))
    strategy = setting(
        from_flag("--uv-index-strategy", flags.uv_index_strategy),
        "uv-index-strategy",
        TEXT,
        default="first-index",
    )
    target_view = setting(
        from_flag("--target-view/--no-target-view", flags.target_view), "target-view", BOOL, default=True
    )
    inputs = PlanInputs(
        mirror_urls=mirror_urls,
        offline=offline,
        no_pypi=no_pypi,
        public_index=public_index,
        retries=optional(retries, as_retries),
        timeout=optional(timeout, as_timeout),
        trusted_hosts=trusted,
        mirror_dir=Sourced(as_mirror_dir(mirror_dir), mirror_dir.source),
        uv_index_strategy=parse(strategy, as_strategy),
        notes=tuple(notes),
        target_view=target_view,
    )
    host_env = tuple(name for name in INDEX_ENV_VARS if name in env)
    passthrough = tuple((name, env[name]) for name in _PASSTHROUGH if name in env)
    return Settings(
        plan=inputs, config_file=sources.config_file, host_index_env=host_env, passthrough_env=passthrough
    )


def _mirror_urls(flags: PlanFlags, sources: Sources, notes: list[str]) -> tuple[Sourced[str], ...]:
    env, where = sources.env, sources.where
    if flags.mirror_urls:
        found = tuple(Sourced(url, "flag --mirror-url") for url in flags.mirror_urls)
    elif "PIPDEPOT_MIRROR_URLS" in env:
        found = tuple(Sourced(url, "PIPDEPOT_MIRROR_URLS") for url in env["PIPDEPOT_MIRROR_URLS"].split())
    elif dib := _dib_mirror_urls(env, notes):
        found = dib
    elif "mirror-urls" in sources.config:
        urls = as_str_tuple(sources.config["mirror-urls"], f"{where} (mirror-urls)")
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
