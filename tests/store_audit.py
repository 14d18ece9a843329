"""Audit a whole mirror through the store API: the same checks as tests/mirror_audit.py, on any store.

For a bucket (``s3://BUCKET/PREFIX``), where there is no directory to walk: every record's local
files present with their size and sha256 (and extracted metadata's), each ``<project>/index.html``
listing exactly the recorded files, the root index listing exactly the projects with files, no
key under ``packages/`` that no record names (a ``.provenance`` its file's entry declares is the
file's). SeaweedFS keeps a "directory" listed after its last key is deleted, so a project is in
the tree when its ``index.html`` is there, not when its name is listed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import posixpath
import re
import time
from typing import TYPE_CHECKING, Any

from pipdepot.core.project import PROVENANCE_SUFFIX, local_path_of
from pipdepot.storage.locate import open_store
from pipdepot.storage.store import STATE_DIR, StoreKey
from tests.mirror_audit import SETTLE_S, Audit

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from pipdepot.storage.store import Store

__all__ = ["audit_store"]

_HREF = re.compile(r'href="([^"#]+)(?:#sha256=([0-9a-f]{64}))?"')


def audit_store(
    location: str, scratch: Path, environ: Mapping[str, str], *, settle: float = SETTLE_S
) -> Audit:
    """Every disagreement between the records, the tree and the files of the store at ``location``.

    ``environ`` holds the AWS variables; ``scratch`` is the audit's own spool (it writes nothing).
    Looked at again for up to ``settle`` seconds while a writer converges the tree.
    """
    return asyncio.run(_audit_until(location, scratch, environ, settle))


async def _audit_until(location: str, scratch: Path, environ: Mapping[str, str], settle: float) -> Audit:
    store = open_store(location, scratch=scratch, environ=environ)
    try:
        deadline = time.monotonic() + settle
        while True:
            audit = await _audit(store)
            if not audit.problems or time.monotonic() >= deadline:
                return audit
            await asyncio.sleep(0.1)
    finally:
        await store.close()


async def _audit(store: Store) -> Audit:
    audit = Audit()
    recorded: set[str] = set()
    projects: set[str] = set()
    async for key in store.list(f"{STATE_DIR}/local/"):
        data = await store.read(key) if key.endswith(".json") else None
        if data is None:
            continue
        record = json.loads(data)
        if record.get("local"):
            projects.add(record["name"])
            recorded |= await _audit_project(store, record["name"], record["local"], audit)
    async for key in store.list("packages/"):
        if key not in recorded:
            audit.problems.append(f"orphan: {key}")
    trees = set()
    for name in await store.children(""):
        if (
            name != "packages"
            and not name.startswith(".")
            and await store.stat(StoreKey(f"{name}/index.html"))
        ):
            trees.add(name)
    if trees != projects:
        audit.problems.append(f"project pages {sorted(trees)} but projects with files {sorted(projects)}")
    root = await store.read(StoreKey("index.html"))
    listed = set(re.findall(r'href="([^"/]+)/"', root.decode())) if root is not None else set()
    if listed != projects:
        audit.problems.append(f"root lists {sorted(listed)}, projects with files {sorted(projects)}")
    return audit


async def _audit_project(store: Store, name: str, local: dict[str, Any], audit: Audit) -> set[str]:
    """The keys of the project's recorded files (and metadata files), each checked."""
    listed = await _tree_listing(store, name, audit)
    keys: set[str] = set()
    for filename, info in local.items():
        url = (info.get("entry") or {}).get("url", "")
        key = local_path_of(url, filename).removeprefix("/")
        keys.add(key)
        audit.files += 1
        await _check(store, key, info["size"], info["sha256"], audit)
        if listed.pop(key, None) != info["sha256"]:
            audit.problems.append(f"{name}/index.html does not list {filename} with its sha256")
        metadata = f"{key}.metadata"
        if info.get("metadata_sha256"):
            keys.add(metadata)
            await _check(store, metadata, None, info["metadata_sha256"], audit)
        elif await store.stat(StoreKey(metadata)) is not None:
            keys.add(metadata)  # upstream's PEP 658 metadata, kept once a client asked for it
        provenance = f"{key}{PROVENANCE_SUFFIX}"
        if (info.get("entry") or {}).get("provenance") and await store.stat(StoreKey(provenance)):
            keys.add(provenance)  # upstream's PEP 740 provenance, kept with the file
    audit.problems.extend(f"{name}/index.html lists {key}, not recorded" for key in listed)
    return keys


async def _tree_listing(store: Store, name: str, audit: Audit) -> dict[str, str | None]:
    page = await store.read(StoreKey(f"{name}/index.html"))
    if page is None:
        audit.problems.append(f"{name} has files but no index.html")
        return {}
    return {posixpath.normpath(f"{name}/{href}"): sha or None for href, sha in _HREF.findall(page.decode())}


async def _check(store: Store, key: str, size: int | None, sha256: str, audit: Audit) -> None:
    digest = hashlib.sha256()
    length = 0
    try:
        async for chunk in store.stream(StoreKey(key)):
            digest.update(chunk)
            length += len(chunk)
    except FileNotFoundError:
        audit.problems.append(f"missing: {key}")
        return
    if size is not None and length != size:
        audit.problems.append(f"wrong size: {key} ({length}, recorded {size})")
    elif digest.hexdigest() != sha256:
        audit.problems.append(f"corrupt: {key}")
