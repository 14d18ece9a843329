"""A real upstream index on 127.0.0.1 for tests, serving wheels the tests build.

It speaks PEP 691 JSON or PEP 503 HTML only (``mode``), lays files out like
PyPI (``/packages/xx/yy/<rest of sha256>/<file>``), and can be told to fail,
hang, answer garbage or serve bytes that do not match the hash it announces.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import json
import threading
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from aiohttp import web
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

Mode = Literal["json", "html"]
Behaviour = Literal["ok", "fail", "hang", "garbage", "wrong-hash"]


@dataclass
class Dist:
    path: Path
    sha256: str
    url_path: str
    requires_python: str | None = None
    yanked: str | bool = False
    metadata: bytes | None = None


@dataclass
class FakeUpstream:
    mode: Mode = "json"
    behaviour: Behaviour = "ok"
    #: Upstream offers PEP 658 metadata for wheels.
    with_metadata: bool = False
    #: Seconds to sleep between 64 KiB chunks of a file (to make downloads last).
    file_delay: float = 0.0
    #: Seconds to wait before answering a project page (a slow upstream).
    page_delay: float = 0.0
    #: Answer Range requests with 206, as PyPI's file host does; else send the whole file.
    ranges: bool = True
    projects: dict[str, list[Dist]] = field(default_factory=dict)
    #: PEP 708 by project: ``meta.tracks``, ``alternate-locations`` (JSON); ``pypi:`` meta elements (HTML).
    tracks: dict[str, list[str]] = field(default_factory=dict)
    alternate_locations: dict[str, list[str]] = field(default_factory=dict)
    #: PEP 740 provenance documents, by filename, served at ``/integrity/<filename>/provenance``
    #: (not beside the file, as PyPI's are not).
    provenances: dict[str, bytes] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    range_hits: Counter[str] = field(default_factory=Counter)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def add(self, path: Path, *, requires_python: str | None = None, yanked: str | bool = False) -> Dist:
        if path.name.endswith(".whl"):
            name = canonicalize_name(parse_wheel_filename(path.name)[0])
        else:
            name = canonicalize_name(parse_sdist_filename(path.name)[0])
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        metadata = _wheel_metadata(path) if path.name.endswith(".whl") else None
        dist = Dist(
            path,
            sha,
            f"/packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{path.name}",
            requires_python,
            yanked,
            metadata,
        )
        self.projects.setdefault(name, []).append(dist)
        return dist

    def file_hits(self) -> int:
        return sum(count for path, count in self.hits.items() if path.startswith("/packages/"))

    # -- serving ---------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] += 1
        await asyncio.sleep(self.page_delay)
        if (problem := await self._misbehave()) is not None:
            return problem
        name = request.match_info["name"]
        if name not in self.projects:
            return web.Response(status=404, text="not found")
        dists = self.projects[name]
        if self.mode == "json":
            files = []
            for d in dists:
                entry: dict[str, object] = {
                    "filename": d.path.name,
                    "url": d.url_path,
                    "hashes": {"sha256": d.sha256},
                    "requires-python": d.requires_python,
                    "size": d.path.stat().st_size,
                    "upload-time": "2024-01-01T00:00:00.000000Z",
                    "yanked": d.yanked,
                    "x-extension": "kept",
                }
                if self.with_metadata and d.metadata is not None:
                    entry["core-metadata"] = {"sha256": hashlib.sha256(d.metadata).hexdigest()}
                entry.update(self._provenance_key(d))
                files.append(entry)
            versions = sorted(
                {str(_version_of(d.path.name)) for d in dists}, key=Version
            )  # as PyPI lists them
            page = {"meta": {"api-version": "1.1"}, "name": name, "files": files, "versions": versions}
            body: dict[str, object] = {**page, **self._pep708_keys(name)}
            return web.Response(
                body=json.dumps(body).encode(),
                content_type="application/vnd.pypi.simple.v1+json",
                headers={"ETag": f'"{len(files)}-{name}"'},
            )
        links = []
        for d in dists:
            attrs = f'href="{d.url_path}#sha256={d.sha256}"'
            if d.requires_python:
                attrs += f' data-requires-python="{html.escape(d.requires_python)}"'
            if d.yanked:
                attrs += (
                    " data-yanked" if d.yanked is True else f' data-yanked="{html.escape(str(d.yanked))}"'
                )
            if self.with_metadata and d.metadata is not None:
                attrs += f' data-core-metadata="sha256={hashlib.sha256(d.metadata).hexdigest()}"'
            attrs += self._provenance_attribute(d)
            links.append(f"<a {attrs}>{d.path.name}</a><br>")
        head = self._pep708_metas(name)
        text = f"<!DOCTYPE html><html><head>{head}</head><body>" + "\n".join(links) + "</body></html>"
        return web.Response(text=text, content_type="text/html")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] += 1
        if (problem := await self._misbehave()) is not None:
            return problem
        wanted = request.path.removesuffix(".metadata")
        for dists in self.projects.values():
            for d in dists:
                if d.url_path != wanted:
                    continue
                if request.path.endswith(".metadata"):
                    return web.Response(body=d.metadata or b"", content_type="application/octet-stream")
                data = d.path.read_bytes()
                if self.behaviour == "wrong-hash":
                    data = data[:-1] + bytes([data[-1] ^ 0xFF])
                if self.ranges and "Range" in request.headers:
                    return self._range(request, data)
                response = web.StreamResponse()
                response.content_length = len(data)
                await response.prepare(request)
                for start in range(0, len(data), 65536):
                    await response.write(data[start : start + 65536])
                    if self.file_delay:
                        await asyncio.sleep(self.file_delay)
                await response.write_eof()
                return response
        return web.Response(status=404)

    def _pep708_keys(self, name: str) -> dict[str, object]:
        keys: dict[str, object] = {}
        if name in self.tracks:
            keys["meta"] = {"api-version": "1.4", "tracks": self.tracks[name]}
        if name in self.alternate_locations:
            keys["alternate-locations"] = self.alternate_locations[name]
        return keys

    def _pep708_metas(self, name: str) -> str:
        metas = [("tracks", url) for url in self.tracks.get(name, [])]
        metas += [("alternate-locations", url) for url in self.alternate_locations.get(name, [])]
        return "".join(f'<meta name="pypi:{key}" content="{html.escape(url)}">' for key, url in metas)

    def _provenance_key(self, d: Dist) -> dict[str, object]:
        """Absolute in JSON, relative in HTML: both are allowed."""
        if d.path.name not in self.provenances:
            return {}
        return {"provenance": f"http://127.0.0.1:{self.port}{_provenance_path(d.path.name)}"}

    def _provenance_attribute(self, d: Dist) -> str:
        if d.path.name not in self.provenances:
            return ""
        return f' data-provenance="{_provenance_path(d.path.name)}"'

    async def _provenance(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] += 1
        document = self.provenances.get(request.match_info["filename"])
        if document is None:
            return web.Response(status=404)
        return web.Response(body=document, content_type="application/json")

    def _range(self, request: web.Request, data: bytes) -> web.StreamResponse:
        self.range_hits[request.path] += 1
        try:
            start, stop, _ = request.http_range.indices(len(data))
        except ValueError:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
        if start >= stop:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
        headers = {"Content-Range": f"bytes {start}-{stop - 1}/{len(data)}"}
        return web.Response(status=206, body=data[start:stop], headers=headers)

    async def _misbehave(self) -> web.StreamResponse | None:
        if self.behaviour == "fail":
            return web.Response(status=503, text="down for maintenance")
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        if self.behaviour == "garbage":
            return web.Response(
                body=b"\x00\xffnot a page{", content_type="application/vnd.pypi.simple.v1+json"
            )
        return None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> FakeUpstream:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_get("/simple/{name}/", self._page)
            app.router.add_get("/packages/{tail:.*}", self._file)
            app.router.add_get("/integrity/{filename}/provenance", self._provenance)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            loop.run_until_complete(site.start())
            server = site._server  # noqa: SLF001 (the port chosen by the kernel)
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    @contextlib.contextmanager
    def serving(self, directory: Path) -> Iterator[FakeUpstream]:
        """Every file of ``directory`` offered, the server started, and stopped afterwards."""
        for path in sorted(directory.iterdir()):
            self.add(path)
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop listening: connections are refused from now on."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None


def _wheel_metadata(path: Path) -> bytes | None:
    """The wheel's METADATA; ``None`` for a hostile wheel (too large, undecodable): nothing offered."""
    with zipfile.ZipFile(path) as wheel:
        member = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        if wheel.getinfo(member).file_size > 1024 * 1024:
            return None
        try:
            return wheel.read(member)
        except (zipfile.BadZipFile, NotImplementedError, zlib.error):
            return None


def _provenance_path(filename: str) -> str:
    return f"/integrity/{filename}/provenance"


def _version_of(filename: str) -> Version:
    if filename.endswith(".whl"):
        return parse_wheel_filename(filename)[1]
    return parse_sdist_filename(filename)[1]
