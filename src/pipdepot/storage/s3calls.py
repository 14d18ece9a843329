"""One S3 request as pipdepot makes it: a deadline over the call, failures made one-line StoreErrors.

obstore retries a failed request itself (a few times, each with the request timeout); an asyncio
deadline over the whole call bounds the retries too. Its own exceptions carry a debug dump: only
the first line, or the cause in words (a timeout, a refused connection), reaches a message.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import S3Store as _ObstoreS3

from pipdepot.storage.store import AlreadyExists, StoreError, VersionMismatch

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from obstore import ObjectMeta
    from obstore.store import S3Config

    from pipdepot.storage.aws import AwsSettings

__all__ = ["S3Calls", "runtime_started"]

_T = TypeVar("_T")

#: Whether this process has opened an S3 store (and with it obstore's native runtime).
_STARTED: list[bool] = []
#: Retries of a failed request (5xx, connection errors; timeouts of reads), each with the full timeout.
RETRIES = 2


def __dir__() -> list[str]:
    return __all__


def runtime_started() -> bool:
    """Whether this process started obstore's native runtime.

    Its threads can outlive the last request; tearing the interpreter down around them aborted
    the process (SIGABRT, exit -6) in about one run in five under load, whatever the command's
    outcome. A process that used it ends without that teardown (see ``cli.main``).
    """
    return bool(_STARTED)


class S3Calls:
    """The obstore client of one bucket and prefix, and the deadline every call of it runs under."""

    def __init__(self, bucket: str, prefix: str, settings: AwsSettings, *, timeout: float) -> None:
        _STARTED.append(True)
        self.location = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        #: One HTTP request (connect to last body byte) may take this long.
        self.timeout = timeout
        #: One call, with its retries and their back-off, may take this long.
        self.deadline = timeout * (RETRIES + 1) + 5.0
        self.client = _ObstoreS3(
            bucket,
            prefix=prefix or None,
            config=_config(settings),
            client_options={
                "allow_http": (settings.endpoint or "").startswith("http://"),
                "timeout": timedelta(seconds=timeout),
                "connect_timeout": timedelta(seconds=min(timeout, 5.0)),
            },
            retry_config={
                "max_retries": RETRIES,
                "retry_timeout": timedelta(seconds=timeout * (RETRIES + 1)),
                "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2)},
            },
        )

    def where(self, key: str) -> str:
        """The object's address, for messages."""
        return f"{self.location}/{key}"

    async def call(self, key: str, action: str, call: Awaitable[_T], *, extra: float = 0.0) -> _T:
        """Await ``call`` within the deadline; obstore's and the deadline's failures made one StoreError.

        AlreadyExists, VersionMismatch and FileNotFoundError pass through (the caller decides).
        """
        try:
            async with asyncio.timeout(self.deadline + extra):
                return await call
        except TimeoutError:
            raise StoreError(
                f"{self.where(key)}: {action}: no answer within {self.deadline + extra:.0f} s"
            ) from None
        except FileNotFoundError:
            raise
        except (PermissionDeniedError, UnauthenticatedError) as exc:
            raise StoreError(f"{self.where(key)}: {action}: access denied ({_first_line(exc)})") from exc
        except AlreadyExistsError:
            raise AlreadyExists(key) from None
        except PreconditionError:
            raise VersionMismatch(key) from None
        except (BaseError, OSError) as exc:
            raise StoreError(f"{self.where(key)}: {action}: {self._cause(exc)}") from exc

    async def objects(self, prefix: str) -> AsyncIterator[ObjectMeta]:
        """Every object under ``prefix`` (its key, size, time...), a page of 1,000 a request."""
        pages = obstore.list(self.client, prefix.rstrip("/") or None, chunk_size=1000)
        while True:
            try:
                page = await self.call(prefix, "LIST", anext(pages))
            except StopAsyncIteration:
                return
            for meta in page:
                yield meta

    def _cause(self, exc: BaseException) -> str:
        """What went wrong, in words: obstore names a timeout or a refused connection only in its dump."""
        text = str(exc)
        if "kind: Timeout" in text or "TimedOut" in text:
            return f"no answer within {self.timeout:g} s ({RETRIES + 1} attempts)"
        if "ConnectionRefused" in text:
            return "connection refused"
        return _first_line(exc)


def _config(settings: AwsSettings) -> S3Config:
    config: S3Config = {
        "region": settings.region,
        # With an endpoint (SeaweedFS, MinIO...) the bucket goes in the path, as every S3 tool
        # does for a custom endpoint; AWS itself takes the bucket's host name.
        "virtual_hosted_style_request": settings.endpoint is None,
        # Complete a multipart copy only if the key is absent: create-only for large files.
        "copy_if_not_exists": "multipart",
    }
    if settings.endpoint is not None:
        config["endpoint"] = settings.endpoint
    if settings.access_key_id and settings.secret_access_key:
        config["access_key_id"] = settings.access_key_id
        config["secret_access_key"] = settings.secret_access_key
        if settings.session_token:
            config["session_token"] = settings.session_token
    return config


def _first_line(exc: BaseException) -> str:
    """The first line of obstore's message (the rest is a debug dump): what happened."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 300 else f"{line[:297]}..."
