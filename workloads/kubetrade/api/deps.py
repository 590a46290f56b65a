"""Small dependencies the routers share: a database connection, a page of a list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, HTTPException, Query, Request
from pydantic import Field

from kubetrade.resources.base import Model

T = TypeVar("T")

MAX_PAGE = 500


async def connection(request: Request) -> AsyncIterator[Any]:
    """A pooled connection for the request, or 503 when the API has no database."""
    pool = getattr(request.app.state, "db_pool", None)
    if pool is None:
        raise HTTPException(503, "the API has no database configured")
    async with pool.connection() as conn:
        yield conn


Connection = Annotated[Any, Depends(connection)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Items per page (1 to {MAX_PAGE}).")]


class Page(Model, Generic[T]):
    """One page of a list; pass ``next`` back as ``after`` for the following page."""

    items: list[T]
    next: str | None = Field(default=None, description="Cursor of the next page, absent on the last one.")
