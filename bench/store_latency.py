"""Small-object latency of the two stores: the filesystem against S3 (a local SeaweedFS) via obstore.

Run: ``.venv/bin/python bench/store_latency.py [--count N]``. It starts its own SeaweedFS (from
the test extra's ``weed``) on loopback ports and stops it by PID. Client and server share the
machine's cores, so the S3 numbers are an upper bound on what a dedicated store would cost.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipdepot.storage.filesystem import FilesystemStore
from pipdepot.storage.locate import open_store
from pipdepot.storage.store import Store, StoreKey
from tests.seaweed import Seaweed

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

_SMALL = 5 * 1024
_LARGE = 32 * 1024 * 1024


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50_ms": round(pick(0.5), 2), "p90_ms": round(pick(0.9), 2), "p99_ms": round(pick(0.99), 2)}


async def _timed(count: int, action: Callable[[int], Awaitable[object]]) -> list[float]:
    samples = []
    for n in range(count):
        started = time.perf_counter()
        await action(n)
        samples.append(time.perf_counter() - started)
    return samples


async def _concurrent_rate(store: Store, keys: list[StoreKey], tasks: int) -> float:
    queue = list(keys)

    async def worker() -> None:
        while queue:
            await store.read(queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return round(len(keys) / (time.perf_counter() - started))


async def measure(store: Store, count: int) -> dict[str, object]:
    """Sequential create-only puts, reads, stats of 5 KB; 16 concurrent readers; one 32 MiB file."""
    data = os.urandom(_SMALL)
    digest = hashlib.sha256(data).hexdigest()
    keys = [StoreKey(f"p{n % 50}/file-{n}.whl") for n in range(count)]
    puts = await _timed(count, lambda n: store.put(keys[n], data, sha256=digest, create=True))
    reads = await _timed(count, lambda n: store.read(keys[n]))
    stats = await _timed(count, lambda n: store.stat(keys[n]))
    rate = await _concurrent_rate(store, keys, 16)
    large = store.spool_directory() / "large"
    large.write_bytes(os.urandom(_LARGE))
    started = time.perf_counter()
    await store.put(StoreKey("big/large.whl"), large, create=True)
    put_large = time.perf_counter() - started
    started = time.perf_counter()
    async for _ in store.stream(StoreKey("big/large.whl")):
        pass
    stream_large = time.perf_counter() - started
    return {
        "put_5k_create": _summary(puts),
        "read_5k": _summary(reads),
        "stat": _summary(stats),
        "read_5k_16_concurrent_per_s": rate,
        "put_32MiB_MB_s": round(_LARGE / put_large / 1e6),
        "stream_32MiB_MB_s": round(_LARGE / stream_large / 1e6),
    }


def main() -> None:
    """Measure both stores and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300)
    count = parser.parse_args().count
    with tempfile.TemporaryDirectory(prefix="store-bench-") as scratch:
        root = Path(scratch)
        server = Seaweed(root / "seaweed")
        server.start()
        try:
            fs_store = FilesystemStore(root / "mirror")
            s3_store = open_store(
                server.location("bench"), scratch=root / "spool", environ={**server.env, "HOME": scratch}
            )

            async def both() -> dict[str, object]:
                results = {"filesystem": await measure(fs_store, count), "s3": await measure(s3_store, count)}
                await fs_store.close()
                await s3_store.close()
                return results

            results = asyncio.run(both())
        finally:
            server.stop()
    print(json.dumps({"count": count, "cpus": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
