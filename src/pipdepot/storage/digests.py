"""The sha256 of a file, read in chunks: the one hash every file of the mirror is known by."""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from pipdepot.storage.store import Store, StoreKey

__all__ = ["file_sha256", "stored_sha256"]

_CHUNK = 1 << 20


def __dir__() -> list[str]:
    return __all__


def file_sha256(path: Path) -> tuple[str, int]:
    """The file's sha256 (hex) and size.

    :raises OSError: it cannot be read.
    """
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


async def stored_sha256(store: Store, key: StoreKey) -> str | None:
    """The sha256 of a stored file (read from its local path, or streamed); ``None``: not readable."""
    path = store.local_path(key)
    try:
        if path is not None:
            return (await asyncio.to_thread(file_sha256, path))[0]
        digest = hashlib.sha256()
        async for chunk in store.stream(key):
            digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()
