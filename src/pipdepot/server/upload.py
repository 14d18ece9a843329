"""Uploads by the legacy upload API (what twine, ``uv publish``, flit, hatch and poetry speak).

A multipart POST to the repository URL: ``:action=file_upload``, the file as ``content``,
its digests, name, version and metadata fields. Before a file is visible it is checked
whole: the token may upload that project, the digests sent match the bytes, the filename
names the project and version sent, and the metadata inside names them too (the checks
``pipdepot add`` makes). It then enters the mirror as an added file does: create-only, so
a different file of the same name is refused (409, as PyPI does) and the same file again is
a no-op. Every read is bounded (the body's size, the number and size of fields, a total
deadline); nothing half-written is ever visible.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import BodyPartReader, MultipartReader, web
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pipdepot.core.distribution import InvalidDistribution, inspect_distribution, parse_filename
from pipdepot.server.tokens import TOKEN_USER, TokenError
from pipdepot.server.upstream import one_line
from pipdepot.storage.store import IntegrityError

if TYPE_CHECKING:
    from aiohttp.web_request import BaseRequest

    from pipdepot.core.distribution import LocalDistribution
    from pipdepot.server.mirror import Mirror
    from pipdepot.server.tokens import Token, Tokens

__all__ = ["UPLOAD_PATHS", "Uploads", "bearer_secret"]

logger = logging.getLogger(__name__)

#: Where uploads are posted: the root (``--repository-url http://host:port/``) and PyPI's own path.
UPLOAD_PATHS = frozenset({"/", "/legacy/"})
#: Fields other than the file: how many, and their bytes in all (a long description is a few 100 KiB).
_MAX_FIELDS = 256
_MAX_FIELD_BYTES = 4 * 1024 * 1024
_CHUNK = 256 * 1024
_DIGESTS = {"sha256_digest": "sha256", "md5_digest": "md5", "blake2_256_digest": "blake2b"}
_FILETYPES = {"bdist_wheel": ".whl", "sdist": ""}


def __dir__() -> list[str]:
    return __all__


class _Refused(Exception):  # noqa: N818 (reads as a sentence: raise _Refused(400, ...))
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class _Form:
    """What the POST carried: its text fields, and the file staged in the spool."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    staged: Path | None = None
    hashes: dict[str, str] = field(default_factory=dict)
    size: int = 0


class Uploads:
    """The upload endpoint of one server."""

    def __init__(self, mirror: Mirror, tokens: Tokens, *, max_size: int, deadline: float) -> None:
        self.mirror = mirror
        self.tokens = tokens
        self.max_size = max_size
        self.deadline = deadline

    async def handle(self, request: BaseRequest) -> web.StreamResponse:
        """Take one upload, or refuse it with a status and a one-line reason."""
        staging = None
        try:
            staging = Path(tempfile.mkdtemp(dir=self.mirror.store.spool_directory(), prefix="upload-"))
            dist, added, token = await self._take(request, staging)
        except _Refused as refused:
            logger.warning("upload refused (%d): %s", refused.status, refused.reason)
            return _answer(refused.status, refused.reason)
        except OSError as exc:  # a full disk, a read-only mirror, a store down: nothing was committed
            logger.warning("upload not stored: %s", exc)
            return _answer(503, f"the mirror could not store the upload: {exc}")
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        done = "uploaded" if added else "already had"
        logger.info("%s %s (%d bytes) with token %s", done, dist.filename, dist.size, token.id)
        return _answer(200, "OK")

    async def _take(self, request: BaseRequest, staging: Path) -> tuple[LocalDistribution, bool, Token]:
        """The verified file, added; whether it was new; the token it came with.

        :raises _Refused: anything wrong, with the status to answer.
        """
        token = await self._authorize(request)
        declared = request.content_length
        if declared is not None and declared > self.max_size + _MAX_FIELD_BYTES:
            raise _Refused(413, f"the upload is larger than the limit of {_mib(self.max_size)}")
        try:
            async with asyncio.timeout(self.deadline):
                form = await self._read(request, token, staging)
        except TimeoutError:
            raise _Refused(408, f"the upload did not arrive within {self.deadline:.0f} s") from None
        except (ValueError, AssertionError, LookupError) as exc:  # aiohttp's words for a malformed body
            raise _Refused(400, f"a malformed multipart body: {one_line(str(exc), 120)}") from None
        self._check_scope(token, form)  # again: the name may have come after the file
        dist = await self._verify(form)
        try:
            return dist, await self.mirror.add(dist), token
        except IntegrityError as exc:
            raise _Refused(409, f"File already exists: {exc}") from None

    async def _authorize(self, request: BaseRequest) -> Token:
        try:
            tokens = await self.tokens.all()
        except TokenError as exc:
            raise _Refused(503, str(exc)) from None
        if not tokens:
            raise _Refused(
                403,
                "uploads are off: this mirror has no token (make one with `pipdepot token create`, "
                "or put files in with `pipdepot add`)",
            )
        secret = bearer_secret(request.headers.get("Authorization", ""))
        if secret is None:
            raise _Refused(403, f"no token: send user {TOKEN_USER} and a token as its password")
        token = await self.tokens.check(secret)
        if token is None:
            raise _Refused(403, "invalid or revoked token")
        return token

    async def _read(self, request: BaseRequest, token: Token, staging: Path) -> _Form:
        """The form's fields and file, each bounded; the token's projects checked before the file is read."""
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError, KeyError) as exc:  # aiohttp asserts the content type
            raise _Refused(400, f"not a multipart/form-data upload: {exc}") from None
        form = _Form()
        field_bytes = 0
        for _ in range(_MAX_FIELDS + 1):
            part = await reader.next()
            if part is None:
                return form
            if isinstance(part, MultipartReader):
                raise _Refused(400, "nested multipart parts are not accepted")
            if part.name == "content":
                self._check_scope(token, form)
                await self._stage(part, form, staging)
                continue
            value = b""
            while chunk := await part.read_chunk(_CHUNK):  # bounded as it arrives, never read whole first
                field_bytes += len(chunk)
                if field_bytes > _MAX_FIELD_BYTES:
                    raise _Refused(413, f"the upload's fields exceed {_mib(_MAX_FIELD_BYTES)}")
                value += chunk
            if (
                part.name and part.name not in form.fields
            ):  # repeated fields (classifiers): the first is enough
                form.fields[part.name] = value.decode("utf-8", errors="replace")
        raise _Refused(400, f"more than {_MAX_FIELDS} fields")

    def _check_scope(self, token: Token, form: _Form) -> None:
        name = canonicalize_name(form.fields.get("name", ""))
        if form.fields.get("name") and not token.may_upload(name):
            raise _Refused(403, f"token {token.id} may not upload to project {name}")

    async def _stage(self, part: BodyPartReader, form: _Form, staging: Path) -> None:
        if form.staged is not None:
            raise _Refused(400, "more than one file in one upload")
        filename = part.filename or ""
        if not filename or "/" in filename or "\\" in filename or filename.startswith("."):
            raise _Refused(400, f"unusable file name {filename!r}")
        hashes = {algorithm: _hasher(algorithm) for algorithm in _DIGESTS.values()}
        target = staging / filename
        with target.open("wb") as stream:
            while chunk := await part.read_chunk(_CHUNK):
                form.size += len(chunk)
                if form.size > self.max_size:
                    raise _Refused(413, f"{filename} is larger than the limit of {_mib(self.max_size)}")
                for hasher in hashes.values():
                    hasher.update(chunk)
                await asyncio.to_thread(stream.write, chunk)
        form.filename, form.staged = filename, target
        form.hashes = {algorithm: hasher.hexdigest() for algorithm, hasher in hashes.items()}

    async def _verify(self, form: _Form) -> LocalDistribution:
        fields = form.fields
        action = fields.get(":action")
        if action != "file_upload":
            raise _Refused(400, f"unsupported :action {action!r}: only file_upload")
        if form.staged is None or form.filename is None:
            raise _Refused(400, "no file: the upload needs a 'content' part")
        sent = {
            algorithm: fields[name].strip().lower()
            for name, algorithm in _DIGESTS.items()
            if fields.get(name)
        }
        if not sent:
            raise _Refused(400, "no digest: send sha256_digest (and md5_digest, blake2_256_digest)")
        for algorithm, digest in sent.items():
            if digest != form.hashes[algorithm]:
                raise _Refused(400, f"the {algorithm} digest sent does not match the file received")
        _check_filename(form.filename, fields)
        try:
            return await asyncio.to_thread(inspect_distribution, form.staged)
        except InvalidDistribution as exc:
            raise _Refused(400, str(exc)) from None


def _check_filename(filename: str, fields: dict[str, str]) -> None:
    """The filename must name the project and version the form does, and be of the filetype given."""
    try:
        name, version = parse_filename(filename)
    except InvalidDistribution as exc:
        raise _Refused(400, str(exc)) from None
    given = fields.get("name", "")
    if not given or canonicalize_name(given) != name:
        raise _Refused(400, f"{filename} is not a file of project {given!r}")
    try:
        same = Version(fields.get("version", "")) == version
    except InvalidVersion:
        same = False
    if not same:
        raise _Refused(400, f"{filename} is not a file of version {fields.get('version', '')!r}")
    filetype = fields.get("filetype")
    if filetype in _FILETYPES and filename.endswith(".whl") != (filetype == "bdist_wheel"):
        raise _Refused(400, f"{filename} is not of filetype {filetype!r}")


def bearer_secret(header: str) -> str | None:
    """The token in an ``Authorization`` header: Basic with user ``__token__``; ``None`` if none.

    Bearer is taken too (what ``uv publish`` may send to a trusted-publishing index).
    """
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() != "basic":
        return None
    with contextlib.suppress(binascii.Error, UnicodeDecodeError):
        user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        if user == TOKEN_USER and password:
            return password
    return None


def _hasher(algorithm: str) -> hashlib._Hash | hashlib.blake2b:
    return hashlib.blake2b(digest_size=32) if algorithm == "blake2b" else hashlib.new(algorithm)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MiB"


def _answer(status: int, reason: str) -> web.StreamResponse:
    """One line, in the body and the reason phrase: twine and uv show the phrase."""
    phrase = reason.encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ")[:200]
    return web.Response(status=status, reason=phrase if status != 200 else "OK", text=reason + "\n")
