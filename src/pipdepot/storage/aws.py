"""Where an S3 store is and who we are there, read as every AWS tool reads it.

Variables first (``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``/``AWS_DEFAULT_REGION``), then the
profile (``AWS_PROFILE``, else ``default``) in ``~/.aws/credentials`` and ``~/.aws/config``
(or ``AWS_SHARED_CREDENTIALS_FILE`` and ``AWS_CONFIG_FILE``). obstore reads the variables but
not the files, so both are read here, once, and handed to it explicitly. Credentials found in
neither are left to obstore's own chain (web identity, container and instance roles).
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipdepot.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["AwsSettings", "aws_settings"]

_DEFAULT_REGION = "us-east-1"


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class AwsSettings:
    """The endpoint, region and credentials for S3 (secrets never in ``repr``)."""

    region: str = _DEFAULT_REGION
    #: A custom endpoint (SeaweedFS, MinIO, Ceph...): path-style requests; ``None``: AWS itself.
    endpoint: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)


def aws_settings(environ: Mapping[str, str], home: Path) -> AwsSettings:
    """The settings from ``environ`` over the profile's sections in the ``~/.aws`` files under ``home``.

    :raises ConfigError: a file that exists cannot be parsed, or a named profile is missing.
    """
    profile = environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or "default"
    named = "AWS_PROFILE" in environ or "AWS_DEFAULT_PROFILE" in environ
    credentials_file = Path(environ.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials")
    config_file = Path(environ.get("AWS_CONFIG_FILE") or home / ".aws" / "config")
    from_credentials = _section(credentials_file, profile)
    from_config = _section(config_file, profile if profile == "default" else f"profile {profile}")
    if named and from_credentials is None and from_config is None:
        raise ConfigError(
            f"AWS profile {profile!r} is in neither {str(credentials_file)!r} nor {str(config_file)!r}"
        )
    files = {**(from_config or {}), **(from_credentials or {})}

    key: str | None
    secret: str | None
    token: str | None
    if environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY"):
        key, secret = environ["AWS_ACCESS_KEY_ID"], environ["AWS_SECRET_ACCESS_KEY"]
        token = environ.get("AWS_SESSION_TOKEN")
    else:
        key, secret = files.get("aws_access_key_id"), files.get("aws_secret_access_key")
        token = files.get("aws_session_token")
    region = (
        environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or files.get("region")
        or _DEFAULT_REGION
    )
    endpoint = (
        environ.get("AWS_ENDPOINT_URL_S3")
        or environ.get("AWS_ENDPOINT_URL")
        or files.get("endpoint_url")
        or None
    )
    return AwsSettings(region, endpoint, key or None, secret or None, token or None)


def _section(path: Path, name: str) -> dict[str, str] | None:
    parser = configparser.ConfigParser(interpolation=None, default_section="\0none")
    try:
        with path.open(encoding="utf-8") as stream:
            parser.read_file(stream)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot read the AWS file {str(path)!r}: {first}") from exc
    if not parser.has_section(name):
        return None
    return {k: v.strip() for k, v in parser.items(name) if v.strip()}
