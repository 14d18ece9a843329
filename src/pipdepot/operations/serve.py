"""``pipdepot serve``: wire the store, the upstream client and the mirror to an HTTP server."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from pipdepot.core.systemd import notify, stderr_is_journal
from pipdepot.core.urls import redact_url
from pipdepot.errors import ConfigError
from pipdepot.operations.session import open_mirror
from pipdepot.server.tokens import Tokens
from pipdepot.server.upload import Uploads
from pipdepot.server.web import create_server

if TYPE_CHECKING:
    from pipdepot.settings import ServeSettings

__all__ = ["serve"]

logger = logging.getLogger("pipdepot")

#: glibc's ``mallopt`` parameters, and their values here: blocks from 1 MiB up are mapped apart and
#: unmapped when freed; the heap is given back once 16 MiB at its top are free.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1024 * 1024
_TRIM_THRESHOLD = 16 * 1024 * 1024


#: Seconds an upload has to arrive whole: 100 MiB at 200 KiB/s, and a slow client is not held for ever.
UPLOAD_DEADLINE = 600.0


def __dir__() -> list[str]:
    return __all__


def serve(settings: ServeSettings) -> None:
    """Run the mirror until SIGINT or SIGTERM.

    :raises ConfigError: the mirror directory or the address cannot be used.
    """
    _unmap_large_blocks()
    asyncio.run(_serve(settings))


def _unmap_large_blocks() -> None:
    """Keep glibc giving large freed blocks back to the system, without churning on small ones.

    glibc raises its mmap threshold each time a mapped block is freed; after the first large
    upstream page (pydantic-core: 6 MB), every page body lands in the heap and the heap stays at
    its high-water mark: 20-25 MB of a cold install's peak RSS, measured. A fixed threshold stops
    that, but fixes the trim threshold too, and a threshold below the size of a served page makes
    every response map and unmap its send buffer (numpy's page under load: 10k -> 3k requests/s,
    measured): hence 1 MiB, and a trim threshold well above it. Nothing changes off glibc, or when
    the user tuned it already.
    """
    if sys.platform != "linux" or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)


async def _serve(settings: ServeSettings) -> None:
    async with open_mirror(
        settings.mirror_dir,
        purpose="pipdepot serve",
        writer=True,
        upstreams=() if settings.offline else settings.upstreams,
        upstream_timeout=settings.upstream_timeout,
        upstream_deadline=settings.upstream_deadline,
        upstream_min_rate=settings.upstream_min_rate,
        ttl=settings.ttl,
        read_only_ok=settings.offline,
    ) as mirror:
        mirror.start()
        describe: dict[str, object] = {
            "mirror_dir": str(settings.mirror_dir),
            "upstreams": [redact_url(u) for u in settings.upstreams],
            "offline": settings.offline,
            "ttl": settings.ttl,
            "upload_limit": settings.upload_limit,
            "reads_need_token": settings.reads_need_token,
        }
        tokens = Tokens(mirror.store)
        server = create_server(
            mirror,
            describe=describe,
            access_log=logging.getLogger("pipdepot.access"),
            timestamps=not stderr_is_journal(os.environ),
            uploads=Uploads(mirror, tokens, max_size=settings.upload_limit, deadline=UPLOAD_DEADLINE),
            readers=tokens if settings.reads_need_token else None,
        )
        runner = web.ServerRunner(server, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from exc
        _announce(settings, _process_age())
        local = settings.mirror_dir if isinstance(settings.mirror_dir, Path) else None
        if settings.offline and local is not None and not os.access(local, os.W_OK):
            logger.info("the mirror directory cannot be written: serving it read-only")
        notify("READY=1", os.environ)  # systemd's Type=notify: started units wait for this
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        logger.info("stopping")
        notify("STOPPING=1", os.environ)
        await runner.cleanup()


def _process_age() -> float:
    """Seconds since this process started (interpreter start-up included), from /proc."""
    try:
        stat = Path("/proc/self/stat").read_text(encoding="ascii")
        uptime = float(Path("/proc/uptime").read_text(encoding="ascii").split()[0])
    except OSError:
        return 0.0
    started = int(stat.rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
    return max(0.0, uptime - started)


def _announce(settings: ServeSettings, seconds: float) -> None:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    logger.info("listening on http://%s:%d/simple/ (ready in %.2f s)", host, settings.port, seconds)
    logger.info("storing in %s", settings.mirror_dir)
    if settings.config_file is not None:
        logger.info("settings from %s", settings.config_file)
    if settings.offline:
        logger.info("offline: serving only what is cached, never contacting upstream")
    else:
        logger.info(
            "upstreams, first that has a project serves it: %s", " ".join(map(redact_url, settings.upstreams))
        )
