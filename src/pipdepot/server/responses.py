"""The answers every route shares: one-line errors, redirects, cache headers.

A failure is one line, in the body and, for a 502, in the reason phrase (pip shows it with ``-v``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from pipdepot.server.pages import CONTENT_TYPES
from pipdepot.server.upstream import one_line

if TYPE_CHECKING:
    from aiohttp.web_request import BaseRequest

__all__ = [
    "CACHE_HEADER",
    "FILE_CACHE",
    "PAGE_CACHE",
    "bad_gateway",
    "etags",
    "file_headers",
    "not_acceptable",
    "redirect",
    "text",
]

#: What went wrong with a request (a 502's cause, a bad request): lines of their own, with their time.
events = logging.getLogger("pipdepot.http")

PAGE_CACHE = "max-age=60, public"
FILE_CACHE = "max-age=365000000, immutable, public"
#: How a response was obtained: hit, miss, stale, offline, pass.
CACHE_HEADER = "X-Pipdepot-Cache"


def __dir__() -> list[str]:
    return __all__


def file_headers(cache: str) -> dict[str, str]:
    """A stored file's headers: immutable, ranges, and how it was obtained."""
    return {"Cache-Control": FILE_CACHE, "Accept-Ranges": "bytes", CACHE_HEADER: cache}


def etags(header: str) -> set[str]:
    """The entity tags an ``If-None-Match`` names."""
    return {tag.strip() for tag in header.split(",") if tag.strip()}


def redirect(request: BaseRequest, location: str) -> web.StreamResponse:
    """A 301 keeping the query as sent: decoded, a ``%00`` or ``%0A`` in it broke the header (a traceback)."""
    raw = request.rel_url.raw_query_string
    query = f"?{raw}" if raw else ""
    return web.Response(status=301, headers={"Location": location + query})


def not_acceptable() -> web.StreamResponse:
    """A 406 naming what is offered."""
    offered = ", ".join(CONTENT_TYPES.values())
    return text(406, f"none of the offered types is acceptable: {offered}")


def text(status: int, message: str, headers: dict[str, str] | None = None) -> web.StreamResponse:
    """A one-line answer."""
    return web.Response(status=status, text=message + "\n", headers=headers)


def bad_gateway(what: str, cause: BaseException | None) -> web.StreamResponse:
    """A 502 that says what failed, in one line: in the body, the log, and the reason phrase.

    pip hides a 502's body ("from versions: none") but shows the reason phrase with ``-v``.
    """
    reason = one_line(f"{what}: {cause}" if cause is not None else what, 300)
    events.warning("502: %s", reason)
    short = one_line(str(cause) if cause is not None else what, 150)
    return web.Response(status=502, reason=f"Bad Gateway ({short})", text=reason + "\n")
