"""A mirror opened for one command: store, upstream client, and an index on loopback for uv.

``sync`` and ``check`` hand requirements to uv's resolver, which speaks HTTP;
they serve their own mirror to it on 127.0.0.1 at a free port, with the same
app ``pipdepot serve`` runs, so every file and metadata file it asks for goes
through the one code path that fills the mirror.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from pipdepot import __version__
from pipdepot.errors import ConfigError
from pipdepot.server.metrics import Metrics
from pipdepot.server.mirror import Mirror
from pipdepot.server.upstream import UpstreamClient
from pipdepot.server.web import create_server
from pipdepot.storage.access import ReadOnlyMirrorError, require_writable
from pipdepot.storage.filesystem import FilesystemStore
from pipdepot.storage.locate import open_location

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from pipdepot.server.mirror import View
    from pipdepot.storage.locate import MirrorLocation
    from pipdepot.storage.store import Store

__all__ = ["local_index", "open_mirror"]

logger = logging.getLogger(__name__)


def __dir__() -> list[str]:
    return __all__


@contextlib.asynccontextmanager
async def open_mirror(  # noqa: PLR0913 (keyword-only settings of one mirror)
    mirror_dir: MirrorLocation,
    *,
    purpose: str,
    writer: bool,
    upstreams: tuple[str, ...] = (),
    upstream_timeout: float = 10.0,
    upstream_deadline: float = 30.0,
    upstream_min_rate: int = 8 * 1024,
    ttl: float = 600.0,
    fresh_after: float = 0.0,
    view: View | None = None,
    read_only_ok: bool = False,
) -> AsyncIterator[Mirror]:
    """The mirror at ``mirror_dir``, online when given ``upstreams``.

    A ``writer`` (``purpose`` names it) works beside any others on the same mirror; a reader
    must change nothing (offline, and ``view`` shapes what its pages list). With ``read_only_ok`` (an offline
    server), a directory that cannot be written at all is opened as a reader: read-only media
    and read-only bind mounts are how an air-gapped machine gets its mirror.

    :raises ConfigError: the directory is unusable (for a writer: cannot be written).
    """
    async with contextlib.AsyncExitStack() as stack:
        if writer and isinstance(mirror_dir, Path):
            try:
                require_writable(mirror_dir)
                logger.debug("%s writes to %s (beside any other writers)", purpose, mirror_dir)
            except ReadOnlyMirrorError:
                if not read_only_ok or upstreams:
                    raise
                writer = False
        store = _open_store(mirror_dir, writer=writer)
        stack.push_async_callback(store.close)
        client = None
        if upstreams:
            connector = aiohttp.TCPConnector(limit=64, limit_per_host=32, ttl_dns_cache=300)
            session = await stack.enter_async_context(
                aiohttp.ClientSession(connector=connector, headers={"User-Agent": f"pipdepot/{__version__}"})
            )
            client = UpstreamClient(
                session, timeout=upstream_timeout, deadline=upstream_deadline, min_rate=upstream_min_rate
            )
        mirror = Mirror(
            store, client, upstreams, ttl=ttl, metrics=Metrics(), fresh_after=fresh_after, view=view
        )
        if writer:
            await mirror.recover()
        try:
            yield mirror
        finally:
            await mirror.aclose()


def _open_store(mirror_dir: MirrorLocation, *, writer: bool) -> Store:
    if not isinstance(mirror_dir, Path):
        return open_location(mirror_dir)
    if not writer and not mirror_dir.is_dir():
        raise ConfigError(f"mirror directory {mirror_dir} does not exist")
    try:
        return FilesystemStore(mirror_dir)
    except OSError as exc:
        raise ConfigError(f"mirror directory {mirror_dir}: {exc.strerror}") from exc


@contextlib.asynccontextmanager
async def local_index(mirror: Mirror) -> AsyncIterator[str]:
    """Serve ``mirror`` on 127.0.0.1 at a free port; yields its ``/simple/`` URL."""
    runner = web.ServerRunner(create_server(mirror, describe={}, access_log=None), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    try:
        await site.start()
        server = site._server  # noqa: SLF001 (aiohttp exposes the bound port only here)
        assert server is not None  # noqa: S101 (started just above)
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        await _reachable(port)
        yield f"http://127.0.0.1:{port}/simple/"
    finally:
        await runner.cleanup()


async def _reachable(port: int) -> None:
    """Fail clearly when loopback is down (a fresh network namespace), instead of in uv's words."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout=5)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(
            f"cannot reach 127.0.0.1, where pipdepot serves the mirror to uv's resolver: {exc}",
            hint="bring the loopback interface up (in a network namespace: ip link set lo up)",
        ) from None
    writer.close()
