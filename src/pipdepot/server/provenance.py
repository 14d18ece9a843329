"""PEP 740 provenance, kept with its file: upstream's document stored and served as ``<file>.provenance``.

Upstream names a file's provenance by a URL on its own file host, dead to an offline mirror's
clients. pipdepot fetches the document once (while the file downloads, or when a client first
asks for it), keeps it beside the file, and its pages point there instead (see ``pages``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pipdepot.core.project import ADDED_SCHEME, PROVENANCE_SUFFIX
from pipdepot.core.urls import redact_url
from pipdepot.errors import UpstreamError

if TYPE_CHECKING:
    from pipdepot.core.project import FileEntry
    from pipdepot.server.upstream import UpstreamClient

__all__ = [
    "PROVENANCE_LIMIT",
    "PROVENANCE_SUFFIX",
    "check_provenance",
    "fetch_provenance",
    "upstream_provenance",
]

#: The largest provenance document kept; PyPI's are a few KiB (one bundle of one attestation).
PROVENANCE_LIMIT = 1024 * 1024


def __dir__() -> list[str]:
    return __all__


class InvalidProvenance(ValueError):  # noqa: N818 (as packaging names them: InvalidWheelFilename)
    """What claims to be a provenance document is not one."""


def upstream_provenance(entry: FileEntry) -> str | None:
    """The URL of upstream's provenance for the file; ``None``: it declares none.

    >>> upstream_provenance({"url": "https://h/x.whl", "provenance": "https://h/x.whl.provenance"})
    'https://h/x.whl.provenance'
    >>> upstream_provenance({"url": "https://h/x.whl", "provenance": None}) is None
    True
    """
    url = entry.get("provenance")
    if not isinstance(url, str) or "://" not in url or str(entry["url"]).startswith(ADDED_SCHEME):
        return None
    return url


def check_provenance(data: bytes) -> None:
    """Refuse what cannot be a provenance document (PEP 740: a JSON object).

    Its attestations are the client's to verify; the mirror only keeps what claims the form.

    :raises InvalidProvenance: ``data`` is not a UTF-8 JSON object.

    >>> check_provenance(b'{"version": 1, "attestation_bundles": []}')
    >>> check_provenance(b"<html>")
    Traceback (most recent call last):
    pipdepot.server.provenance.InvalidProvenance: not JSON
    """
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise InvalidProvenance("not JSON") from None
    if not isinstance(document, dict):
        raise InvalidProvenance(f"a JSON {type(document).__name__}, not an object")


async def fetch_provenance(client: UpstreamClient, url: str) -> bytes:
    """Upstream's provenance document, at most :data:`PROVENANCE_LIMIT` bytes, checked.

    :raises UpstreamError: no answer, too large, or not a provenance document.
    """
    data = await client.fetch_small(url, limit=PROVENANCE_LIMIT)
    try:
        check_provenance(data)
    except InvalidProvenance as exc:
        raise UpstreamError(f"{redact_url(url)}: provenance refused: {exc}") from None
    return data
