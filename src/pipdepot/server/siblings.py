"""What the store keeps beside a file: its core metadata and its provenance.

- ``<file>.metadata`` (PEP 658): upstream's, fetched when first asked for; else, for a
  wheel whose upstream offers none, its METADATA read from the file as it is committed.
- ``<file>.provenance`` (PEP 740): upstream's document (:mod:`provenance`), fetched while
  the file downloads or when first asked for.

Neither ever fails its file: a wheel whose METADATA cannot be read is served without one,
a provenance that cannot be had is logged. They are removed with their file and left out
of the file census (:mod:`tree`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING

from pipdepot.core.archive import MEMBER_LIMIT, ArchiveError, wheel_metadata
from pipdepot.core.project import PROVENANCE_SUFFIX, local_path_of
from pipdepot.errors import UpstreamError
from pipdepot.server.provenance import fetch_provenance, upstream_provenance
from pipdepot.storage.store import StoreKey

if TYPE_CHECKING:
    from pathlib import Path

    from pipdepot.core.project import FileEntry
    from pipdepot.server.metrics import Metrics
    from pipdepot.server.upstream import UpstreamClient
    from pipdepot.storage.store import Store

__all__ = ["Siblings", "file_key"]

logger = logging.getLogger(__name__)


def __dir__() -> list[str]:
    return __all__


def file_key(entry: FileEntry) -> StoreKey:
    """The store key of ``entry``'s file; its siblings' keys add their suffix to it."""
    return StoreKey(local_path_of(entry["url"], entry["filename"]).removeprefix("/"))


class Siblings:
    """A file's ``.metadata`` and ``.provenance``: kept, fetched from upstream, or read from the file."""

    def __init__(self, store: Store, client: UpstreamClient | None, *, metrics: Metrics) -> None:
        self.store = store
        self.client = client
        self.metrics = metrics

    async def metadata_cached(self, entry: FileEntry) -> bool:
        """Whether the file's core metadata is in the store (served as a hit)."""
        return await self.store.stat(StoreKey(file_key(entry) + ".metadata")) is not None

    async def kept_metadata(self, entry: FileEntry) -> bytes | None:
        """The file's core metadata in the store; ``None``: not there."""
        return await self.store.read(StoreKey(file_key(entry) + ".metadata"))

    async def metadata(self, entry: FileEntry) -> bytes | None:
        """The file's core metadata: kept, or upstream's fetched now (when online) and kept.

        ``None``: none is kept and upstream declares none (or the mirror is offline); a wheel's
        is then read from the file as it is committed (:meth:`store_metadata`).

        :raises UpstreamError, IntegrityError: upstream's could not be fetched or verified.
        """
        cached = await self.kept_metadata(entry)
        if cached is not None:
            return cached
        declared = entry.get("core-metadata")
        if declared and self.client is not None:
            expected = declared.get("sha256") if isinstance(declared, dict) else None
            # as for an extracted METADATA: never more than MEMBER_LIMIT held
            data = await self.client.fetch_small(entry["url"] + ".metadata", limit=MEMBER_LIMIT)
            await self.store.put(StoreKey(file_key(entry) + ".metadata"), data, sha256=expected)
            return data
        return None

    async def store_metadata(self, entry: FileEntry, path: Path) -> str | None:
        """Store a wheel's METADATA as ``<file>.metadata`` (PEP 658); its sha256.

        Only for a wheel whose upstream offers no metadata file; read from the local file ``path``.
        """
        if not entry["filename"].endswith(".whl") or entry.get("core-metadata"):
            return None
        data = await asyncio.to_thread(_extract_metadata, path, entry["filename"])
        if data is None:
            return None
        await self.store.put(StoreKey(file_key(entry) + ".metadata"), data)
        return hashlib.sha256(data).hexdigest()

    async def provenance(self, entry: FileEntry) -> tuple[bytes, bool] | None:
        """The file's PEP 740 provenance, and whether it was in the store already.

        Kept from the file's download; else fetched from upstream now, when online, and kept.
        ``None``: upstream declares none, or the mirror is offline and has none kept.

        :raises UpstreamError: upstream's could not be fetched or is not a provenance document.
        """
        url = upstream_provenance(entry)
        if url is None:
            return None
        key = StoreKey(file_key(entry) + PROVENANCE_SUFFIX)
        kept = await self.store.read(key)
        if kept is not None:
            return kept, True
        if self.client is None:
            return None
        data = await fetch_provenance(self.client, url)
        self.metrics.bytes_fetched += len(data)
        await self.keep_provenance(entry, data)  # a store that fails to keep it: served all the same
        return data, False

    async def fetch_provenance_or_none(self, entry: FileEntry, url: str) -> bytes | None:
        """Upstream's provenance document for the file; ``None`` (logged) when it cannot be had.

        A provenance that is missing, too large or not a document never fails the file's download.
        """
        assert self.client is not None  # noqa: S101 (only downloads fetch it)
        try:
            data = await fetch_provenance(self.client, url)
        except UpstreamError as exc:
            logger.warning("provenance of %s not kept: %s", entry["filename"], exc)
            return None
        self.metrics.bytes_fetched += len(data)
        return data

    async def keep_provenance(self, entry: FileEntry, data: bytes) -> None:
        """Store the provenance beside its file; a store error is logged, never the file's failure."""
        try:
            await self.store.put(StoreKey(file_key(entry) + PROVENANCE_SUFFIX), data)
        except OSError as exc:
            logger.warning("provenance of %s not kept: %s", entry["filename"], exc)


def _extract_metadata(path: Path, filename: str) -> bytes | None:
    """``*.dist-info/METADATA`` of a wheel, byte for byte; ``None`` when it cannot be offered.

    A wheel with the right sha256 is a valid file even when its METADATA is too large or
    cannot be inflated: it is served, with no PEP 658 file (clients read the wheel itself).
    """
    try:
        return wheel_metadata(path)
    except (ArchiveError, OSError) as exc:
        logger.warning("no metadata offered for %s: %s", filename, exc)
        return None
