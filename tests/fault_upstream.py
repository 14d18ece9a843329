"""A fault-injecting upstream index on 127.0.0.1: a raw-socket HTTP server serving real wheels.

Raw sockets, not a web framework, so it can break HTTP itself: answer garbage instead of a
status line, lie in ``Content-Length``, close half-way, trickle a byte a second. Pages (PEP 691
JSON) and files (PyPI's ``/packages/xx/yy/<rest of sha256>/<file>`` layout) each have their own
switchable fault, so a test caches what it needs and then breaks one side.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from packaging.utils import canonicalize_name, parse_wheel_filename

if TYPE_CHECKING:
    from pathlib import Path

Fault = Literal[
    "ok",
    "refuse",  # the port is closed: connections are refused
    "reset",  # accepted, then reset (RST) before any answer
    "hang",  # the request is read, nothing is ever answered
    "trickle",  # a correct answer, one byte every `trickle_interval` seconds
    "truncate",  # Content-Length says all, half the body comes, then the connection closes
    "overlong",  # a body longer than the file upstream announced (no Content-Length, closed at the end)
    "lying-length",  # Content-Length smaller than the body: the answer stops short of the file
    "wrong-hash",  # the right size, one byte changed
    "garbage",  # no HTTP at all: 100 KB of bytes instead of a status line
    "garbage-page",  # a 200 whose body is not a page
    "5xx",  # 503 to every request
    "redirect-loop",  # 302 to itself, for ever
    "gzip-bomb",  # Content-Encoding gzip whose body inflates to 1 GiB
]

#: The marker that fills a garbage answer: a 502 must never carry it.
GARBAGE_MARKER = b"GARBAGE-FROM-UPSTREAM-"
_GARBAGE = (GARBAGE_MARKER * (100 * 1024 // len(GARBAGE_MARKER) + 1))[: 100 * 1024]
_HEAD_LIMIT = 64 * 1024


@dataclass
class FaultUpstream:
    """Projects of real wheels; ``page_fault`` and ``file_fault`` say how each kind of answer breaks."""

    page_fault: Fault = "ok"
    file_fault: Fault = "ok"
    trickle_interval: float = 1.0
    #: Bytes a second for a well-behaved file (0: as fast as loopback goes).
    file_rate: int = 0
    files: dict[str, Path] = field(default_factory=dict)  # url path -> wheel
    projects: dict[str, list[str]] = field(default_factory=dict)  # name -> url paths
    hits: Counter[str] = field(default_factory=Counter)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None
    _bomb: bytes | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def add(self, path: Path) -> str:
        """Serve the wheel at ``path``; its URL path."""
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        url_path = f"/packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{path.name}"
        name = canonicalize_name(parse_wheel_filename(path.name)[0])
        self.files[url_path] = path
        self.projects.setdefault(name, []).append(url_path)
        return url_path

    def file_hits(self) -> int:
        return sum(n for path, n in self.hits.items() if path.startswith("/packages/"))

    # -- answers ---------------------------------------------------------------------

    def page(self, name: str) -> bytes | None:
        if name not in self.projects:
            return None
        files = []
        for url_path in self.projects[name]:
            data = self.files[url_path].read_bytes()
            files.append(
                {
                    "filename": self.files[url_path].name,
                    "url": url_path,
                    "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
                    "size": len(data),
                    "upload-time": "2024-01-01T00:00:00.000000Z",
                }
            )
        versions = sorted({str(parse_wheel_filename(f["filename"])[1]) for f in files})  # type: ignore[arg-type]
        body = {"meta": {"api-version": "1.1"}, "name": name, "files": files, "versions": versions}
        return json.dumps(body).encode()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        path = head.split(b" ", 2)[1].decode("latin-1") if head.count(b" ") >= 2 else "/"
        self.hits[path] += 1
        is_page = path.startswith("/simple/")
        fault = self.page_fault if is_page else self.file_fault
        if is_page:
            name = path.removeprefix("/simple/").strip("/")
            body = self.page(name)
            content_type = "application/vnd.pypi.simple.v1+json"
        else:
            source = self.files.get(path)
            body = source.read_bytes() if source is not None else None
            content_type = "application/octet-stream"
        if fault == "ok" and body is None:
            await self._send(writer, 404, b"not found", "text/plain")
            return
        await self._misbehave(fault, writer, path, body or b"", content_type)

    async def _misbehave(  # noqa: C901, PLR0912 (one branch per fault: the list is the point)
        self, fault: Fault, writer: asyncio.StreamWriter, path: str, body: bytes, content_type: str
    ) -> None:
        if fault == "ok":
            await self._send(writer, 200, body, content_type, rate=self.file_rate)
        elif fault in {"refuse", "reset"}:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif fault == "hang":
            await asyncio.sleep(3600)
        elif fault == "trickle":
            await self._send(writer, 200, body, content_type, trickle=True)
        elif fault == "truncate":
            writer.write(_head(200, content_type, len(body)))
            writer.write(body[: len(body) // 2])
        elif fault == "overlong":
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nConnection: close\r\n\r\n" % content_type.encode()
            )
            writer.write(body + b"\0" * (1024 * 1024))
        elif fault == "lying-length":
            writer.write(_head(200, content_type, max(0, len(body) - 1000)))
            writer.write(body)
        elif fault == "wrong-hash":
            await self._send(writer, 200, body[:-1] + bytes([body[-1] ^ 0xFF]), content_type)
        elif fault == "garbage":
            writer.write(_GARBAGE)
        elif fault == "garbage-page":
            await self._send(writer, 200, b"\x00\xffnot a page{" + _GARBAGE, content_type)
        elif fault == "5xx":
            await self._send(writer, 503, b"down for maintenance", "text/plain")
        elif fault == "redirect-loop":
            writer.write(
                b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                % path.encode()
            )
        elif fault == "gzip-bomb":
            bomb = self.bomb()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
                % (content_type.encode(), len(bomb))
            )
            writer.write(bomb)
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        content_type: str,
        *,
        trickle: bool = False,
        rate: int = 0,
    ) -> None:
        writer.write(_head(status, content_type, len(body)))
        if trickle:
            for i in range(len(body)):
                writer.write(body[i : i + 1])
                await writer.drain()
                await asyncio.sleep(self.trickle_interval)
        elif rate:
            step = max(1, rate // 10)
            for start in range(0, len(body), step):
                writer.write(body[start : start + step])
                await writer.drain()
                await asyncio.sleep(0.1)
        else:
            writer.write(body)

    def bomb(self) -> bytes:
        """1,024 gzip members of 1 MiB of zeros each: 1 GiB inflated from about 1 MB."""
        if self._bomb is None:
            self._bomb = gzip.compress(bytes(1024 * 1024), 9) * 1024
        return self._bomb

    # -- lifecycle -------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._answer(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def start(self) -> FaultUpstream:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(self._listen())
            ready.set()
            loop.run_forever()
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.sleep(0.1))
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    async def _listen(self) -> asyncio.Server:
        server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True, limit=_HEAD_LIMIT
        )
        self.port = server.sockets[0].getsockname()[1]
        return server

    def refuse(self, *, refusing: bool) -> None:
        """Close the listening socket (connections refused), or listen again on the same port."""
        assert self._loop is not None

        async def switch() -> None:
            if refusing and self._server is not None:
                self._server.close()
                await self._server.wait_closed()
                self._server = None
            elif not refusing and self._server is None:
                self._server = await self._listen()

        asyncio.run_coroutine_threadsafe(switch(), self._loop).result(10)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None


def _head(status: int, content_type: str, length: int) -> bytes:
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "Status")
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
