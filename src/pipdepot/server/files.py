"""Files: in the store, downloaded once (across processes: leases), added, imported, removed.

- A file not yet cached is downloaded once and streamed to every client; any number of
  processes serving one store fetch it once between them (:mod:`leases`).
- A file enters the store create-only and is then recorded (:mod:`records`), and the
  project's static page follows (:mod:`tree`); a writer killed in between leaves a commit
  marker that the next writer settles.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipdepot.core.archive import MEMBER_LIMIT, ArchiveError, wheel_metadata
from pipdepot.core.project import (
    ADDED_SCHEME,
    PROVENANCE_SUFFIX,
    LocalFile,
    ProjectState,
    UnusablePage,
    local_path_of,
    project_of_path,
)
from pipdepot.errors import UpstreamError
from pipdepot.server.download import Download
from pipdepot.server.leases import Leases
from pipdepot.server.provenance import fetch_provenance, upstream_provenance
from pipdepot.storage.digests import file_sha256, stored_sha256
from pipdepot.storage.store import COMMIT_MARKER, AlreadyExists, IntegrityError, StoreKey

if TYPE_CHECKING:
    from pipdepot.core.distribution import LocalDistribution
    from pipdepot.core.names import NormalizedName
    from pipdepot.core.project import FileEntry
    from pipdepot.server.metrics import Metrics
    from pipdepot.server.pagecache import PageCache
    from pipdepot.server.records import Records
    from pipdepot.server.tree import Tree
    from pipdepot.server.upstream import Partial, UpstreamClient
    from pipdepot.storage.store import Store, StoredFile

__all__ = ["FileCache", "FileHit", "ImportedFile", "Origin"]

logger = logging.getLogger(__name__)

#: Larger ranges fetch (and keep) the whole file: a client reading that much will want the rest.
_PARTIAL_LIMIT = 1024 * 1024


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


@dataclass(frozen=True, slots=True)
class FileHit:
    """A file present in the store (``path``: where the OS can send it from, if the store is local)."""

    key: StoreKey
    path: Path | None
    size: int


class FileCache:
    """The mirror's files and their records."""

    def __init__(  # noqa: PLR0913 (the files' wiring, by keyword)
        self,
        store: Store,
        client: UpstreamClient | None,
        *,
        pages: PageCache,
        records: Records,
        tree: Tree,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.client = client
        self.pages = pages
        self.records = records
        self.tree = tree
        self.metrics = metrics
        #: One upstream fetch per file across every process serving this store.
        self.leases = Leases(store)
        self._downloads: dict[StoreKey, Download] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        #: Where files of an object store are copied for what needs a local path (builds, export).
        self._copies: Path | None = None
        #: Files this process downloaded, by filename, whoever asked (``sync`` reports and prunes them).
        self.downloaded: dict[str, NormalizedName] = {}

    async def aclose(self) -> None:
        """Wait for downloads in flight, so files are committed before the process ends."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)
        if self._copies is not None:
            shutil.rmtree(self._copies, ignore_errors=True)

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
        path = await self.local_copy(key) if isinstance(entry, dict) and sha256 else None
        if name is not None and isinstance(entry, dict) and path is not None:
            digest, size = await asyncio.to_thread(file_sha256, path)
            if digest == sha256:
                metadata = await self._store_metadata(entry, path)
                await self._add_local(name, entry, LocalFile(sha256, size, metadata))
                logger.warning("recorded %s: moved into the tree, then its writer was killed", key)
                return
        with contextlib.suppress(ValueError):  # not a key: nothing to remove
            await self.store.delete(StoreKey(key + ".metadata"))
            await self.store.delete(StoreKey(key + PROVENANCE_SUFFIX))
            await self.store.delete(key)
            logger.warning("removed %s: moved into the tree, then killed before it was recorded", key)

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

    async def local_file(self, name: NormalizedName, entry: FileEntry) -> FileHit | None:
        """The file from the store, when it is there (committed by this process or another)."""
        state = await self.pages.load_local(name)
        if state is None or entry["filename"] not in state.local:
            state = await self.records.get(name, recheck=True)
            if state is None or entry["filename"] not in state.local:
                return None
            self.pages.drop(name)  # the parsed page in memory predates that file
        key = _key_of(entry)
        stored = await self.store.stat(key)
        path = self.store.local_path(key)
        if stored is None or stored.size != state.local[entry["filename"]].size:
            return None  # gone or cut short behind the mirror's back: fetched again
        return FileHit(key, path, stored.size)

    def download(self, name: NormalizedName, entry: FileEntry) -> Download | None:
        """The download of a file not in the store, started if no one started it; ``None`` offline."""
        if self.client is None or entry["url"].startswith(ADDED_SCHEME):
            return None
        key = _key_of(entry)
        running = self._downloads.get(key)
        if running is not None:
            return running
        size = entry.get("size")
        download = Download(
            entry["url"],
            key,
            self.store,
            size=size if isinstance(size, int) else None,
            sha256=(entry.get("hashes") or {}).get("sha256"),
            entry=dict(entry),
            leases=self.leases,
        )
        self._downloads[key] = download
        task: asyncio.Task[object] = asyncio.create_task(self._run_download(name, entry, download))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return download

    async def fetch(self, name: NormalizedName, entry: FileEntry) -> tuple[int, bool]:
        """Make sure the file is in the store: its size, and whether it was downloaded just now.

        :raises UpstreamError, IntegrityError: it could not be fetched or verified; nothing is kept.
        """
        hit = await self.local_file(name, entry)
        if hit is not None:
            return hit.size, False
        download = self.download(name, entry)
        if download is None:
            raise UpstreamError(f"{entry['filename']} is not in the mirror, and the mirror is offline")
        await download.done.wait()
        if download.error is not None:
            raise download.error
        assert download.stored is not None  # noqa: S101 (no error means it was stored)
        return download.stored.size, True

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

    async def import_file(self, item: ImportedFile) -> None:
        """Move a verified file (``staged``, in the spool) into the store and list it.

        The entry joins the project's page if the page lacks it; a project the mirror has
        never seen starts from the exporter's record, due for a refresh when online.

        :raises IntegrityError: ``staged`` does not hash to ``local.sha256``, or the mirror has
            another file of that name.
        """
        name, entry, local, origin = item.name, item.entry, item.local, item.origin
        key = _key_of(entry)
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

    def downloading(self, entry: FileEntry) -> bool:
        """Whether the file is being downloaded now."""
        return _key_of(entry) in self._downloads

    async def partial(self, entry: FileEntry, byte_range: str) -> Partial | None:
        """A small part of a file not in the store, straight from upstream, not kept.

        uv reads a wheel's metadata from its last bytes when the index offers no
        PEP 658 file; fetching the whole wheel for that would turn a resolver's
        look at 400 old versions into gigabytes. ``None``: fetch the file instead.

        :raises UpstreamError: upstream did not answer.
        """
        if self.client is None or entry["url"].startswith(ADDED_SCHEME):
            return None
        answer = await self.client.fetch_range(entry["url"], byte_range, limit=_PARTIAL_LIMIT)
        if answer is not None:
            self.metrics.bytes_fetched += len(answer.body)
        return answer

    async def _run_download(self, name: NormalizedName, entry: FileEntry, download: Download) -> None:
        assert self.client is not None  # noqa: S101
        started = time.monotonic()

        metadata: list[str | None] = [None]
        # fetched while the file downloads, kept before its commit: a recorded file has its provenance
        url = upstream_provenance(entry)
        provenance = asyncio.create_task(self._fetch_provenance(entry, url)) if url is not None else None

        async def prepare(spool: Path) -> None:  # before the commit: the spool is a local file on any store
            metadata[0] = await self._store_metadata(entry, spool)
            if provenance is not None and (data := await provenance) is not None:
                await self._keep_provenance(entry, data)

        async def record(stored: StoredFile, sha256: str) -> None:
            await self._add_local(name, entry, LocalFile(sha256, stored.size, metadata[0]))
            self.downloaded[entry["filename"]] = name
            elapsed = (time.monotonic() - started) * 1000
            logger.info("cached %s (%d bytes, %.0f ms)", download.key, stored.size, elapsed)

        try:
            await download.run(self.client, self.store, record, prepare=prepare)
            if download.adopted:  # another process downloaded it: its record follows its commit
                await self._recorded_elsewhere(name, entry["filename"])
        except (UpstreamError, IntegrityError, OSError) as exc:
            self.metrics.upstream_errors += isinstance(exc, UpstreamError)
            logger.warning("download of %s failed: %s", download.url, exc)
        finally:
            if provenance is not None:
                provenance.cancel()  # the file failed, or another process committed it (and its provenance)
            self._downloads.pop(download.key, None)
            self.metrics.bytes_fetched += download.written

    async def _recorded_elsewhere(self, name: NormalizedName, filename: str) -> None:
        """Wait (a few seconds at most) for the process that committed ``filename`` to record it."""
        for _ in range(50):
            record = await self.records.get(name, recheck=True)
            if record is not None and filename in record.local:
                self.pages.drop(name)
                return
            await asyncio.sleep(0.1)

    async def _store_metadata(self, entry: FileEntry, path: Path) -> str | None:
        """Store a wheel's METADATA as ``<file>.metadata`` (PEP 658); its sha256.

        Only for a wheel whose upstream offers no metadata file; read from the local file ``path``.
        """
        if not entry["filename"].endswith(".whl") or entry.get("core-metadata"):
            return None
        data = await asyncio.to_thread(_extract_metadata, path, entry["filename"])
        if data is None:
            return None
        await self.store.put(StoreKey(_key_of(entry) + ".metadata"), data)
        return hashlib.sha256(data).hexdigest()

    async def _fetch_provenance(self, entry: FileEntry, url: str) -> bytes | None:
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

    async def _keep_provenance(self, entry: FileEntry, data: bytes) -> None:
        """Store the provenance beside its file; a store error is logged, never the file's failure."""
        try:
            await self.store.put(StoreKey(_key_of(entry) + PROVENANCE_SUFFIX), data)
        except OSError as exc:
            logger.warning("provenance of %s not kept: %s", entry["filename"], exc)

    async def provenance(self, entry: FileEntry) -> tuple[bytes, bool] | None:
        """The file's PEP 740 provenance, and whether it was in the store already.

        Kept from the file's download; else fetched from upstream now, when online, and kept.
        ``None``: upstream declares none, or the mirror is offline and has none kept.

        :raises UpstreamError: upstream's could not be fetched or is not a provenance document.
        """
        url = upstream_provenance(entry)
        if url is None:
            return None
        key = StoreKey(_key_of(entry) + PROVENANCE_SUFFIX)
        kept = await self.store.read(key)
        if kept is not None:
            return kept, True
        if self.client is None:
            return None
        data = await fetch_provenance(self.client, url)
        self.metrics.bytes_fetched += len(data)
        await self._keep_provenance(entry, data)  # a store that fails to keep it: served all the same
        return data, False

    async def metadata_cached(self, entry: FileEntry) -> bool:
        """Whether the file's core metadata is in the store (served as a hit)."""
        return await self.store.stat(StoreKey(_key_of(entry) + ".metadata")) is not None

    async def metadata(self, name: NormalizedName, entry: FileEntry) -> bytes | None:
        """The core metadata of a distribution: upstream's, or extracted from the cached wheel.

        :raises UpstreamError, IntegrityError: it could not be fetched or verified.
        """
        key = StoreKey(_key_of(entry) + ".metadata")
        cached = await self.store.read(key)
        if cached is not None:
            return cached
        declared = entry.get("core-metadata")
        if declared and self.client is not None:
            expected = declared.get("sha256") if isinstance(declared, dict) else None
            # as for an extracted METADATA: never more than MEMBER_LIMIT held
            data = await self.client.fetch_small(entry["url"] + ".metadata", limit=MEMBER_LIMIT)
            await self.store.put(key, data, sha256=expected)
            return data
        if not entry["filename"].endswith(".whl"):
            return None
        state = await self.pages.load_local(name)
        if state is None or entry["filename"] not in state.local:
            del state
            download = self.download(name, entry)
            if download is None:
                return None
            await download.done.wait()
            if download.error is not None:
                raise download.error
        return await self.store.read(key)

    async def _add_local(self, name: NormalizedName, entry: FileEntry, local: LocalFile) -> None:
        """Record a new local file: only the small local record is read and written.

        Upstream's page (megabytes for a large project) is not parsed again for it,
        however many downloads finish at once.
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


def _key_of(entry: FileEntry) -> StoreKey:
    return StoreKey(local_path_of(entry["url"], entry["filename"]).removeprefix("/"))


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
