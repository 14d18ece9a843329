"""What a killed writer left between moving a file into the tree and recording it, settled.

Before that move a download leaves a commit marker in its process's spool, naming the file and
its entry (:mod:`download`); a dead process's spool is adopted by the next writer
(:mod:`pipdepot.storage.spool`), which settles each marker when it opens the mirror: the file
is recorded if it is there and verified, else removed with its siblings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING

from pipdepot.core.project import PROVENANCE_SUFFIX, LocalFile, project_of_path
from pipdepot.storage.digests import file_sha256
from pipdepot.storage.store import COMMIT_MARKER, StoreKey

if TYPE_CHECKING:
    from pipdepot.server.copies import LocalCopies
    from pipdepot.server.localfiles import LocalFiles
    from pipdepot.server.records import Records
    from pipdepot.server.siblings import Siblings
    from pipdepot.server.tree import Tree
    from pipdepot.storage.store import Store

__all__ = ["Recovery"]

logger = logging.getLogger(__name__)


def __dir__() -> list[str]:
    return __all__


class Recovery:
    """Settles the commit markers of killed writers, then the root index they left pending."""

    def __init__(  # noqa: PLR0913 (the parts a settled file goes through, by keyword)
        self,
        store: Store,
        *,
        records: Records,
        tree: Tree,
        local_files: LocalFiles,
        siblings: Siblings,
        copies: LocalCopies,
    ) -> None:
        self.store = store
        self.records = records
        self.tree = tree
        self.local_files = local_files
        self.siblings = siblings
        self.copies = copies

    async def recover(self) -> None:
        """Settle what killed writers left between moving a file into the tree and recording it.

        Their commit markers (adopted by this process's spool) name the file and its entry: a
        file that is there with the announced sha256 is recorded now, so nothing verified is lost;
        anything else is removed. A marker from before markers named entries: removed if unrecorded.
        """
        for marker in sorted(self.store.spool_directory().glob(f"{COMMIT_MARKER}*")):
            text = marker.read_text(encoding="utf-8", errors="replace")
            try:
                await self._settle(text)
            except (ValueError, KeyError, TypeError, OSError) as exc:
                logger.warning("commit marker %s not settled: %s", marker.name, exc)
            marker.unlink()
        await self.tree.resume()

    async def _settle(self, text: str) -> None:
        described = json.loads(text) if text.startswith("{") else {"key": text}
        key = StoreKey(described["key"])
        name = project_of_path(key)
        record = await self.records.get(name, recheck=True) if name is not None else None
        filename = key.rsplit("/", 1)[-1]
        if record is not None and filename in record.local:
            return
        entry, sha256 = described.get("entry"), described.get("sha256")
        path = await self.copies.local_copy(key) if isinstance(entry, dict) and sha256 else None
        if name is not None and isinstance(entry, dict) and path is not None:
            digest, size = await asyncio.to_thread(file_sha256, path)
            if digest == sha256:
                metadata = await self.siblings.store_metadata(entry, path)
                await self.local_files.record(name, entry, LocalFile(sha256, size, metadata))
                logger.warning("recorded %s: moved into the tree, then its writer was killed", key)
                return
        with contextlib.suppress(ValueError):  # not a key: nothing to remove
            await self.store.delete(StoreKey(key + ".metadata"))
            await self.store.delete(StoreKey(key + PROVENANCE_SUFFIX))
            await self.store.delete(key)
            logger.warning("removed %s: moved into the tree, then killed before it was recorded", key)
