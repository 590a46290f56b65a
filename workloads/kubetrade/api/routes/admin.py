"""``/api/v1/admin/api-keys``: create, list, inspect and revoke API keys (scope ``admin``).

The same operations are on the command line (``kubetrade api-keys``) for the first key,
which no API call can create.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import Field, StringConstraints

from kubetrade.api import keys
from kubetrade.api.deps import Connection, Limit, Page
from kubetrade.api.errors import NOT_FOUND
from kubetrade.api.keys import Scope, StoredKey
from kubetrade.api.security import require
from kubetrade.resources.base import Model

router = APIRouter(prefix="/api/v1/admin/api-keys", tags=["admin"], dependencies=[require("admin")])

KeyId = Annotated[str, Path(pattern=r"^[a-z0-9]{12}$", description="The key's public id.")]


class KeyRequest(Model):
    """A key to create."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    """Who or what uses the key, e.g. grafana or ci."""
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=3)]
    """read: look; trade: change strategies, orders, alerts; admin: manage keys and limits."""
    rate_limit: Annotated[int, Field(gt=0, le=10_000_000)] | None = None
    """Requests per rate window for this key; the API's default when absent."""


class ApiKey(Model):
    """A key as stored: everything but the secret."""

    id: str
    name: str
    scopes: list[Scope]
    rate_limit: int | None = None
    created_at: datetime
    revoked_at: datetime | None = None


class NewApiKey(ApiKey):
    key: str
    """The key itself. Shown once: only its hash is kept."""


def _out(k: StoredKey) -> ApiKey:
    return ApiKey(
        id=k.id,
        name=k.name,
        scopes=list(k.scopes),
        rate_limit=k.rate_limit,
        created_at=k.created_at,
        revoked_at=k.revoked_at,
    )


@router.post("", status_code=201, response_model=NewApiKey, summary="Create an API key (shown once)")
async def create_key(body: KeyRequest, request: Request, conn: Connection) -> NewApiKey:
    stored, key = await keys.create(
        conn, body.name, list(body.scopes), request.app.state.settings.api_key_pepper, body.rate_limit
    )
    return NewApiKey(**_out(stored).model_dump(), key=key)


@router.get("", response_model=Page[ApiKey], summary="List API keys")
async def list_keys(
    conn: Connection,
    limit: Limit = 100,
    after: Annotated[str | None, Query(pattern=r"^[a-z0-9]{12}$")] = None,
    include_revoked: bool = True,
) -> Page[ApiKey]:
    found = await keys.listing(conn, include_revoked=include_revoked, limit=limit + 1, after=after)
    more = len(found) > limit
    found = found[:limit]
    return Page[ApiKey](items=[_out(k) for k in found], next=found[-1].id if more else None)


@router.get("/{key_id}", response_model=ApiKey, responses=NOT_FOUND, summary="Show an API key")
async def get_key(key_id: KeyId, conn: Connection) -> ApiKey:
    stored = await keys.get(conn, key_id)
    if stored is None:
        raise HTTPException(404, f"no API key {key_id}")
    return _out(stored)


@router.delete("/{key_id}", response_model=ApiKey, responses=NOT_FOUND, summary="Revoke an API key")
async def revoke_key(key_id: KeyId, request: Request, conn: Connection) -> ApiKey:
    stored = await keys.revoke(conn, key_id)
    if stored is None:
        raise HTTPException(404, f"no API key {key_id}")
    gate = getattr(request.app.state, "gate", None)
    if gate is not None:
        gate.cache.evict(key_id)  # this replica at once; the others on NOTIFY
    return _out(stored)
