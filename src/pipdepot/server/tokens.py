"""Upload tokens: made once, kept only as hashes in the mirror's state, checked without timing leaks.

A token is 256 random bits, so one SHA-256 of it is as good as a slow password hash (nothing
to guess from the hash), and checking one costs a microsecond. Tokens live in the store
(``.pipdepot/tokens.json``), so every node serving the store knows the same ones; a running
server reads them again at most once a second, and a revoked token stops working within it.
Changes are made by compare-and-swap, as the records are.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pipdepot.storage.store import STATE_DIR, AlreadyExists, StoreKey, VersionMismatch

if TYPE_CHECKING:
    from collections.abc import Callable

    from pipdepot.core.names import NormalizedName
    from pipdepot.storage.store import Store

__all__ = ["TOKENS", "TOKEN_PREFIX", "TOKEN_USER", "Token", "TokenError", "Tokens"]

#: Where the tokens' hashes are kept.
TOKENS = StoreKey(f"{STATE_DIR}/tokens.json")
#: Every token starts so: a secret scanner (or a person) knows one when it leaks.
TOKEN_PREFIX = "pipdepot-"  # noqa: S105 (a prefix, not a secret)
#: The user name clients send with a token as password (PyPI's convention).
TOKEN_USER = "__token__"  # noqa: S105 (a user name, not a secret)
_FORMAT = 1
_ATTEMPTS = 100


def __dir__() -> list[str]:
    return __all__


class TokenError(ValueError):
    """A token command that cannot be carried out (no such token, an unreadable token file)."""


@dataclass(frozen=True, slots=True)
class Token:
    """What is kept of a token: its hash, never itself."""

    #: A short public name (the hash's first 12 hex digits), for ``list`` and ``revoke``.
    id: str
    sha256: str
    #: The projects it may upload to; empty: any.
    projects: tuple[NormalizedName, ...]
    created: str
    description: str = ""

    def may_upload(self, project: NormalizedName) -> bool:
        """Whether this token may upload files of ``project``."""
        return not self.projects or project in self.projects

    def as_json(self) -> dict[str, object]:
        """The token as kept (and as ``token list --json`` shows it)."""
        return {
            "id": self.id,
            "sha256": self.sha256,
            "projects": list(self.projects),
            "created": self.created,
            "description": self.description,
        }


class Tokens:
    """The mirror's tokens, read through a cache of ``max_age`` seconds."""

    def __init__(self, store: Store, *, max_age: float = 1.0) -> None:
        self.store = store
        self.max_age = max_age
        self._kept: tuple[Token, ...] | None = None
        self._checked = 0.0
        self._reading = asyncio.Lock()

    async def all(self) -> tuple[Token, ...]:
        """Every token (cached ``max_age`` seconds).

        :raises TokenError: the token file is unreadable (refusing everything is the safe answer).
        """
        if self._kept is not None and time.monotonic() - self._checked < self.max_age:
            return self._kept
        async with self._reading:
            if self._kept is None or time.monotonic() - self._checked >= self.max_age:
                current = await self.store.read_versioned(TOKENS)
                self._kept = _parse(current.data) if current is not None else ()
                self._checked = time.monotonic()
            return self._kept

    async def check(self, secret: str) -> Token | None:
        """The token ``secret`` is, or ``None``.

        Every kept hash is compared, each in constant time, whether or not one matched: the
        time taken says nothing of how close a guess was, nor which token matched.
        """
        digest = hashlib.sha256(secret.encode()).hexdigest()
        found = None
        for token in await self.all():
            if hmac.compare_digest(token.sha256, digest):
                found = token
        return found

    async def create(self, projects: tuple[NormalizedName, ...], description: str = "") -> tuple[str, Token]:
        """A new token: the secret (shown once, never kept) and what is kept of it."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = hashlib.sha256(secret.encode()).hexdigest()
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        token = Token(digest[:12], digest, tuple(sorted(set(projects))), created, description)
        await self._update(lambda tokens: [*tokens, token])
        return secret, token

    async def revoke(self, token_id: str) -> Token:
        """Remove the token whose id is ``token_id`` (or starts so, when that is one token).

        :raises TokenError: no token, or more than one, matches.
        """
        gone: list[Token] = []

        def without(tokens: list[Token]) -> list[Token]:
            matching = [t for t in tokens if t.id.startswith(token_id)]
            if not token_id or len(matching) != 1:
                what = "no token" if not matching else f"{len(matching)} tokens"
                raise TokenError(f"{what} with an id starting {token_id!r}: see `pipdepot token list`")
            gone[:] = matching
            return [t for t in tokens if t is not matching[0]]

        await self._update(without)
        return gone[0]

    async def _update(self, change: Callable[[list[Token]], list[Token]]) -> None:
        for _ in range(_ATTEMPTS):
            current = await self.store.read_versioned(TOKENS)
            tokens = list(_parse(current.data)) if current is not None else []
            data = _dump(change(tokens))
            try:
                if current is None:
                    await self.store.put(TOKENS, data, create=True)
                else:
                    await self.store.put(TOKENS, data, if_version=current.version)
            except (AlreadyExists, VersionMismatch):
                await asyncio.sleep(secrets.randbelow(20) / 1000)
                continue
            self._kept = None
            return
        raise TimeoutError(f"the token file kept changing under {_ATTEMPTS} attempts")


def _parse(data: bytes) -> tuple[Token, ...]:
    try:
        raw = json.loads(data)
        if raw.get("format") != _FORMAT:
            raise TokenError(f"unknown token file format {raw.get('format')!r}")
        return tuple(
            Token(
                str(t["id"]),
                str(t["sha256"]),
                tuple(t.get("projects", ())),
                str(t.get("created", "")),
                str(t.get("description", "")),
            )
            for t in raw["tokens"]
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TokenError(f"the mirror's token file {TOKENS} is unreadable: {exc}") from None


def _dump(tokens: list[Token]) -> bytes:
    document = {"format": _FORMAT, "tokens": [t.as_json() for t in tokens]}
    return json.dumps(document, indent=1).encode()
