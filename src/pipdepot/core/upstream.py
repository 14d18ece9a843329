"""Talking to upstream indexes: project pages (conditional) and file streams.

Every failure to get an answer (refused, timeout, 5xx, a page too large) becomes
:class:`UpstreamError`; a 404 or 410 is an answer, "no such project here". A page comes back
unparsed, in a spool file: the mirror parses it, and turns a page that is not one into an
:class:`UpstreamError` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from pipdepot.core.urls import redact_url
from pipdepot.errors import UpstreamError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from pipdepot.core.names import NormalizedName

__all__ = ["NotFound", "NotModified", "Page", "Partial", "UpstreamClient"]

_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
_CHUNK = 256 * 1024
_ATTEMPTS = 3
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_MAX_PAGE = 256 * 1024 * 1024


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class NotFound:
    """The upstream has no such project."""


@dataclass(frozen=True, slots=True)
class Page:
    """A project page as upstream sent it, not yet parsed, in a spool file the caller removes.

    The mirror parses pages one at a time; a burst of new pages (uv asks for 40 within a
    second) waits on disk, neither parsed nor as bytes (20 MB of them at once, measured).
    """

    path: Path
    content_type: str
    url: str
    etag: str | None


@dataclass(frozen=True, slots=True)
class NotModified:
    """The page did not change since the ETag we sent."""


@dataclass(frozen=True, slots=True)
class Partial:
    """Part of a file, as upstream sent it for a Range request (206), or 416."""

    status: int
    body: bytes
    content_range: str | None


class _RetryableError(Exception):
    """A failure worth one more try: a refused or reset connection, a 5xx."""


class UpstreamClient:
    """One HTTP session for all upstreams; its lifetime is the server's."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float) -> None:
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)

    async def fetch_project(
        self, index: str, name: NormalizedName, etag: str | None, *, spool: Path
    ) -> Page | NotFound | NotModified:
        """``index``'s page for ``name``; a page's body is written to a file in ``spool``.

        :raises UpstreamError: no usable answer.
        """
        url = index.rstrip("/") + f"/{name}/"
        headers = {"Accept": _ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        for attempt in range(_ATTEMPTS):
            try:
                return await self._fetch_project(url, headers, spool)
            except _RetryableError as exc:
                if attempt + 1 == _ATTEMPTS:
                    raise UpstreamError(f"{redact_url(url)}: {exc}") from exc
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError  # pragma: no cover

    async def _fetch_project(
        self, url: str, headers: dict[str, str], spool: Path
    ) -> Page | NotFound | NotModified:
        try:
            async with self.session.get(url, headers=headers, timeout=self.timeout) as response:
                if response.status == 304:
                    return NotModified()
                if response.status in {404, 410}:
                    return NotFound()
                if response.status in _RETRY_STATUS:
                    raise _RetryableError(f"HTTP {response.status}")
                if response.status != 200:
                    raise UpstreamError(f"{redact_url(url)}: HTTP {response.status}")
                if (response.content_length or 0) > _MAX_PAGE:
                    raise UpstreamError(f"{redact_url(url)}: a page of {response.content_length} bytes")
                path = await _spooled(response, spool, url)
                return Page(
                    path,
                    response.headers.get("Content-Type", ""),
                    str(response.url),
                    response.headers.get("ETag"),
                )
        except TimeoutError as exc:  # a hanging upstream is not worth waiting for twice
            raise UpstreamError(f"{redact_url(url)}: timed out") from exc
        except aiohttp.ClientConnectionError as exc:
            raise _RetryableError(f"{type(exc).__name__}: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{redact_url(url)}: {type(exc).__name__}: {exc}") from exc

    async def stream(self, url: str) -> AsyncIterator[bytes]:
        """The bytes of ``url``, as they arrive.

        :raises UpstreamError: no answer, a non-200 status, or a broken transfer.
        """
        try:
            async with self.session.get(
                url, headers={"Accept-Encoding": "identity"}, timeout=self.timeout
            ) as response:
                if response.status != 200:
                    raise UpstreamError(f"{redact_url(url)}: HTTP {response.status}")
                async for chunk in response.content.iter_chunked(_CHUNK):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"{redact_url(url)}: {type(exc).__name__}: {exc}") from exc

    async def fetch_range(self, url: str, byte_range: str, *, limit: int) -> Partial | None:
        """Upstream's answer to ``Range: byte_range``; ``None`` if it sent the whole file or over ``limit``.

        :raises UpstreamError: no usable answer.
        """
        headers = {"Range": byte_range, "Accept-Encoding": "identity"}
        try:
            async with self.session.get(url, headers=headers, timeout=self.timeout) as response:
                if response.status == 416:  # Range Not Satisfiable
                    return Partial(416, b"", response.headers.get("Content-Range"))
                if response.status != 206:  # Partial Content
                    return None
                if (response.content_length or 0) > limit:
                    return None
                chunks, received = [], 0
                async for chunk in response.content.iter_chunked(_CHUNK):
                    received += len(chunk)
                    if received > limit:
                        return None
                    chunks.append(chunk)
                return Partial(206, b"".join(chunks), response.headers.get("Content-Range"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"{redact_url(url)}: {type(exc).__name__}: {exc}") from exc


async def _spooled(response: aiohttp.ClientResponse, spool: Path, url: str) -> Path:
    """The response's body, written to a new file in ``spool`` as it arrives (as downloads are).

    :raises UpstreamError: the page is larger than any real one.
    """
    fd, name = tempfile.mkstemp(dir=spool, prefix="upstream-")
    os.close(fd)
    path = Path(name)
    try:
        with path.open("wb") as target:  # noqa: ASYNC230 (spool writes land in the page cache, as downloads')
            async for chunk in response.content.iter_chunked(_CHUNK):
                target.write(chunk)
                _check_page_size(target.tell(), url)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()  # noqa: ASYNC240 (one unlink, on failure)
        raise
    return path


def _check_page_size(size: int, url: str) -> None:
    if size > _MAX_PAGE:
        raise UpstreamError(f"{redact_url(url)}: a page of over {_MAX_PAGE} bytes")
