"""The store's files as the records list them: added, imported, recorded after a download, forgotten.

- A file enters the store create-only and is then recorded (:mod:`records`), and the
  project's static page follows (:mod:`tree`); a download killed in between leaves a commit
  marker that the next writer settles (:mod:`recovery`).
- A file leaves its record first, then the store: a crash leaves a file not listed, never a
  listed file missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipdepot.core.project import ADDED_SCHEME, PROVENANCE_SUFFIX, LocalFile, ProjectState, UnusablePage
from pipdepot.server.siblings import file_key
from pipdepot.storage.digests import stored_sha256
from pipdepot.storage.store import AlreadyExists, IntegrityError, StoreKey

if TYPE_CHECKING:
    from pipdepot.core.distribution import LocalDistribution
    from pipdepot.core.names import NormalizedName
    from pipdepot.core.project import FileEntry
    from pipdepot.server.pagecache import PageCache
    from pipdepot.server.records import Records
    from pipdepot.server.tree import Tree
    from pipdepot.storage.store import Store

__all__ = ["ImportedFile", "LocalFiles", "Origin"]


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an imported file's project came from, for a mirror that has never seen it."""

    upstream: str
    extra: dict[str, object]
    added: bool


@dataclass(frozen=True, slots=True)
class ImportedFile:
    """A file from an export archive, verified and staged in the spool."""

    name: NormalizedName
    entry: FileEntry
    local: LocalFile
    staged: Path
    metadata: bytes | None
    origin: Origin
    #: PEP 740 provenance from the archive, checked as a document (kept as ``<file>.provenance``).
    provenance: bytes | None = None


class LocalFiles:
    """Files entering and leaving the store, each change recorded and the project's pages following."""

    def __init__(self, store: Store, *, pages: PageCache, records: Records, tree: Tree) -> None:
        self.store = store
        self.pages = pages
        self.records = records
        self.tree = tree
        #: Files this process downloaded, by filename, whoever asked (``sync`` reports and prunes them).
        self.downloaded: dict[str, NormalizedName] = {}

    async def add(self, dist: LocalDistribution) -> bool:
        """Put a local wheel or sdist into the mirror, listed like upstream's files (before them).

        :returns: ``False`` when the same file (same sha256) is already there.
        :raises IntegrityError: a file of that name is there with other content; nothing changes.
        """
        key = StoreKey(f"packages/+local/{dist.name}/{dist.filename}")
        async with self.records.lock(dist.name):
            record = await self.records.get(dist.name, recheck=True)
            if record is not None and _same_added(record, dist.filename, dist.sha256):
                return False
            await self._put_verified(key, await asyncio.to_thread(self._spooled_copy, dist.path), dist.sha256)
            entry: FileEntry = {
                "filename": dist.filename,
                "url": f"{ADDED_SCHEME}/{key}",
                "hashes": {"sha256": dist.sha256},
                "size": dist.size,
                "upload-time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
            if dist.requires_python:
                entry["requires-python"] = dist.requires_python
            if dist.metadata is not None:
                await self.store.put(StoreKey(key + ".metadata"), dist.metadata)
                entry["core-metadata"] = {"sha256": hashlib.sha256(dist.metadata).hexdigest()}

            def list_added(state: ProjectState) -> bool:
                if _same_added(state, dist.filename, dist.sha256):
                    return False
                state.added = [e for e in state.added if e["filename"] != dist.filename] + [entry]
                state.merge_added()
                state.local[dist.filename] = LocalFile(dist.sha256, dist.size)
                return True

            await self.records.update(dist.name, list_added)
            self.pages.drop(dist.name)
            self.tree.counted(1)
            await self.tree.write_project(dist.name)
        return True

    async def import_file(self, item: ImportedFile) -> None:
        """Move a verified file (``staged``, in the spool) into the store and list it.

        The entry joins the project's page if the page lacks it; a project the mirror has
        never seen starts from the exporter's record, due for a refresh when online.

        :raises IntegrityError: ``staged`` does not hash to ``local.sha256``, or the mirror has
            another file of that name.
        """
        name, entry, local, origin = item.name, item.entry, item.local, item.origin
        key = file_key(entry)
        async with self.records.lock(name):
            await self._put_verified(key, item.staged, local.sha256)
            if item.metadata is not None:
                await self.store.put(StoreKey(key + ".metadata"), item.metadata)
            if item.provenance is not None:
                await self.store.put(StoreKey(key + PROVENANCE_SUFFIX), item.provenance)
            if not origin.added:
                await self._page_lists(name, entry, origin)

            def list_imported(state: ProjectState) -> None:
                if origin.added:
                    state.added = [e for e in state.added if e["filename"] != entry["filename"]] + [entry]
                elif all(e["filename"] != entry["filename"] for e in state.files):
                    state.files.append(entry)
                state.merge_added()  # also forgets the cached paths, which lack the new file
                state.local[entry["filename"]] = local

            def start() -> ProjectState:
                return ProjectState(name, origin.upstream, [], extra=dict(origin.extra))

            await self.records.update(name, list_imported, new=start)
            self.pages.drop(name)
            self.tree.counted(1)
            await self.tree.write_project(name)

    async def record(
        self, name: NormalizedName, entry: FileEntry, local: LocalFile, *, downloaded: bool = False
    ) -> None:
        """Record a new local file: only the small local record is read and written.

        Upstream's page (megabytes for a large project) is not parsed again for it,
        however many downloads finish at once. ``downloaded``: by this process, just now.
        """
        filename = entry["filename"]

        def list_local(state: ProjectState) -> bool:
            if state.local.get(filename) == local:
                return False  # another writer recorded it
            if all(e["filename"] != filename for e in state.files):
                state.files.append(entry)  # a record without the page lists local entries only
                state.merge_added()
            state.local[filename] = local
            return True

        async with self.records.lock(name):
            record = await self.records.update(name, list_local)
            if record is None:
                raise UnusablePage(f"no state for {name}")
            self.pages.file_recorded(name, entry, local, record)
            self.tree.counted(1)
        await self.tree.write_project(name)
        if downloaded:
            self.downloaded[filename] = name

    async def forget(self, name: NormalizedName, filename: str) -> int:
        """Remove a local file, its metadata and provenance, from the store and the pages; its size, or 0."""
        async with self.records.lock(name):
            removed: list[tuple[LocalFile, str]] = []

            def unlist(state: ProjectState) -> bool:
                local = state.local.pop(filename, None)
                if local is None:
                    return False
                removed[:] = [(local, state.path_of(filename))]
                return True

            await self.records.update(
                name, unlist
            )  # first: a crash leaves a file not listed, never a listed file missing
            if not removed:
                return 0
            local, path = removed[0]
            self.pages.drop(name)
            self.tree.counted(-1)
            await self.tree.write_project(name)
            key = StoreKey(path.removeprefix("/"))
            await self.store.delete(key)
            await self.store.delete(StoreKey(key + ".metadata"))
            await self.store.delete(StoreKey(key + PROVENANCE_SUFFIX))
            self.downloaded.pop(filename, None)
            return local.size

    async def _put_verified(self, key: StoreKey, source: Path, sha256: str) -> None:
        """Commit ``source`` at ``key`` create-only; a file already there must have the same sha256.

        :raises IntegrityError: the key holds other content (or ``source`` is not ``sha256``).
        """
        try:
            await self.store.put(key, source, sha256=sha256, create=True)
        except AlreadyExists:
            digest = await stored_sha256(self.store, key)
            if digest != sha256:
                raise IntegrityError(
                    f"{key.rsplit('/', 1)[-1]} is already in the mirror with other content "
                    f"(sha256 {digest[:12] if digest else '?'}..., this one {sha256[:12]}...)"
                ) from None

    async def _page_lists(self, name: NormalizedName, entry: FileEntry, origin: Origin) -> None:
        """Make upstream's stored page list ``entry`` (a page started from the exporter's, if none)."""
        state = await self.pages.load(name)
        if state is None or not state.upstream:
            state = ProjectState(name, origin.upstream, [], extra=dict(origin.extra))
        if any(e["filename"] == entry["filename"] for e in state.files):
            return
        state.files.append(entry)
        state.merge_added()
        await self.pages.save_page(state)

    def _spooled_copy(self, source: Path) -> Path:
        fd, name = tempfile.mkstemp(dir=self.store.spool_directory(), prefix="add-")
        with open(fd, "wb") as target, source.open("rb") as stream:  # noqa: PTH123 (a descriptor, not a path)
            shutil.copyfileobj(stream, target, 1 << 20)
        return Path(name)


def _same_added(state: ProjectState, filename: str, sha256: str) -> bool:
    """Whether ``filename`` is added and present with ``sha256``.

    :raises IntegrityError: it is added with another sha256.
    """
    known = next((e for e in state.added if e["filename"] == filename), None)
    if known is None:
        return False
    if known["hashes"]["sha256"] != sha256:
        raise IntegrityError(
            f"{filename} is already in the mirror with other content "
            f"(sha256 {known['hashes']['sha256'][:12]}..., this one {sha256[:12]}...)"
        )
    return filename in state.local
