"""A small text file fetched by URL (a constraints file: OpenStack's are given as ``-c https://...``).

A total deadline covers the whole exchange (name lookup, connect, every byte),
and the body is bounded: a server that trickles or sends without end cannot
hold a sync or check for longer, nor fill the memory.
"""

from __future__ import annotations

import asyncio
import os
import socket

import aiohttp

from pipdepot import __version__
from pipdepot.core.urls import redact_url

__all__ = ["DEADLINE", "MAX_BYTES", "RemoteError", "connection_cause", "fetch_text"]

#: Seconds for the whole fetch of one file.
DEADLINE = 60.0
#: A requirements or constraints file larger than this is not one (OpenStack's is 60 kB).
MAX_BYTES = 8 * 1024 * 1024


def __dir__() -> list[str]:
    return __all__


class RemoteError(Exception):
    """The URL gave no usable text; the message is one line naming the URL without credentials."""


def fetch_text(url: str, *, deadline: float = DEADLINE, limit: int = MAX_BYTES) -> str:
    """The text at ``url`` (http or https), fetched in at most ``deadline`` seconds.

    Not for use inside a running event loop (it runs its own).

    :raises RemoteError: unreachable, not 200, over ``limit`` bytes, too slow, or not UTF-8.
    """
    shown = redact_url(url)
    try:
        data = asyncio.run(asyncio.wait_for(_fetch(url, limit), timeout=deadline))
    except TimeoutError:
        raise RemoteError(f"{shown}: no complete answer within {deadline:.0f} s") from None
    except aiohttp.ClientError as exc:
        raise RemoteError(f"{shown}: {_cause(exc)}") from None
    except _TooLargeError:
        raise RemoteError(f"{shown}: larger than {limit} bytes") from None
    except _StatusError as exc:
        raise RemoteError(f"{shown}: HTTP {exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteError(f"{shown}: not UTF-8 text") from None


class _TooLargeError(Exception):
    pass


class _StatusError(Exception):
    pass


async def _fetch(url: str, limit: int) -> bytes:
    headers = {"User-Agent": f"pipdepot/{__version__}"}
    async with aiohttp.ClientSession(headers=headers) as session, session.get(url) as response:
        if response.status != 200:
            raise _StatusError(f"{response.status} {response.reason or ''}".strip())
        if (response.content_length or 0) > limit:
            raise _TooLargeError
        body = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > limit:
                raise _TooLargeError
        return bytes(body)


def connection_cause(exc: BaseException) -> str | None:
    """Why a connection failed, from an exception or its causes, as the system says it.

    ``cannot connect to host:port: Connection refused``, or ``...: Name or service not known``:
    the reason the user can act on, where aiohttp says "Connect call failed".
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, aiohttp.ClientConnectorError):
            error = seen.os_error
            reason = os.strerror(error.errno) if error.errno else str(error) or type(error).__name__
            if isinstance(error, socket.gaierror) and error.strerror:
                reason = error.strerror  # "Name or service not known", not a generic errno
            return f"cannot connect to {seen.host}:{seen.port}: {reason}"
        seen = seen.__cause__
    return None


def _cause(exc: aiohttp.ClientError) -> str:
    """The reason, one line: ``connection refused``, a name that does not resolve, and so on."""
    if (cause := connection_cause(exc)) is not None:
        return cause
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
