"""``pipdepot serve``'s settings: how the mirror server listens, what it mirrors and how long it waits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipdepot.core.urls import validate_index_url
from pipdepot.errors import UsageError
from pipdepot.settings.sources import BOOL, NUMBER, TEXT, WORDS, from_flag, public_index_default, read_sources
from pipdepot.settings.values import as_mebibytes, as_mirror_location, as_port, as_rate, as_seconds

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from pipdepot.storage.locate import MirrorLocation

__all__ = ["ServeFlags", "ServeSettings", "load_serve_settings"]


def __dir__() -> list[str]:
    return __all__


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
    sources = read_sources(flags.config, environ)
    setting = sources.setting
    host = setting(from_flag("--host", flags.host), "host", TEXT, default="127.0.0.1")
    port = setting(from_flag("--port", flags.port), "port", NUMBER, default="3141")
    mirror_dir = sources.mirror_dir(from_flag("--mirror", flags.mirror_dir))
    upstreams = setting(
        from_flag("--upstream", flags.upstreams or None),
        "upstreams",
        WORDS,
        default=(public_index_default(),),
    )
    for url in upstreams.value:
        validate_index_url(url, source=upstreams.source)
    offline = setting(from_flag("--offline/--online", flags.offline), "offline", BOOL, default=False)
    ttl = setting(from_flag("--ttl", flags.ttl), "ttl", NUMBER, default="600")
    timeout = setting(
        from_flag("--upstream-timeout", flags.upstream_timeout), "upstream-timeout", NUMBER, default="10"
    )
    deadline = setting(
        from_flag("--upstream-deadline", flags.upstream_deadline), "upstream-deadline", NUMBER, default="30"
    )
    min_rate = setting(
        from_flag("--upstream-min-rate", flags.upstream_min_rate), "upstream-min-rate", NUMBER, default="8192"
    )
    upload_limit = setting(
        from_flag("--upload-limit", flags.upload_limit), "upload-limit", NUMBER, default="100"
    )
    reads_need_token = setting(
        from_flag("--reads-need-token/--open-reads", flags.reads_need_token),
        "reads-need-token",
        BOOL,
        default=False,
    )
    return ServeSettings(
        host=host.value,
        port=as_port(port.value, port.source),
        mirror_dir=as_mirror_location(mirror_dir, sources.env),
        upstreams=upstreams.value,
        offline=offline.value,
        ttl=as_seconds(ttl.value, ttl.source, allow_zero=True),
        upstream_timeout=as_seconds(timeout.value, timeout.source, allow_zero=False),
        config_file=sources.config_file,
        upstream_deadline=as_seconds(deadline.value, deadline.source, allow_zero=False),
        upstream_min_rate=as_rate(min_rate.value, min_rate.source),
        upload_limit=as_mebibytes(upload_limit.value, upload_limit.source),
        reads_need_token=reads_need_token.value,
    )
