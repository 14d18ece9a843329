"""From a ``--mirror`` value to an open store: a directory, or ``s3://BUCKET/PREFIX``.

An S3 store also needs a local directory for its spool (downloads are hashed there before
their upload); by default it is the user's cache, one per bucket and prefix, so two mirrors
never share one and a restarted process finds what its killed predecessor left.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias
from urllib.parse import urlsplit

from pipdepot.errors import ConfigError
from pipdepot.storage.aws import aws_settings
from pipdepot.storage.filesystem import FilesystemStore
from pipdepot.storage.s3 import S3Store

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pipdepot.storage.store import Store

__all__ = [
    "MirrorLocation",
    "S3Location",
    "is_object_store",
    "open_location",
    "open_store",
    "parse_s3_location",
]

_SCHEME = "s3://"
#: S3 bucket names: 3-63 lower-case letters, digits, dots and hyphens, a letter or digit at each end.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def __dir__() -> list[str]:
    return __all__


#: The variables an S3 client reads (besides ``AWS_*``): where ``~/.aws`` and the cache are.
_S3_ENVIRON = ("HOME", "XDG_CACHE_HOME")


@dataclass(frozen=True, slots=True)
class S3Location:
    """``s3://BUCKET/PREFIX`` and the AWS variables it is opened with (settings read them, not the store)."""

    url: str
    environ: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, url: str, environ: Mapping[str, str]) -> S3Location:
        """The location ``url`` (checked), with what of ``environ`` an S3 client reads.

        :raises ConfigError: ``url`` is not a usable ``s3://`` location.
        """
        parse_s3_location(url)
        kept = sorted((k, v) for k, v in environ.items() if k.startswith("AWS_") or k in _S3_ENVIRON)
        return cls(url, tuple(kept))

    def __str__(self) -> str:
        return self.url


#: A mirror is a directory or a prefix of an S3 bucket.
MirrorLocation: TypeAlias = Path | S3Location


def open_location(location: MirrorLocation) -> Store:
    """The store at ``location``.

    :raises ConfigError: the AWS files cannot be read.
    """
    if isinstance(location, S3Location):
        return open_store(location.url, environ=dict(location.environ))
    return FilesystemStore(location)


def is_object_store(location: str) -> bool:
    """Whether ``location`` names an object store rather than a directory."""
    return location.startswith(_SCHEME)


def parse_s3_location(location: str) -> tuple[str, str]:
    """The bucket and the prefix (no leading or trailing ``/``; may be empty) of ``s3://BUCKET/PREFIX``.

    :raises ConfigError: the location is not a usable ``s3://`` location.

    >>> parse_s3_location("s3://mirror/pypi/")
    ('mirror', 'pypi')
    """
    parts = urlsplit(location)
    if parts.scheme != "s3" or parts.query or parts.fragment or "@" in parts.netloc:
        raise ConfigError(f"invalid mirror location {location!r}: expected s3://BUCKET/PREFIX")
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ConfigError(f"invalid S3 bucket name {bucket!r} in {location!r}")
    if any(p in {"", ".", ".."} for p in prefix.split("/")) and prefix:
        raise ConfigError(f"invalid S3 prefix {prefix!r} in {location!r}: empty, '.' or '..' parts")
    return bucket, prefix


def open_store(
    location: str,
    *,
    scratch: Path | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Store:
    """A store at ``location``: a directory path, or ``s3://BUCKET/PREFIX``.

    ``environ`` (default: this process's environment) supplies the standard AWS variables and
    ``HOME``/``XDG_CACHE_HOME``; ``scratch`` overrides an S3 store's local spool directory;
    ``timeout`` bounds each S3 request.

    :raises ConfigError: the location is malformed, or the AWS files cannot be read.
    """
    if not is_object_store(location):
        if "://" in location:
            raise ConfigError(f"invalid mirror location {location!r}: a directory or s3://BUCKET/PREFIX")
        if not location:
            raise ConfigError("invalid mirror location '': a directory or s3://BUCKET/PREFIX")
        return FilesystemStore(Path(location))
    bucket, prefix = parse_s3_location(location)
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    if scratch is None:
        cache = Path(env.get("XDG_CACHE_HOME") or home / ".cache")
        scratch = cache / "pipdepot" / bucket / hashlib.sha256(prefix.encode()).hexdigest()[:16]
    return S3Store(bucket, prefix, aws_settings(env, home), scratch=scratch, timeout=timeout)
