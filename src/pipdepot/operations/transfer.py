"""``pipdepot export`` and ``import``: carry a mirror, or the part requirements need, to another machine.

The archive is a tar: first ``pipdepot-export.json`` (each project's file
entries with sha256 and size), then the files at their paths in the mirror, each
with its ``.metadata`` and ``.provenance`` when the mirror keeps them.
Import reads and hashes every file into the target mirror's spool before it
changes anything; a file whose bytes differ from the manifest, or that would
replace a different file already there, stops it with nothing changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pipdepot.core.archive import MEMBER_LIMIT, ArchiveError, open_tar, read_tar_member, tar_members
from pipdepot.core.distribution import InvalidDistribution, check_metadata, inspect_distribution
from pipdepot.core.names import normalize_project
from pipdepot.core.project import PROVENANCE_SUFFIX, LocalFile
from pipdepot.errors import MirrorError
from pipdepot.fill.manifest import FORMAT, MANIFEST, ManifestError, Record, read_manifest
from pipdepot.operations.session import open_mirror
from pipdepot.server.mirror import ImportedFile, Origin
from pipdepot.server.provenance import PROVENANCE_LIMIT, InvalidProvenance, check_provenance
from pipdepot.storage.digests import stored_sha256
from pipdepot.storage.store import IntegrityError, StoreKey

if TYPE_CHECKING:
    from pipdepot.core.project import FileEntry, ProjectState
    from pipdepot.server.mirror import Mirror
    from pipdepot.storage.locate import MirrorLocation

__all__ = ["TransferReport", "export_mirror", "import_mirror"]

_CHUNK = 1 << 20
#: The largest manifest read (about 30,000 files' entries): it is parsed whole.
_MANIFEST_LIMIT = 32 * 1024 * 1024


def __dir__() -> list[str]:
    return __all__


@dataclass(slots=True)
class TransferReport:
    """Files moved, files already there, bytes moved."""

    projects: set[str] = field(default_factory=set)
    files: int = 0
    present: int = 0
    size: int = 0


async def export_mirror(
    mirror_dir: MirrorLocation, out: Path, *, only: set[str] | None = None
) -> TransferReport:
    """Write the mirror's files (or only the filenames in ``only``) to the tar ``out``.

    ``out`` is written beside itself and renamed, so a failed export leaves no half archive.

    :raises MirrorError: the mirror is missing, a recorded file is not on disk, or ``out`` cannot be written.
    """
    report = TransferReport()
    async with open_mirror(mirror_dir, purpose="pipdepot export", writer=False) as mirror:
        manifest: dict[str, Any] = {"format": FORMAT, "projects": {}}
        members: list[tuple[str, Path, str | None]] = []
        for listed in await mirror.local_projects():
            name = normalize_project(listed)
            state = await mirror.state(name) if name is not None else None
            if state is None:
                continue
            chosen = [
                e
                for e in state.files
                if e["filename"] in state.local and (only is None or e["filename"] in only)
            ]
            if not chosen:
                continue
            manifest["projects"][state.name] = _project_manifest(state, chosen)
            for entry in chosen:
                key = state.path_of(entry["filename"]).removeprefix("/")
                path = await mirror.local_copy(StoreKey(key))
                if path is None:
                    raise MirrorError(f"{entry['filename']} is recorded but not on disk: run pipdepot check")
                local = state.local[entry["filename"]]
                members.append((key, path, local.sha256))
                metadata = await mirror.local_copy(StoreKey(key + ".metadata"))
                if metadata is not None:
                    members.append((key + ".metadata", metadata, local.metadata_sha256))
                provenance = await mirror.local_copy(StoreKey(key + PROVENANCE_SUFFIX))
                if provenance is not None:  # checked as a document on import; it has no recorded digest
                    members.append((key + PROVENANCE_SUFFIX, provenance, None))
                report.files += 1
                report.size += state.local[entry["filename"]].size
            report.projects.add(state.name)
        if only is not None and report.files == 0:
            raise MirrorError("none of the files the requirements need is in the mirror")
        _write_tar(out, manifest, members)
    return report


def _project_manifest(state: ProjectState, chosen: list[FileEntry]) -> dict[str, Any]:
    added = {e["filename"] for e in state.added}
    return {
        "upstream": state.upstream,
        "extra": state.extra,
        "merge_upstream": state.merge_upstream,
        "files": [
            {
                "entry": entry,
                "added": entry["filename"] in added,
                "path": state.path_of(entry["filename"]).removeprefix("/"),
                "sha256": state.local[entry["filename"]].sha256,
                "size": state.local[entry["filename"]].size,
                "metadata_sha256": state.local[entry["filename"]].metadata_sha256,
            }
            for entry in chosen
        ],
    }


def _write_tar(out: Path, manifest: dict[str, Any], members: list[tuple[str, Path, str | None]]) -> None:
    """Write the archive, hashing each file as it goes in.

    A damaged file stops the export here, not at the import on the other side of an air gap.
    """
    compressed = out.name.endswith((".tar.gz", ".tgz"))
    try:
        fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    except OSError as exc:
        raise MirrorError(f"cannot write {out}: {exc.strerror}") from None
    staged = Path(name)
    try:
        with (
            open(fd, "wb") as stream,  # noqa: PTH123 (a descriptor, not a path)
            tarfile.open(fileobj=stream, mode="w:gz")
            if compressed
            else tarfile.open(fileobj=stream, mode="w") as archive,
        ):
            data = json.dumps(manifest, indent=1, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
            for key, path, sha256 in members:
                _add_verified(archive, key, path, sha256)
        staged.chmod(0o644)
        staged.replace(out)
    except OSError as exc:
        staged.unlink(missing_ok=True)
        raise MirrorError(f"cannot write {out}: {exc.strerror}") from None
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


class _Hashing:
    """A file read through sha256."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.digest.update(data)
        return data


def _add_verified(archive: tarfile.TarFile, key: str, path: Path, sha256: str | None) -> None:
    """:raises MirrorError: the file's bytes are not the ones its record promises."""
    info = archive.gettarinfo(str(path), arcname=f"files/{key}")
    with path.open("rb") as stream:
        reader = _Hashing(stream)
        archive.addfile(info, reader)
    if sha256 is not None and reader.digest.hexdigest() != sha256:
        raise MirrorError(
            f"{key} is damaged in the mirror (sha256 differs from its record); nothing exported"
        )


async def import_mirror(archive_path: Path, mirror_dir: MirrorLocation) -> TransferReport:
    """Add the files of an export archive to the mirror at ``mirror_dir``, all of them or none.

    The manifest is checked whole first; then only the members it names are unpacked into
    the spool, each no larger than it says; every file is hashed and checked as ``add``
    checks it, and against the mirror, before the first one is moved in.

    :raises MirrorError: the archive is unreadable, damaged or lies, or conflicts with the
        mirror; then the mirror is unchanged.
    """
    report = TransferReport()
    async with open_mirror(mirror_dir, purpose="pipdepot import", writer=True) as mirror:
        spool = Path(tempfile.mkdtemp(dir=mirror.store.spool_directory(), prefix="import-"))
        try:
            records, staged = await asyncio.to_thread(_unpack, archive_path, spool)
            await _apply(mirror, await _plan(mirror, records, staged, report), report)
            for name in sorted({r.project for r in records if r.merge_upstream}):
                await mirror.releases.allow_upstream(name, allowed=True)  # as the exporting mirror had it
        finally:
            shutil.rmtree(spool, ignore_errors=True)
    return report


@dataclass(frozen=True, slots=True)
class _Staged:
    path: Path
    sha256: str


def _unpack(archive_path: Path, spool: Path) -> tuple[list[Record], dict[str, _Staged]]:
    """The manifest's records, and each member it names staged (by its path) with its sha256.

    :raises MirrorError: the manifest is bad, a member is not one it names or is larger than it
        says, or the files do not fit on the mirror's disk.
    """
    staged: dict[str, _Staged] = {}
    try:
        with open_tar(archive_path) as archive:
            members = tar_members(archive)
            first = next(members, None)
            if first is None or first.name != MANIFEST or not first.isfile():
                raise MirrorError(f"{archive_path}: not a pipdepot export (no {MANIFEST} first)")
            if first.size > _MANIFEST_LIMIT:
                raise MirrorError(f"{archive_path}: its manifest is over {_MANIFEST_LIMIT >> 20} MiB")
            records = read_manifest(json.loads(read_tar_member(archive, first, _MANIFEST_LIMIT)))
            wanted = {f"files/{r.path}.metadata": MEMBER_LIMIT for r in records}
            wanted.update({f"files/{r.path}{PROVENANCE_SUFFIX}": PROVENANCE_LIMIT for r in records})
            wanted.update({f"files/{r.path}": r.size for r in records})
            needed, free = sum(r.size for r in records), shutil.disk_usage(spool).free
            if needed > free:
                raise MirrorError(
                    f"{archive_path}: its files need {needed} bytes, the mirror's disk has {free}"
                )
            for member in members:
                _check_member(archive_path, member, wanted, staged)
                key = member.name.removeprefix("files/")
                staged[key] = _stage(archive, member, spool / str(len(staged)) / key.rsplit("/", 1)[-1])
    except ArchiveError as exc:
        raise MirrorError(f"cannot read {archive_path}: {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise MirrorError(f"{archive_path}: its manifest is not JSON (or nested too deep)") from None
    except ManifestError as exc:
        raise MirrorError(f"{archive_path}: manifest: {exc}") from None
    except OSError as exc:
        raise MirrorError(f"cannot read {archive_path}: {exc.strerror or exc}") from None
    return records, staged


def _check_member(
    archive_path: Path, member: tarfile.TarInfo, wanted: dict[str, int], staged: dict[str, _Staged]
) -> None:
    """Refuse a member before its bytes are read.

    :raises MirrorError: the manifest does not name it, it comes twice, is no regular file, or its
        size is not the one the manifest says.
    """
    name = member.name
    if name not in wanted:
        raise MirrorError(f"{archive_path}: member {name!r} is not in its manifest")
    if name.removeprefix("files/") in staged:
        raise MirrorError(f"{archive_path}: member {name!r} is there twice")
    if not member.isfile():
        raise MirrorError(f"{archive_path}: member {name!r} is not a regular file")
    limit = wanted[name]
    if member.size > limit or (member.size != limit and not name.endswith((".metadata", PROVENANCE_SUFFIX))):
        raise MirrorError(
            f"{archive_path}: member {name!r} is {member.size} bytes, its manifest says {limit}"
        )


def _stage(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> _Staged:
    """Copy the member's declared bytes to ``target``, hashing them.

    :raises ArchiveError: its data cannot be read or stops short.
    """
    target.parent.mkdir()
    digest = hashlib.sha256()
    left = member.size
    try:
        source = archive.extractfile(member)
        with target.open("wb") as out:
            while left and source is not None and (chunk := source.read(min(_CHUNK, left))):
                digest.update(chunk)
                out.write(chunk)
                left -= len(chunk)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{member.name}: {exc}") from None
    if left:
        raise ArchiveError(f"{member.name}: truncated")
    return _Staged(target, digest.hexdigest())


async def _plan(
    mirror: Mirror, records: list[Record], staged: dict[str, _Staged], report: TransferReport
) -> list[ImportedFile]:
    """Verify everything before the first write.

    Every hash, every file as ``add`` checks it, and no conflict with the mirror.
    """
    plan = []
    for record in records:
        key = record.path
        found = staged.get(key)
        if found is None:
            raise MirrorError(f"archive lacks {key}")
        if found.sha256 != record.sha256:
            raise MirrorError(f"{key}: sha256 {found.sha256} in the archive, {record.sha256} in its manifest")
        try:
            dist = await asyncio.to_thread(inspect_distribution, found.path)
        except InvalidDistribution as exc:
            raise MirrorError(f"{exc}; nothing imported") from None
        if dist.name != record.project:
            raise MirrorError(f"{record.filename} is listed under project {record.project}; nothing imported")
        metadata = _metadata(staged, record)
        existing = await mirror.store.stat(StoreKey(key))
        if existing is not None:
            on_disk = await stored_sha256(mirror.store, StoreKey(key))  # the bytes, whatever the state says
            if on_disk != found.sha256:
                raise MirrorError(f"{key}: the mirror has a different file there; nothing imported")
            state = await mirror.state(record.project)
            if state is not None and record.filename in state.local:
                report.present += 1
                continue
        metadata_sha256 = hashlib.sha256(metadata).hexdigest() if metadata is not None else None
        local = LocalFile(found.sha256, record.size, metadata_sha256)
        origin = Origin(record.upstream, record.extra, added=record.added)
        provenance = _provenance(staged, record)
        plan.append(
            ImportedFile(record.project, record.entry, local, found.path, metadata, origin, provenance)
        )
    return plan


def _metadata(staged: dict[str, _Staged], record: Record) -> bytes | None:
    """The file's PEP 658 metadata from the archive, checked against its hash and the filename."""
    found = staged.get(record.path + ".metadata")
    if found is None:
        return None
    declared = record.entry.get("core-metadata")
    expected = record.metadata_sha256 or (declared.get("sha256") if isinstance(declared, dict) else None)
    if isinstance(expected, str) and found.sha256 != expected:
        raise MirrorError(f"{record.path}.metadata: sha256 differs from its manifest")
    data = found.path.read_bytes()
    try:
        check_metadata(record.filename, data)
    except InvalidDistribution as exc:
        raise MirrorError(f"{record.path}.metadata: {exc}; nothing imported") from None
    return data


def _provenance(staged: dict[str, _Staged], record: Record) -> bytes | None:
    """The file's PEP 740 provenance from the archive, checked as a document."""
    found = staged.get(record.path + PROVENANCE_SUFFIX)
    if found is None:
        return None
    data = found.path.read_bytes()
    try:
        check_provenance(data)
    except InvalidProvenance as exc:
        raise MirrorError(f"{record.path}{PROVENANCE_SUFFIX}: {exc}; nothing imported") from None
    return data


async def _apply(mirror: Mirror, plan: list[ImportedFile], report: TransferReport) -> None:
    """Move the planned files in; if one cannot be written, take out again those moved in before it."""
    done: list[ImportedFile] = []
    try:
        for item in plan:
            await mirror.import_file(item)
            done.append(item)
            report.files += 1
            report.size += item.local.size
            report.projects.add(item.name)
    except (OSError, IntegrityError) as exc:
        for item in reversed(done):
            with contextlib.suppress(OSError):
                await mirror.forget(item.name, item.entry["filename"])
        raise MirrorError(f"cannot write {item.entry['filename']}: {exc}; nothing imported") from None
