"""Index URLs as pip and uv see them: validation, trusted hosts, redaction."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "has_credentials",
    "is_plain_http",
    "redact_url",
    "trusted_host_of",
    "validate_index_url",
]

_SCHEMES = ("http", "https", "file")


def __dir__() -> list[str]:
    return __all__


def validate_index_url(url: str, *, source: str) -> str:
    """Return ``url`` if pip and uv can use it as an index, else raise naming ``source``.

    :raises ValueError: for another scheme, a missing host, or whitespace (pip
        splits index lists on whitespace, so a URL with a space would become two).
    """
    parts = urlsplit(url)
    if any(ch.isspace() for ch in url):
        raise ValueError(f"{source}: {redact_url(url)!r} contains whitespace")
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"{source}: {redact_url(url)!r} is not an http, https or file URL")
    if parts.scheme != "file" and not parts.hostname:
        raise ValueError(f"{source}: {redact_url(url)!r} has no host")
    if parts.scheme == "file" and not parts.path.startswith("/"):
        raise ValueError(f"{source}: {redact_url(url)!r} is not an absolute file URL")
    return url


def is_plain_http(url: str) -> bool:
    """Whether pip would refuse ``url`` without a ``trusted-host`` entry."""
    return urlsplit(url).scheme == "http"


def trusted_host_of(url: str) -> str:
    """The ``trusted-host`` entry for ``url``: the host, with the port only when one is given.

    A bare host trusts every port, so the port is kept when the URL names one.

    >>> trusted_host_of("http://user:pw@mirror.example:3141/simple/")
    'mirror.example:3141'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries a user name or password."""
    parts = urlsplit(url)
    return parts.username is not None or parts.password is not None


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``****``, for logs and plans.

    >>> redact_url("https://user:secret@mirror.example/simple/")
    'https://user:****@mirror.example/simple/'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:****@{netloc}"))
