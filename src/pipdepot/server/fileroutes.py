"""Files: from the store (sendfile for a directory, one streamed Range for a bucket), or downloading.

A file not in the store is downloaded once and streamed to every client as it arrives; a small
Range of it is passed through from upstream; its ``.metadata`` and ``.provenance`` siblings are
answered from the store or fetched once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from pipdepot.core.project import PROVENANCE_SUFFIX
from pipdepot.errors import UpstreamError
from pipdepot.server.responses import CACHE_HEADER, PAGE_CACHE, bad_gateway, file_headers, text
from pipdepot.storage.store import IntegrityError

if TYPE_CHECKING:
    from aiohttp.abc import AbstractStreamWriter
    from aiohttp.web_request import BaseRequest

    from pipdepot.core.names import NormalizedName
    from pipdepot.core.project import FileEntry
    from pipdepot.server.download import Download
    from pipdepot.server.mirror import FileHit, Mirror

__all__ = ["FileRoutes"]

logger = logging.getLogger("pipdepot.access")


def __dir__() -> list[str]:
    return __all__


class FileRoutes:
    """``/packages/...``: files and their siblings."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror

    async def file(self, request: BaseRequest, path: str) -> web.StreamResponse:
        """A file, its ``.metadata`` or its ``.provenance``."""
        sibling = next((s for s in (".metadata", PROVENANCE_SUFFIX) if path.endswith(s)), "")
        found = await self.mirror.find(path.removesuffix(sibling))
        if found is None:
            return text(404, "no such file")
        name, entry = found
        if sibling == ".metadata":
            return await self.metadata(name, entry)
        if sibling:
            return await self.provenance(entry)
        hit = await self.mirror.local_file(name, entry)
        if hit is not None:
            return await self.send(request, hit, "hit")
        return await self.uncached(request, path, name, entry)

    async def uncached(  # noqa: PLR0911 (one answer per case)
        self, request: BaseRequest, path: str, name: NormalizedName, entry: FileEntry
    ) -> web.StreamResponse:
        """A file not in the store: its size, a passed-through range, or the download as it runs."""
        if self.mirror.offline:
            return text(404, "not cached, and offline")
        size = entry.get("size")
        if request.method == "HEAD" and isinstance(size, int):  # answered without fetching anything
            return web.Response(headers={**file_headers("miss"), "Content-Length": str(size)})
        if "Range" in request.headers and not self.mirror.downloading(entry):
            passed = await self.pass_range(request, entry)
            if passed is not None:
                return passed
        download = self.mirror.download(name, entry)
        if download is None:
            return text(404, "not available from this mirror")
        if request.method == "HEAD" or "Range" in request.headers:
            await download.done.wait()
            hit = await self.mirror.local_file(name, entry)
            if hit is None:
                return bad_gateway(f"download of {entry['filename']} failed", download.error)
            return await self.send(request, hit, "miss")
        return await self.stream(request, path, download)

    async def pass_range(self, request: BaseRequest, entry: FileEntry) -> web.StreamResponse | None:
        """A small Range of an uncached file, passed through from upstream (``pass``); not kept."""
        if request.method != "GET" or "If-Range" in request.headers:
            return None
        try:
            partial = await self.mirror.partial(entry, request.headers["Range"])
        except UpstreamError as exc:
            return bad_gateway(f"upstream did not answer for {entry['filename']}", exc)
        if partial is None:
            return None
        headers = {**file_headers("pass"), "Content-Type": "application/octet-stream"}
        if partial.content_range:
            headers["Content-Range"] = partial.content_range
        self.mirror.metrics.bytes_served += len(partial.body)
        return web.Response(status=partial.status, body=partial.body, headers=headers)

    async def stream(self, request: BaseRequest, path: str, download: Download) -> web.StreamResponse:
        """Send a file while it downloads; cut the connection if it fails verification."""
        response = web.StreamResponse(headers=file_headers("miss"))
        if download.size is not None:
            response.content_length = download.size
        await response.prepare(request)
        try:
            async for chunk in download.follow():
                await response.write(chunk)
                self.mirror.metrics.bytes_served += len(chunk)
        except (UpstreamError, IntegrityError, OSError) as exc:
            logger.warning("cut %s short: %s", path, exc)
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
        return response

    async def metadata(self, name: NormalizedName, entry: FileEntry) -> web.StreamResponse:
        """A file's PEP 658 metadata: stored, fetched, or extracted from the file."""
        cached = await self.mirror.metadata_cached(entry)
        try:
            data = await self.mirror.metadata(name, entry)
        except (UpstreamError, IntegrityError) as exc:
            return bad_gateway(f"metadata of {entry['filename']} unavailable", exc)
        if data is None:
            return text(404, "no metadata for this file")
        headers = {**file_headers("hit" if cached else "miss"), "Content-Type": "application/octet-stream"}
        return web.Response(body=data, headers=headers)

    async def provenance(self, entry: FileEntry) -> web.StreamResponse:
        """A file's PEP 740 provenance, from the store (offline too) or fetched from upstream once."""
        try:
            found = await self.mirror.provenance(entry)
        except UpstreamError as exc:
            return bad_gateway(f"provenance of {entry['filename']} unavailable", exc)
        if found is None:
            return text(404, "no provenance for this file")
        data, kept = found
        self.mirror.metrics.bytes_served += len(data)
        # not immutable, unlike the file: PEP 740 lets an index add attestations later
        headers = {CACHE_HEADER: "hit" if kept else "miss", "Cache-Control": PAGE_CACHE}
        return web.Response(body=data, headers=headers, content_type="application/json")

    async def send(self, request: BaseRequest, hit: FileHit, cache: str) -> web.StreamResponse:
        """A stored file, with Range and HEAD.

        A local file goes by the OS's zero-copy path (sendfile, If-Range too); an object store's is streamed.
        """
        if hit.path is None:
            return await self.send_stored(request, hit, cache)
        self.mirror.metrics.bytes_served += hit.size * (request.method == "GET")
        response = _FileResponse(hit.path, headers=file_headers(cache))
        response.content_type = "application/octet-stream"
        return response

    async def send_stored(self, request: BaseRequest, hit: FileHit, cache: str) -> web.StreamResponse:
        """Stream a file of an object store: whole, or one ``Range`` (an ``If-Range`` gets it whole)."""
        headers = {**file_headers(cache), "Content-Type": "application/octet-stream"}
        start, end, status = 0, hit.size, 200
        if "Range" in request.headers and "If-Range" not in request.headers:
            try:
                wanted = request.http_range
            except ValueError:
                wanted = slice(None, None)
            start, end, _ = wanted.indices(hit.size)
            if start >= end:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{hit.size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{hit.size}"
        headers["Content-Length"] = str(end - start)
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        try:
            async for chunk in self.mirror.store.stream(hit.key, start, end):
                await response.write(chunk)
                self.mirror.metrics.bytes_served += len(chunk)
        except OSError as exc:
            logger.warning("cut %s short: %s", hit.key, exc)
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
        return response


class _FileResponse(web.FileResponse):
    """aiohttp's file response, plus If-Range by entity tag (aiohttp compares it only as a date)."""

    async def prepare(self, request: BaseRequest) -> AbstractStreamWriter | None:
        """Drop Range when If-Range names another version; drop If-Range when it names this one."""
        if_range = request.headers.get("If-Range", "")
        if if_range.startswith(('"', "W/")):
            stat = self._path.stat()
            ours = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
            drop = "if-range" if if_range == ours else "range"
            request = request.clone(headers={k: v for k, v in request.headers.items() if k.lower() != drop})
        return await super().prepare(request)
