"""A local path for a stored file, for what cannot read a store: builds, exports, recovery.

A directory store has the file itself; an object store's is copied into the process's
spool, and the copies are removed when the mirror closes.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipdepot.storage.store import Store, StoreKey

__all__ = ["LocalCopies"]


def __dir__() -> list[str]:
    return __all__


class LocalCopies:
    """Local paths for stored files; copies of an object store's, kept until :meth:`close`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        #: Where files of an object store are copied for what needs a local path (builds, export).
        self._copies: Path | None = None

    async def local_copy(self, key: StoreKey) -> Path | None:
        """A local path with the bytes of ``key``; ``None``: no such file.

        The file itself, or a copy of an object store's, removed when the mirror closes.
        """
        path = self.store.local_path(key)
        if path is not None:
            return path if path.is_file() else None
        if self._copies is None:
            self._copies = Path(tempfile.mkdtemp(dir=self.store.spool_directory(), prefix="copies-"))
        copy = self._copies / str(len(list(self._copies.iterdir()))) / key.rsplit("/", 1)[-1]
        copy.parent.mkdir()
        try:
            with copy.open("wb") as stream:
                async for chunk in self.store.stream(key):
                    await asyncio.to_thread(stream.write, chunk)
        except FileNotFoundError:
            shutil.rmtree(copy.parent, ignore_errors=True)
            return None
        return copy

    def close(self) -> None:
        """Remove the copies."""
        if self._copies is not None:
            shutil.rmtree(self._copies, ignore_errors=True)
