"""API keys: how they are made, hashed, stored, revoked and looked up.

A key reads ``kt_<id>_<secret>``.  The ``id`` (12 characters) is public: it finds the
row and names the key in logs.  The secret is 256 random bits and is shown once.

Why HMAC-SHA256 with a server pepper and not a slow hash (bcrypt, argon2): slow hashes
protect *low-entropy* secrets (passwords) against offline guessing.  A 256-bit random
secret cannot be guessed whatever the hash costs, while a slow hash would cost tens of
milliseconds of CPU on every request and sink the API's throughput.  The pepper
(``KUBETRADE_API_KEY_PEPPER``, from a Secret, never in the database) makes a stolen copy
of the table useless on its own: without the pepper nobody can even check a candidate.

Revocation is immediate across replicas: the revoking transaction sends
``NOTIFY kubetrade_api_keys, '<id>'`` and every API process evicts the key from its cache
(:mod:`kubetrade.api.security`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, get_args

import psycopg

Scope = Literal["read", "trade", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
NOTIFY_CHANNEL = "kubetrade_api_keys"

_KEY = re.compile(r"^kt_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


class KeyRequestError(ValueError):
    """A key that cannot be created as asked (bad name, scope or limit)."""


@dataclass(frozen=True)
class StoredKey:
    id: str
    name: str
    scopes: tuple[Scope, ...]
    rate_limit: int | None
    created_at: datetime
    revoked_at: datetime | None
    hash: bytes = b""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def generate() -> tuple[str, str]:
    """A new (id, full key)."""
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
    return key_id, f"kt_{key_id}_{secrets.token_urlsafe(32)}"


def split(key: str) -> str | None:
    """The key id of a well-formed key, else None (a malformed key never reaches the database)."""
    match = _KEY.match(key)
    return match.group(1) if match else None


def digest(key: str, pepper: str) -> bytes:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).digest()


def matches(key: str, stored_hash: bytes, pepper: str) -> bool:
    return hmac.compare_digest(digest(key, pepper), stored_hash)


def check_request(name: str, scopes: list[str], rate_limit: int | None) -> None:
    if not 1 <= len(name) <= 100:
        raise KeyRequestError("name must be 1 to 100 characters")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise KeyRequestError(f"scopes must be a non-empty subset of {list(SCOPES)}, got {scopes}")
    if rate_limit is not None and rate_limit <= 0:
        raise KeyRequestError("rate limit must be positive")


_COLUMNS = "id, name, scopes, rate_limit, created_at, revoked_at, hash"


def _row(row: tuple[object, ...]) -> StoredKey:
    key_id, name, scopes, rate_limit, created, revoked, h = row
    return StoredKey(str(key_id), str(name), tuple(scopes), rate_limit, created, revoked, bytes(h))  # type: ignore[arg-type,call-overload]


LOCAL_PEPPER_FILE = ".kubetrade/api-key-pepper"
"""Where ``kubetrade up`` keeps its pepper (mode 0600), so that ``kubetrade api-keys`` in another shell agrees."""


def local_pepper(path: str | Path, create: bool = False) -> str | None:
    """The pepper in ``path``; with ``create``, made (random, mode 0600) when the file does not exist yet."""
    path = Path(path)
    if path.is_file():
        return path.read_text().strip() or None
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    pepper = secrets.token_hex(32)
    path.write_text(pepper + "\n")
    return pepper


async def create(conn: psycopg.AsyncConnection, name: str, scopes: list[str], pepper: str,
                 rate_limit: int | None = None) -> tuple[StoredKey, str]:
    """Store a new key; returns the record and the key itself, which is never seen again."""
    check_request(name, scopes, rate_limit)
    ordered = [s for s in SCOPES if s in scopes]
    key_id, key = generate()
    cur = await conn.execute(
        f"INSERT INTO api_keys (id, name, scopes, hash, rate_limit) VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",  # noqa: S608 - constant
        (key_id, name, ordered, digest(key, pepper), rate_limit),
    )
    row = await cur.fetchone()
    assert row is not None
    return _row(row), key


async def revoke(conn: psycopg.AsyncConnection, key_id: str) -> StoredKey | None:
    """Revoke a key (idempotent) and tell every API replica; None when there is no such key."""
    async with conn.transaction():
        cur = await conn.execute(
            f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s RETURNING {_COLUMNS}",  # noqa: S608
            (key_id,),
        )
        row = await cur.fetchone()
        if row is not None:
            await conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, key_id))
    return None if row is None else _row(row)


async def get(conn: psycopg.AsyncConnection, key_id: str) -> StoredKey | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = %s", (key_id,))  # noqa: S608
    row = await cur.fetchone()
    return None if row is None else _row(row)


async def listing(conn: psycopg.AsyncConnection, *, include_revoked: bool = True, limit: int = 100,
                  after: str | None = None) -> list[StoredKey]:
    """Keys ordered by id, a page at a time (``after``: the last id of the previous page)."""
    cur = await conn.execute(
        f"""SELECT {_COLUMNS} FROM api_keys
             WHERE (%(all)s OR revoked_at IS NULL) AND (%(after)s::text IS NULL OR id > %(after)s)
             ORDER BY id LIMIT %(limit)s""",  # noqa: S608
        {"all": include_revoked, "after": after, "limit": limit},
    )
    return [_row(r) for r in await cur.fetchall()]
