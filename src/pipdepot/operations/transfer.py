"""``pipdepot export`` and ``import``: carry a mirror, or the part requirements need, to another machine.

The archive is a tar: first ``pipdepot-export.json`` (each project's file
entries with sha256 and size), then the files at their paths in the mirror.
Import reads and hashes every file into the target mirror's spool before it
changes anything; a file whose bytes differ from the manifest, or that would
replace a different file already there, stops it with nothing changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pipdepot.core.digests import file_sha256
from pipdepot.core.mirror import ImportedFile, Origin
from pipdepot.core.names import normalize_project
from pipdepot.core.project import LocalFile
from pipdepot.core.store import StoreKey
from pipdepot.errors import MirrorError
from pipdepot.operations.session import open_mirror

if TYPE_CHECKING:
    from pipdepot.core.mirror import Mirror
    from pipdepot.core.project import FileEntry, ProjectState

__all__ = ["TransferReport", "export_mirror", "import_mirror"]

MANIFEST = "pipdepot-export.json"
_FORMAT = 1
_CHUNK = 1 << 20


def __dir__() -> list[str]:
    return __all__


@dataclass(slots=True)
class TransferReport:
    """Files moved, files already there, bytes moved."""

    projects: set[str] = field(default_factory=set)
    files: int = 0
    present: int = 0
    size: int = 0


async def export_mirror(mirror_dir: Path, out: Path, *, only: set[str] | None = None) -> TransferReport:
    """Write the mirror's files (or only the filenames in ``only``) to the tar ``out``.

    ``out`` is written beside itself and renamed, so a failed export leaves no half archive.

    :raises MirrorError: the mirror is missing, a recorded file is not on disk, or ``out`` cannot be written.
    """
    report = TransferReport()
    async with open_mirror(mirror_dir, purpose="pipdepot export", writer=False) as mirror:
        manifest: dict[str, Any] = {"format": _FORMAT, "projects": {}}
        members: list[tuple[str, Path, str | None]] = []
        for listed in mirror.local_projects():
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
                path = mirror_dir / key
                if not path.is_file():
                    raise MirrorError(f"{entry['filename']} is recorded but not on disk: run pipdepot check")
                local = state.local[entry["filename"]]
                members.append((key, path, local.sha256))
                metadata = mirror_dir / (key + ".metadata")
                if metadata.is_file():
                    members.append((key + ".metadata", metadata, local.metadata_sha256))
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


async def import_mirror(archive_path: Path, mirror_dir: Path) -> TransferReport:
    """Add the files of an export archive to the mirror at ``mirror_dir``.

    :raises MirrorError: the archive is unreadable or damaged, or conflicts with the mirror;
        then the mirror is unchanged.
    """
    report = TransferReport()
    async with open_mirror(mirror_dir, purpose="pipdepot import", writer=True) as mirror:
        spool = Path(tempfile.mkdtemp(dir=mirror.store.spool_directory(), prefix="import-"))
        try:
            manifest, staged = _unpack(archive_path, spool)
            for item in await _plan(mirror, manifest, staged, report):
                await mirror.import_file(item)
                report.files += 1
                report.size += item.local.size
                report.projects.add(item.name)
        finally:
            shutil.rmtree(spool, ignore_errors=True)
    return report


def _unpack(archive_path: Path, spool: Path) -> tuple[dict[str, Any], dict[str, tuple[Path, str]]]:
    """The manifest and each member's staged path and sha256."""
    staged: dict[str, tuple[Path, str]] = {}
    try:
        with tarfile.open(archive_path, "r:*") as archive:
            first = archive.next()
            if first is None or first.name != MANIFEST:
                raise MirrorError(f"{archive_path}: not a pipdepot export (no {MANIFEST} first)")
            stream = archive.extractfile(first)
            manifest = json.loads(stream.read() if stream is not None else b"")
            if manifest.get("format") != _FORMAT:
                raise MirrorError(f"{archive_path}: unknown export format {manifest.get('format')!r}")
            for member in archive:
                if member.name == MANIFEST:
                    continue
                if not member.isfile() or not member.name.startswith("files/"):
                    raise MirrorError(f"{archive_path}: unexpected member {member.name!r}")
                source = archive.extractfile(member)
                if source is None:
                    continue
                target = spool / f"{len(staged)}"
                digest = hashlib.sha256()
                with target.open("wb") as out:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                staged[member.name.removeprefix("files/")] = (target, digest.hexdigest())
    except (OSError, tarfile.TarError, ValueError, EOFError) as exc:
        raise MirrorError(f"cannot read {archive_path}: {exc}") from None
    return manifest, staged


async def _plan(
    mirror: Mirror, manifest: dict[str, Any], staged: dict[str, tuple[Path, str]], report: TransferReport
) -> list[ImportedFile]:
    """Verify everything before the first write: every hash, and no conflict with the mirror."""
    plan = []
    try:
        projects = manifest["projects"].items()
        for project, data in projects:
            name = normalize_project(project)
            if name is None:
                raise MirrorError(f"archive names an invalid project {project!r}")
            state = await mirror.state(name)
            for record in data["files"]:
                key = str(record["path"])
                if key not in staged:
                    raise MirrorError(f"archive lacks {key}")
                path, sha256 = staged[key]
                if sha256 != record["sha256"]:
                    raise MirrorError(
                        f"{key}: sha256 {sha256} in the archive, {record['sha256']} in its manifest"
                    )
                metadata = _metadata(staged, key, record)
                existing = await mirror.store.stat(StoreKey(key))
                if existing is not None:
                    if await _sha256(mirror, key) != sha256:  # the bytes on disk, whatever the state says
                        raise MirrorError(f"{key}: the mirror has a different file there; nothing imported")
                    known = state.local.get(record["entry"]["filename"]) if state is not None else None
                    if known is not None:
                        report.present += 1
                        continue
                local = LocalFile(sha256, int(record["size"]), record.get("metadata_sha256"))
                origin = Origin(str(data["upstream"]), dict(data["extra"]), added=bool(record["added"]))
                plan.append(ImportedFile(name, record["entry"], local, path, metadata, origin))
    except (KeyError, TypeError, AttributeError) as exc:
        raise MirrorError(f"archive manifest is damaged: {type(exc).__name__}: {exc}") from None
    return plan


def _metadata(staged: dict[str, tuple[Path, str]], key: str, record: dict[str, Any]) -> bytes | None:
    found = staged.get(key + ".metadata")
    if found is None:
        return None
    data = found[0].read_bytes()
    declared = record["entry"].get("core-metadata")
    expected = record.get("metadata_sha256") or (
        declared.get("sha256") if isinstance(declared, dict) else None
    )
    if isinstance(expected, str) and hashlib.sha256(data).hexdigest() != expected:
        raise MirrorError(f"{key}.metadata: sha256 differs from its manifest")
    return data


async def _sha256(mirror: Mirror, key: str) -> str | None:
    path = mirror.store.local_path(StoreKey(key))
    try:
        return None if path is None else (await asyncio.to_thread(file_sha256, path))[0]
    except OSError:
        return None
