"""The harness's own HTTP requests: one-off fetches, what a page looks like, which files it links.

Load is wrk's job (``wrk.py``); these are the single requests around it: priming caches, checking
that every contender answers the same pages, finding the URL of the large wheel. ``http.client``
rather than urllib so that nothing (proxies, redirects, decompression) happens behind our back.
"""

from __future__ import annotations

import fnmatch
import gzip
import http.client
import json
import re
import time
import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from common import Json

#: What pip sends: JSON preferred, HTML accepted.
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
)
HTML_ACCEPT = "text/html"
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"


def fetch(
    url: str, headers: dict[str, str] | None = None, *, method: str = "GET", timeout: float = 120
) -> tuple[int, dict[str, str], bytes]:
    """One request; status, lower-cased headers and the raw (still encoded) body."""
    parts = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.netloc, timeout=timeout)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def decoded(headers: dict[str, str], body: bytes) -> bytes:
    """The body with its Content-Encoding undone (gzip only)."""
    return gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body


def page_files(url: str) -> list[str]:
    """The absolute file URLs a project page lists (JSON when offered, else the HTML links)."""
    status, headers, body = fetch(url, {"Accept": PIP_ACCEPT, "Accept-Encoding": "gzip"})
    if status != 200:
        raise RuntimeError(f"{url}: HTTP {status}")
    body = decoded(headers, body)
    if "json" in headers.get("content-type", ""):
        return [urllib.parse.urljoin(url, f["url"]) for f in json.loads(body)["files"]]
    hrefs = [h.decode() for h in re.findall(rb'href="([^"]+)"', body)]
    return [urllib.parse.urljoin(url, h.split("#", 1)[0]) for h in hrefs]


def find_file(url: str, pattern: str) -> str:
    """The URL of the file matching ``pattern`` on the page at ``url`` (each contender has its own URLs)."""
    for file_url in page_files(url):
        if fnmatch.fnmatch(urllib.parse.unquote(file_url.rsplit("/", 1)[-1]), pattern):
            return file_url
    raise RuntimeError(f"no file matching {pattern} on {url}")


def page_info(url: str, headers: dict[str, str]) -> Json:
    """One request: what the page looks like (status, type, sizes, files, encoding).

    Recorded beside every load so that the numbers compare like with like: the same page, the same
    encoding, the same number of files.
    """
    start = time.perf_counter()
    status, got, body = fetch(url, headers)
    elapsed = round((time.perf_counter() - start) * 1000, 2)
    info: Json = {
        "status": status,
        "ms": elapsed,
        "content_type": got.get("content-type"),
        "content_encoding": got.get("content-encoding"),
        "bytes_sent": len(body),
        "cache": got.get("x-pipdepot-cache"),
        "view": got.get("x-pipdepot-view"),
    }
    if status == 200:
        text = decoded(got, body)
        info["bytes"] = len(text)
        if "json" in (got.get("content-type") or ""):
            info["files"] = len(json.loads(text)["files"])
        else:
            info["files"] = text.count(b"<a ")
    return info
