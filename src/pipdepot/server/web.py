"""The HTTP face of the mirror: the only module that knows aiohttp's server side.

Routes: ``/`` and ``/simple/`` (root), ``/simple/<name>/`` and ``/<name>/``
(project pages, so both the seed's bare URL and ``/simple/`` work as an index
URL), ``/packages/...`` (files, ``.metadata``, ``.provenance``), PyPI's JSON API
(``/pypi/<name>/json`` and the forms :func:`~pipdepot.server.jsonapi.parse_api_path` names),
``/+health``, ``/+metrics``, ``/+status``. Bad input is answered with a 4xx before it reaches the mirror.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from pipdepot import __version__
from pipdepot.core.names import normalize_project
from pipdepot.core.targets import InvalidTarget
from pipdepot.errors import UpstreamError
from pipdepot.server import jsonapi
from pipdepot.server.fileroutes import FileRoutes
from pipdepot.server.pages import choose_encoding, negotiate, page_files
from pipdepot.server.responses import (
    CACHE_HEADER,
    PAGE_CACHE,
    bad_gateway,
    etags,
    events,
    not_acceptable,
    redirect,
    text,
)
from pipdepot.server.upload import UPLOAD_PATHS, bearer_secret
from pipdepot.server.upstream import one_line
from pipdepot.server.views import view_from_agent, view_named
from pipdepot.storage.store import StoreError

if TYPE_CHECKING:
    from aiohttp.web_request import BaseRequest
    from aiohttp.web_response import StreamResponse

    from pipdepot.server.mirror import Mirror
    from pipdepot.server.pages import Encoding, RenderedPage
    from pipdepot.server.tokens import Tokens
    from pipdepot.server.upload import Uploads
    from pipdepot.server.views import TargetView

__all__ = ["AccessLogger", "create_server"]

logger = logging.getLogger("pipdepot.access")

_MAX_PATH = 1024
_VARY = "Accept, Accept-Encoding"
_VIEW_HEADER = "X-Pipdepot-View"
_ACCESS_FLUSH_S = 0.1
_ACCESS_BATCH = 1024
#: Seconds a client has to send a whole request head, after connecting or after its last response;
#: also how long an idle kept-alive connection stays open (aiohttp's default is an hour).
HEADER_DEADLINE = 15.0
#: Connections at most, kept well under the descriptor limit: downloads and spool files need some.
_MAX_CONNECTIONS = 1000
_SPARE_DESCRIPTORS = 256
#: Bad requests logged per window; the rest are counted in one line.
_BAD_REQUEST_LINES = 5
_BAD_REQUEST_WINDOW_S = 10.0
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def __dir__() -> list[str]:
    return __all__


def create_server(  # noqa: PLR0913 (the server's wiring, by keyword)
    mirror: Mirror,
    *,
    describe: dict[str, object],
    access_log: logging.Logger | None,
    timestamps: bool = True,
    uploads: Uploads | None = None,
    readers: Tokens | None = None,
) -> web.Server:
    """The low-level aiohttp server for ``mirror``; ``describe`` goes into ``/+status``.

    One handler, no application, router or middleware chain: on a page served from
    memory, that machinery was most of the time a request took. Access lines start with
    the time unless ``timestamps`` is false (journald adds its own). ``uploads`` takes
    POSTs; with ``readers``, every request but ``/+health`` needs one of those tokens.
    """
    routes = _Routes(mirror, describe, uploads, readers)
    if access_log is not None:
        _BATCHES[access_log.name] = _AccessBatch(access_log, timestamps=timestamps)

    async def handle(request: BaseRequest) -> web.StreamResponse:
        refused = _refusal(request)
        try:
            response = refused if refused is not None else await routes.dispatch(request)
        except StoreError as exc:  # an object store down or refusing: one line, and a status to retry on
            logger.warning("store unavailable: %s", exc)
            response = text(503, f"the mirror's store is unavailable: {exc}")
        mirror.metrics.answered(response.headers.get(CACHE_HEADER))  # as its access line says
        return response

    server = _Server(
        handle, access_log=access_log, access_log_class=AccessLogger, keepalive_timeout=HEADER_DEADLINE
    )
    server.max_connections = _connection_limit()
    server.bad_requests = _BadRequestLog(events)
    return server


class _Server(web.Server):
    #: Set by :func:`create_server`.
    max_connections: int
    bad_requests: _BadRequestLog

    def __call__(self) -> RequestHandler:
        """A connection: aiohttp's handler, with pipdepot's limits and error lines."""
        return _Connection(self, loop=self._loop, **self._kwargs)

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (aiohttp's signature)
        """Stop, then write the access lines still waiting."""
        await super().shutdown(timeout)
        for batch in _BATCHES.values():
            batch.flush()


class _Connection(RequestHandler):
    """One client connection: refused with a 503 over the limit; a bad request is one log line.

    A request head not complete within ``keepalive_timeout`` (``HEADER_DEADLINE``) closes the
    connection: aiohttp closes a connection still waiting for its next request then.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the connection, or answer 503 and close it when too many are open."""
        super().connection_made(transport)
        server = self._manager
        if isinstance(server, _Server) and len(server.connections) > server.max_connections:
            transport.write(_BUSY)  # type: ignore[attr-defined]
            self.force_close()
            transport.close()

    def log_exception(self, *args: object, **kw: object) -> None:
        """A malformed request (the client's fault) is one line, rate-limited; the rest as aiohttp logs it."""
        exc = kw.get("exc_info")
        server = self._manager
        if isinstance(exc, HttpProcessingError) and isinstance(server, _Server):
            peer = self.transport.get_extra_info("peername") if self.transport is not None else None
            server.bad_requests.add(peer[0] if peer else "?", exc)
            return
        super().log_exception(*args, **kw)


class _BadRequestLog:
    """At most ``_BAD_REQUEST_LINES`` lines per window; at its end, one line for how many more there were."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._window = -_BAD_REQUEST_WINDOW_S
        self._logged = 0
        self._dropped = 0

    def add(self, peer: str, exc: HttpProcessingError) -> None:
        now = time.monotonic()
        if now - self._window >= _BAD_REQUEST_WINDOW_S:
            self._window, self._logged = now, 0
        if self._logged < _BAD_REQUEST_LINES:
            self._logged += 1
            self.logger.warning(
                "bad request from %s: %s", peer, one_line(exc.message or type(exc).__name__, 120)
            )
            return
        if not self._dropped:
            asyncio.get_running_loop().call_later(self._window + _BAD_REQUEST_WINDOW_S - now, self._summary)
        self._dropped += 1

    def _summary(self) -> None:
        self.logger.warning(
            "%d more bad requests in %.0f s, not logged one by one", self._dropped, _BAD_REQUEST_WINDOW_S
        )
        self._dropped = 0


def _connection_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_CONNECTIONS
    return max(16, min(_MAX_CONNECTIONS, soft - _SPARE_DESCRIPTORS))


class AccessLogger(AbstractAccessLogger):
    """One line per request once it is sent: method, path, status, bytes, cache, milliseconds.

    aiohttp makes one per connection; the lines go to the logger's batch.
    """

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Queue the line (aiohttp calls this after the last byte)."""
        sent = response.body_length
        if isinstance(response, web.FileResponse) and request.method == "GET":
            sent = response.content_length or 0  # sendfile bypasses the byte count
        cache = response.headers.get(CACHE_HEADER, "-")
        line = f"{request.method} {request.path_qs} {response.status} {sent} {cache} {time * 1000:.1f}ms"
        _batch_of(self.logger).add(line)

    @property
    def enabled(self) -> bool:
        """Whether lines are wanted at all (aiohttp asks once per connection)."""
        return self.logger.isEnabledFor(logging.INFO)


class _AccessBatch:
    """Access lines written together, one log record per batch, each line with its own time.

    The lines are complete (``HH:MM:SS pipdepot: GET ...``): the logger's handler adds nothing.

    A log record and a write per request took a third of a small page's time under load; a line
    waits at most ``_ACCESS_FLUSH_S``, and the server writes what is left when it stops.
    """

    def __init__(self, logger: logging.Logger, *, timestamps: bool = True) -> None:
        self.logger = logger
        self.timestamps = timestamps
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""

    def add(self, line: str) -> None:
        now = time.time()
        if int(now) != self._second and self.timestamps:  # the time, formatted once a second
            self._second = int(now)
            self._stamp = time.strftime("%H:%M:%S ", time.localtime(now))
        self._lines.append(f"{self._stamp}pipdepot: {line}")
        if len(self._lines) >= _ACCESS_BATCH:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(_ACCESS_FLUSH_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lines:
            lines, self._lines = self._lines, []
            self.logger.info("%s", "\n".join(lines))


_BATCHES: dict[str, _AccessBatch] = {}


def _batch_of(logger: logging.Logger) -> _AccessBatch:
    """The batch of ``logger``: one per logger, like the logger itself."""
    batch = _BATCHES.get(logger.name)
    if batch is None:
        batch = _BATCHES[logger.name] = _AccessBatch(logger)
    return batch


def _refusal(request: BaseRequest) -> web.StreamResponse | None:
    """Refuse what could name a file outside the mirror, before anything else looks at it."""
    raw = request.rel_url.raw_path
    if len(raw) > _MAX_PATH:
        return text(414, "path too long")
    lowered = raw.lower()
    if any(bad in lowered for bad in ("%2f", "%5c", "%00", "\\")) or "\0" in request.path:
        return text(400, "encoded slashes, backslashes and NUL are not allowed in paths")
    if any(segment in {".", ".."} for segment in request.path.split("/")):
        return text(400, "'.' and '..' are not allowed in paths")
    if request.method == "POST" and request.path in UPLOAD_PATHS:
        return None
    if request.method not in {"GET", "HEAD"}:
        where = ", ".join(sorted(UPLOAD_PATHS))
        return text(
            405, f"only GET and HEAD here; uploads are POSTed to {where}", headers={"Allow": "GET, HEAD"}
        )
    return None


class _Routes:
    def __init__(
        self, mirror: Mirror, describe: dict[str, object], uploads: Uploads | None, readers: Tokens | None
    ) -> None:
        self.mirror = mirror
        self.files = FileRoutes(mirror)
        self.describe = describe
        self.uploads = uploads
        self.readers = readers
        self.documents = jsonapi.Documents()

    async def dispatch(self, request: BaseRequest) -> web.StreamResponse:
        refused = await self.unauthorized(request) if self.readers is not None else None
        if refused is not None:
            return refused
        if request.method == "POST":
            if self.uploads is None:
                return text(403, "uploads are off on this server")
            return await self.uploads.handle(request)
        return await self.read(request)

    async def read(self, request: BaseRequest) -> web.StreamResponse:  # noqa: PLR0911 (one answer per route)
        path = request.path
        if path in {"/", "/simple/"}:
            return await self.root(request)
        if path == "/simple":
            return redirect(request, "/simple/")
        if path.startswith(("/+target/", "/+auto/")):
            return await self.viewed(request, path)
        if path.startswith("/+"):
            return await self.operations(path)
        if path.startswith("/packages/") and path != "/packages/":
            return await self.files.file(request, path)
        if (api := jsonapi.parse_api_path(path)) is not None:
            return await self.json_api(request, api)
        prefix = "/simple/" if path.startswith("/simple/") else "/"
        return await self.project(request, prefix, path[len(prefix) :])

    async def unauthorized(self, request: BaseRequest) -> web.StreamResponse | None:
        """``None`` when the request carries a valid token; else a 401 (none sent) or a 403 (a wrong one)."""
        assert self.readers is not None  # noqa: S101 (only called when reads need a token)
        if request.path == "/+health":
            return None
        secret = bearer_secret(request.headers.get("Authorization", ""))
        if secret is None:
            challenge = {"WWW-Authenticate": 'Basic realm="pipdepot"'}
            return text(401, "this mirror needs a token: user __token__, the token as password", challenge)
        if await self.readers.check(secret) is None:
            return text(403, "invalid or revoked token")
        return None

    async def root(self, request: BaseRequest) -> web.StreamResponse:
        fmt = negotiate(request.headers.get("Accept"), _format_param(request))
        if fmt is None:
            return not_acceptable()
        encoding = choose_encoding(request.headers.get("Accept-Encoding", ""))
        return self.page(request, await self.mirror.root_page(fmt, encoding), encoding, "hit")

    async def viewed(self, request: BaseRequest, path: str) -> web.StreamResponse:
        """A view's pages: ``/+target/<target>/simple/...``; ``/+auto/simple/...``: the client's own."""
        kind, _, rest = path[2:].partition("/")
        if kind == "auto":
            view, name = view_from_agent(request.headers.get("User-Agent", "")), ""
        else:
            name, _, rest = rest.partition("/")
            try:
                view = view_named(name)
            except InvalidTarget as exc:
                return text(404, f"no such target view: {exc}")
        base = f"/+{kind}/{name}/" if name else f"/+{kind}/"
        if rest in {"", "simple"}:
            return redirect(request, f"{base}simple/")
        if not rest.startswith("simple/"):
            return text(404, f"a view's pages are under {base}simple/")
        if rest == "simple/":
            response = await self.root(request)
        elif (api := jsonapi.parse_api_path(f"/{rest}")) is not None:  # pip-tools asks <index>/<p>/json
            return await self.json_api(request, api)  # a release's hashes: all of them, as PyPI gives
        else:
            response = await self.project(request, f"{base}simple/", rest.removeprefix("simple/"), view)
        response.headers[_VIEW_HEADER] = view.name if view is not None else "none"  # what the client got
        return response

    async def project(
        self, request: BaseRequest, prefix: str, rest: str, view: TargetView | None = None
    ) -> web.StreamResponse:
        typed = rest.removesuffix("/")
        name = normalize_project(typed)
        if name is None or "/" in typed:
            return text(404, "not a project name")
        if typed != name or not rest.endswith("/"):
            return redirect(request, f"{prefix}{name}/")
        fmt = negotiate(request.headers.get("Accept"), _format_param(request))
        if fmt is None:
            return not_acceptable()
        encoding = choose_encoding(request.headers.get("Accept-Encoding", ""))
        try:
            found = await self.mirror.page(name, fmt, encoding, view)
        except UpstreamError as exc:
            return bad_gateway(f"upstream unavailable and {name} is not cached", exc)
        if found is None:
            return text(404, f"no project named {name}")
        page, cache = found
        return self.page(request, page, encoding, cache)

    async def json_api(self, request: BaseRequest, api: jsonapi.ApiPath) -> web.StreamResponse:
        """PyPI's JSON API for a project or one release, from what its page lists; nothing is downloaded."""
        name = normalize_project(api.typed)
        if name is None:
            return text(404, "not a project name")
        if api.typed != name:
            return redirect(request, api.path_for(name))
        try:
            result = await self.mirror.project(name)
        except UpstreamError as exc:
            return bad_gateway(f"upstream unavailable and {name} is not cached", exc)
        if result is None:
            return text(404, f"no project named {name}")
        releases = jsonapi.releases_of(page_files(result.state, local_only=result.local_only))
        version = jsonapi.choose_version(releases, api.version)
        if version is None:
            return text(404, f"no release {api.version or ''} of {name}".replace("  ", " "))
        metadata, found = None, None
        for key in jsonapi.metadata_keys(releases[version]):  # stored ones only: never fetched for this
            if (metadata := await self.mirror.store.read(key)) is not None:
                found = key
                break
        base_url, whole = f"{request.scheme}://{request.host}", api.version is None
        made_of = (name, result.state.generation, result.local_only, version, whole, base_url, found)
        encoding = choose_encoding(request.headers.get("Accept-Encoding", ""))
        document = self.documents.get(made_of)
        if document is None:  # megabytes for a large project: made in a thread, the other requests go on
            made = await asyncio.to_thread(
                jsonapi.render_page,
                name,
                releases,
                version,
                base_url=base_url,
                metadata=metadata,
                all_releases=whole,
                encoding=encoding,
            )
            document = self.documents.keep(made_of, made)
        return self.page(request, document, encoding, result.cache)

    def page(
        self, request: BaseRequest, page: RenderedPage, encoding: Encoding | None, cache: str
    ) -> web.StreamResponse:
        etag = page.etag if encoding is None else f'{page.etag[:-1]}-{encoding}"'
        headers = {
            "Vary": "Accept, Accept-Encoding, User-Agent" if request.path.startswith("/+auto/") else _VARY,
            "ETag": etag,
            "Cache-Control": PAGE_CACHE,
            CACHE_HEADER: cache,
        }
        if etag in etags(request.headers.get("If-None-Match", "")):
            return web.Response(status=304, headers=headers)
        content_type = page.content_type + ("; charset=utf-8" if page.content_type == "text/html" else "")
        headers["Content-Type"] = content_type
        if encoding is not None:
            headers["Content-Encoding"] = encoding
        body = page.body if encoding is None else page.encode(encoding)
        self.mirror.metrics.bytes_served += len(body) * (request.method == "GET")
        return web.Response(body=body, headers=headers)

    async def operations(self, path: str) -> web.StreamResponse:
        metrics = self.mirror.metrics
        if path == "/+health":
            body = {"status": "ok", "server": "pipdepot", "offline": self.mirror.offline}  # element probes it
            return web.json_response(body)
        if path in {"/+metrics", "/+status"}:
            await self.mirror.census()
        if path == "/+metrics":
            return web.Response(text=metrics.prometheus(), content_type="text/plain", charset="utf-8")
        if path == "/+status":
            body = {"version": __version__, **self.describe, "metrics": metrics.as_dict()}
            return web.json_response(body, dumps=lambda data: json.dumps(data, indent=1))
        return text(404, "no such endpoint")


def _format_param(request: BaseRequest) -> str | None:
    """``?format=``, with the ``+`` of media types that form-decoding turned into a space."""
    value = request.query.get("format")
    return None if value is None else value.replace(" ", "+")
