"""Audit a whole mirror directory: what its records say against what is on disk.

Used after SIGKILLs: every recorded file present with its size and sha256 (and its metadata
file's: extracted, or upstream's as the file's entry announces it), each project's ``index.html``
listing exactly the recorded files, the root listing exactly the projects that have files, no
file under ``packages/`` that no record names (a file's PEP 740 ``.provenance``, kept when its
entry declares one, is the file's).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipdepot.core.project import PROVENANCE_SUFFIX, local_path_of

_HREF = re.compile(r'href="([^"#]+)(?:#sha256=([0-9a-f]{64}))?"')


@dataclass
class Audit:
    files: int = 0
    problems: list[str] = field(default_factory=list)


#: The tree converges on the records within a second (the root index after a short delay).
SETTLE_S = 2.0


def audit_mirror(mirror: Path, *, settle: float = SETTLE_S) -> Audit:
    """Every disagreement between the records, the static tree and the files on disk.

    A running writer may still be converging the tree: disagreements are looked for again
    for up to ``settle`` seconds; what remains is reported.
    """
    deadline = time.monotonic() + settle
    while True:
        audit = _audit(mirror)
        if not audit.problems or time.monotonic() >= deadline:
            return audit
        time.sleep(0.1)


def _audit(mirror: Path) -> Audit:
    audit = Audit()
    recorded: set[Path] = set()
    projects: set[str] = set()
    for record_path in sorted((mirror / ".pipdepot" / "local").glob("*.json")):
        record = json.loads(record_path.read_bytes())
        if record.get("local"):
            projects.add(record["name"])
            recorded |= _audit_project(mirror, record["name"], record["local"], audit, _listed_only(record))
    packages = mirror / "packages"
    for path in packages.rglob("*") if packages.is_dir() else []:
        if path.is_file() and path not in recorded:
            audit.problems.append(f"orphan: {path.relative_to(mirror)}")
    trees = {p.parent.name for p in mirror.glob("*/index.html") if p.parent.name != "packages"}
    if trees != projects:
        audit.problems.append(f"project pages {sorted(trees)} but projects with files {sorted(projects)}")
    root = mirror / "index.html"
    listed_projects = set(re.findall(r'href="([^"/]+)/"', root.read_text())) if root.exists() else set()
    if listed_projects != projects:
        audit.problems.append(f"root lists {sorted(listed_projects)}, projects with files {sorted(projects)}")
    return audit


def _listed_only(record: dict[str, Any]) -> set[str] | None:
    """A private project's page lists its own (added, uploaded) files only; ``None``: every local file."""
    added = {entry["filename"] for entry in record.get("added") or ()}
    return added if added and not record.get("merge_upstream") else None


def _audit_project(
    mirror: Path, name: str, local: dict[str, Any], audit: Audit, only: set[str] | None = None
) -> set[Path]:
    """The paths of the project's recorded files (and metadata files), each checked.

    ``only``: the files its page lists (a private project's own); the others are checked on disk alone.
    """
    listed = _tree_listing(mirror, name, audit)
    paths: set[Path] = set()
    for filename, info in local.items():
        url = (info.get("entry") or {}).get("url", "")
        path = mirror / local_path_of(url, filename).removeprefix("/")
        paths.add(path)
        audit.files += 1
        _check_file(path, info["size"], info["sha256"], audit)
        if only is not None and filename not in only:
            if path in listed:
                audit.problems.append(f"{name}/index.html lists {filename}, not the private project's own")
        elif listed.pop(path, None) != info["sha256"]:
            audit.problems.append(f"{name}/index.html does not list {filename} with its sha256")
        metadata = path.with_name(path.name + ".metadata")
        if info.get("metadata_sha256"):  # extracted from the file: always kept beside it
            paths.add(metadata)
            _check_file(metadata, None, info["metadata_sha256"], audit)
        elif (announced := _announced_metadata(info.get("entry") or {})) and metadata.exists():
            paths.add(metadata)  # upstream's PEP 658 metadata, kept once a client asked for it
            _check_file(metadata, None, announced, audit)
        provenance = path.with_name(path.name + PROVENANCE_SUFFIX)
        if (info.get("entry") or {}).get("provenance") and provenance.exists():
            paths.add(provenance)  # upstream's PEP 740 provenance, kept with the file: a JSON object
            if not isinstance(json.loads(provenance.read_bytes()), dict):
                audit.problems.append(f"not a provenance document: {provenance.name}")
    audit.problems.extend(f"{name}/index.html lists {path.name}, not recorded" for path in listed)
    return paths


def _announced_metadata(entry: dict[str, Any]) -> str | None:
    """The sha256 of the PEP 658 metadata a file's entry announces, if any."""
    for key in ("core-metadata", "dist-info-metadata"):
        value = entry.get(key)
        sha256 = value.get("sha256") if isinstance(value, dict) else None
        if isinstance(sha256, str):
            return sha256
    return None


def _tree_listing(mirror: Path, name: str, audit: Audit) -> dict[Path, str | None]:
    page = mirror / name / "index.html"
    if not page.exists():
        audit.problems.append(f"{name} has files but no index.html")
        return {}
    listing: dict[Path, str | None] = {}
    for href, sha in _HREF.findall(page.read_text()):
        listing[(page.parent / href).resolve()] = sha or None
    return {_unresolve(mirror, path): sha for path, sha in listing.items()}


def _unresolve(mirror: Path, path: Path) -> Path:
    return mirror / path.relative_to(mirror.resolve())


def _check_file(path: Path, size: int | None, sha256: str, audit: Audit) -> None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        audit.problems.append(f"missing: {path.name}")
        return
    if size is not None and len(data) != size:
        audit.problems.append(f"wrong size: {path.name} ({len(data)}, recorded {size})")
    elif hashlib.sha256(data).hexdigest() != sha256:
        audit.problems.append(f"corrupt: {path.name}")


def spool_leftovers(mirror: Path) -> list[Path]:
    """Every file in the writers' spools but their lock files: work a writer left behind.

    Each writing process has ``.pipdepot/tmp/<id>/`` and holds ``.pipdepot/tmp/<id>.lock``
    while it lives; a live writer's empty directory and its lock are not leftovers, anything
    else is (a download, a staged page, a dead writer's commit marker). Safe to call while
    writers create and remove their files.
    """
    scratch = mirror / ".pipdepot" / "tmp"
    found: list[Path] = []
    for directory, _, files in os.walk(scratch):
        here = Path(directory)
        found += [here / name for name in files if not (here == scratch and name.endswith(".lock"))]
    return sorted(found)
