"""Which mirror URLs of a plan are ``pipdepot serve``: those have target views to point builds at.

Asked on the host before a root is configured (``GET /+health``, one short deadline for all of
them at once): a build root's pip and uv then read ``/+auto/simple/``, pages trimmed to their
own target. A mirror that does not answer in time, or is not pipdepot, is used as given.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, wait
from urllib.parse import urlsplit, urlunsplit

__all__ = ["SERVER_NAME", "VIEW_PATH", "pipdepot_servers", "view_url"]

#: What ``/+health`` says its server is.
SERVER_NAME = "pipdepot"
#: The index path of the view chosen from each installer's User-Agent.
VIEW_PATH = "/+auto/simple/"
#: Index paths a pipdepot server answers at (``/`` and ``/simple/``), the only ones probed.
_INDEX_PATHS = frozenset({"", "/", "/simple", "/simple/"})
_DEADLINE = 2.0
_MAX_ANSWER = 4096


def __dir__() -> list[str]:
    return __all__


def view_url(url: str) -> str | None:
    """The target-view index of a pipdepot mirror URL (credentials kept); ``None``: not an index root."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or parts.path not in _INDEX_PATHS or parts.query:
        return None
    return urlunsplit((parts.scheme, parts.netloc, VIEW_PATH, "", ""))


def pipdepot_servers(urls: tuple[str, ...]) -> frozenset[str]:
    """The URLs among ``urls`` that a running pipdepot server answers at (asked at once, 2 s in all)."""
    candidates = [url for url in dict.fromkeys(urls) if view_url(url) is not None]
    if not candidates:
        return frozenset()
    with ThreadPoolExecutor(max_workers=min(8, len(candidates))) as pool:
        futures = {pool.submit(_is_pipdepot, url): url for url in candidates}
        done, _ = wait(futures, timeout=_DEADLINE + 0.5)
        return frozenset(futures[f] for f in done if f.result())


def _is_pipdepot(url: str) -> bool:
    parts = urlsplit(url)
    health = urlunsplit((parts.scheme, parts.hostname or "", "/+health", "", ""))
    if parts.port is not None:
        health = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port}", "/+health", "", ""))
    request = urllib.request.Request(health, headers={"Accept": "application/json"})  # noqa: S310 (http(s) only)
    try:
        with urllib.request.urlopen(request, timeout=_DEADLINE) as response:  # noqa: S310 (http(s) only)
            body = response.read(_MAX_ANSWER)
        return bool(json.loads(body).get("server") == SERVER_NAME)
    except (OSError, ValueError, AttributeError, urllib.error.URLError):
        return False
