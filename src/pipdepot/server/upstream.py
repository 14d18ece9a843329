"""Talking to upstream indexes: project pages (conditional) and file streams.

Every failure to get an answer (refused, timeout, 5xx, a page too large) becomes
:class:`UpstreamError`, whose message is one line in pipdepot's words: never upstream's
bytes (a garbage answer once put 100 KB of them into a 502). A 404 or 410 is an answer,
"no such project here". A page comes back unparsed, in a spool file: the mirror parses it,
and turns a page that is not one into an :class:`UpstreamError` too.

Every exchange has a total deadline, not only a timeout per read (which a trickle of a byte
a second restarts for ever): a page, a metadata file or a range must be complete within
``deadline``; a file download must bring ``min_rate`` bytes a second, counted over each
``deadline``-long window, so a large wheel on a slow link goes on and a trickle is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from pipdepot.core.urls import redact_url
from pipdepot.errors import UpstreamError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from pipdepot.core.names import NormalizedName

__all__ = ["NotFound", "NotModified", "Page", "Partial", "UpstreamClient", "describe_failure", "one_line"]

_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
_CHUNK = 256 * 1024
_ATTEMPTS = 3
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_MAX_PAGE = 256 * 1024 * 1024
#: A gzip page inflating past the floor to more than ratio times its compressed size is a bomb.
_BOMB_FLOOR = 16 * 1024 * 1024
_BOMB_RATIO = 200
#: A reason longer than this is cut: it goes into a log line, a 502's body and its reason phrase.
_MAX_REASON = 200


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
    """One HTTP session for all upstreams; its lifetime is the server's.

    ``timeout`` bounds a connection and each read; ``deadline`` a whole exchange (a page, with its
    retries); a file download gets ``deadline`` seconds for each ``deadline * min_rate`` bytes.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout: float,
        deadline: float = 30.0,
        min_rate: int = 8 * 1024,
    ) -> None:
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self.deadline = deadline
        self.min_rate = min_rate

    async def fetch_project(
        self, index: str, name: NormalizedName, etag: str | None, *, spool: Path
    ) -> Page | NotFound | NotModified:
        """``index``'s page for ``name``; a page's body is written to a file in ``spool``.

        :raises UpstreamError: no usable answer.
        """
        url = index.rstrip("/") + f"/{name}/"
        headers = {"Accept": _ACCEPT, "Accept-Encoding": "gzip"}
        if etag:
            headers["If-None-Match"] = etag
        try:
            async with asyncio.timeout(self.deadline):
                for attempt in range(_ATTEMPTS):
                    try:
                        return await self._fetch_project(url, headers, spool)
                    except _RetryableError as exc:
                        if attempt + 1 == _ATTEMPTS:
                            raise UpstreamError(f"{redact_url(url)}: {exc}") from exc
                        await asyncio.sleep(0.2 * (attempt + 1))
        except TimeoutError as exc:
            raise UpstreamError(f"{redact_url(url)}: no complete page within {self.deadline:g} s") from exc
        raise AssertionError  # pragma: no cover

    async def _fetch_project(
        self, url: str, headers: dict[str, str], spool: Path
    ) -> Page | NotFound | NotModified:
        try:
            async with self.session.get(
                url, headers=headers, timeout=self.timeout, auto_decompress=False
            ) as response:
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
            raise _RetryableError(describe_failure(exc)) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{redact_url(url)}: {describe_failure(exc)}") from exc

    async def stream(self, url: str) -> AsyncIterator[bytes]:
        """The bytes of ``url``, as they arrive, at least ``min_rate`` a second over each window.

        The deadline is applied to each wait, never across a ``yield``: the consumer's own
        awaits are not cut by it.

        :raises UpstreamError: no answer, a non-200 status, a broken or too slow transfer.
        """
        loop = asyncio.get_running_loop()
        quota = max(1, int(self.min_rate * self.deadline))
        window_end = loop.time() + self.deadline
        response: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout_at(window_end):
                response = await self.session.get(
                    url, headers={"Accept-Encoding": "identity"}, timeout=self.timeout
                )
            if response.status != 200:
                raise UpstreamError(f"{redact_url(url)}: HTTP {response.status}")
            counted = 0
            while True:
                async with asyncio.timeout_at(window_end):
                    chunk = await response.content.read(_CHUNK)
                if not chunk:
                    return
                counted += len(chunk)
                if counted >= quota:  # this window brought its share: a new one starts
                    counted, window_end = 0, loop.time() + self.deadline
                yield chunk
        except TimeoutError as exc:
            raise UpstreamError(
                f"{redact_url(url)}: slower than {self.min_rate} bytes/s over {self.deadline:g} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{redact_url(url)}: {describe_failure(exc)}") from exc
        finally:
            if response is not None:
                response.close()

    async def fetch_small(self, url: str, *, limit: int) -> bytes:
        """The whole body of ``url`` (a metadata file), within the deadline and ``limit`` bytes.

        :raises UpstreamError: no answer, a non-200 status, too large, too slow.
        """
        try:
            headers = {"Accept-Encoding": "identity"}
            async with (
                asyncio.timeout(self.deadline),
                self.session.get(url, headers=headers, timeout=self.timeout) as response,
            ):
                if response.status != 200:
                    raise UpstreamError(f"{redact_url(url)}: HTTP {response.status}")
                if (response.content_length or 0) > limit:
                    raise UpstreamError(f"{redact_url(url)}: {response.content_length} bytes, over {limit}")
                data = await response.content.read(limit + 1)
                while len(data) <= limit and (more := await response.content.read(limit + 1 - len(data))):
                    data += more
                if len(data) > limit:
                    raise UpstreamError(f"{redact_url(url)}: over {limit} bytes")
                return data
        except TimeoutError as exc:
            raise UpstreamError(f"{redact_url(url)}: not complete within {self.deadline:g} s") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{redact_url(url)}: {describe_failure(exc)}") from exc

    async def fetch_range(self, url: str, byte_range: str, *, limit: int) -> Partial | None:
        """Upstream's answer to ``Range: byte_range``; ``None`` if it sent the whole file or over ``limit``.

        :raises UpstreamError: no usable answer.
        """
        headers = {"Range": byte_range, "Accept-Encoding": "identity"}
        try:
            async with (
                asyncio.timeout(self.deadline),
                self.session.get(url, headers=headers, timeout=self.timeout) as response,
            ):
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
        except TimeoutError as exc:
            raise UpstreamError(f"{redact_url(url)}: no complete range within {self.deadline:g} s") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{redact_url(url)}: {describe_failure(exc)}") from exc


async def _spooled(response: aiohttp.ClientResponse, spool: Path, url: str) -> Path:
    """The response's body, inflated, written to a new file in ``spool`` as it arrives (as downloads are).

    :raises UpstreamError: the page is larger than any real one, or inflates like a bomb.
    """
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in {"identity", "gzip", "x-gzip"}:
        raise UpstreamError(
            f"{redact_url(url)}: a page in an encoding not asked for ({one_line(encoding, 40)})"
        )
    inflater = _Inflater(url) if encoding != "identity" else None
    fd, name = tempfile.mkstemp(dir=spool, prefix="upstream-")
    os.close(fd)
    path = Path(name)
    try:
        with path.open("wb") as target:  # noqa: ASYNC230 (spool writes land in the page cache, as downloads')
            async for chunk in response.content.iter_chunked(_CHUNK):
                for part in inflater.feed(chunk) if inflater is not None else (chunk,):
                    target.write(part)
                    _check_page_size(target.tell(), url)
            if inflater is not None:
                inflater.finish()
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()  # noqa: ASYNC240 (one unlink, on failure)
        raise
    return path


class _Inflater:
    """A gzip body inflated in bounded steps, refused once it inflates like a bomb.

    A page of JSON or HTML inflates 5 to 20 times; a gzip bomb about a thousand. Past
    ``_BOMB_FLOOR`` bytes, more than ``_BOMB_RATIO`` times what came in is refused, so a bomb
    costs a few MiB, not the whole page limit of disk and a minute of CPU.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.received = 0
        self.inflated = 0
        self._zlib = zlib.decompressobj(wbits=31)
        self._in_member = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        self.received += len(data)
        while data:
            try:
                part = self._zlib.decompress(data, _CHUNK)
            except zlib.error as exc:
                raise UpstreamError(f"{redact_url(self.url)}: a gzip page that is not valid gzip") from exc
            self._in_member = True
            self.inflated += len(part)
            if self.inflated > _BOMB_FLOOR and self.inflated > _BOMB_RATIO * self.received:
                raise UpstreamError(
                    f"{redact_url(self.url)}: a gzip page that inflates over {_BOMB_RATIO} times (a bomb)"
                )
            yield part
            if self._zlib.eof:  # a gzip member ended: another may follow
                data = self._zlib.unused_data
                self._zlib = zlib.decompressobj(wbits=31)
                self._in_member = False
            else:
                data = self._zlib.unconsumed_tail

    def finish(self) -> None:
        """:raises UpstreamError: the body stopped in the middle of a gzip member."""
        if self._in_member:
            raise UpstreamError(f"{redact_url(self.url)}: a gzip page cut short")


def _check_page_size(size: int, url: str) -> None:
    if size > _MAX_PAGE:
        raise UpstreamError(f"{redact_url(url)}: a page of over {_MAX_PAGE} bytes")


def describe_failure(exc: BaseException) -> str:
    """What failed, in one short line of pipdepot's words: never the bytes upstream sent.

    aiohttp's messages for a broken answer quote the answer itself (a garbage status line of
    100 KB became a 100 KB error); only the OS's own words are kept.
    """
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        return f"cannot connect: {os.strerror(error.errno) if error.errno else type(error).__name__}"
    if isinstance(exc, aiohttp.ClientOSError) and exc.strerror:
        return one_line(str(exc.strerror))
    if isinstance(exc, aiohttp.ClientResponseError) and not isinstance(exc, aiohttp.TooManyRedirects):
        return "not a valid HTTP response" if exc.status in {0, 400} else f"HTTP {exc.status}"
    for kind, words in _FAILURES:
        if isinstance(exc, kind):
            return words
    return type(exc).__name__


_FAILURES: tuple[tuple[type[BaseException], str], ...] = (
    (aiohttp.TooManyRedirects, "too many redirects"),
    (aiohttp.ServerDisconnectedError, "the server closed the connection"),
    (aiohttp.ClientPayloadError, "the transfer broke off or its encoding is invalid"),
)


def one_line(text: str, limit: int = _MAX_REASON) -> str:
    """``text`` as one printable ASCII line of at most ``limit`` characters (a log line, a reason phrase)."""
    flat = " ".join(text.split())
    clean = "".join(c if " " <= c <= "~" else "?" for c in flat)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."
