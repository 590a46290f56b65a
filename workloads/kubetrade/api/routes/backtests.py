"""``/api/v1/backtests``: backtests asked for with ``POST /api/v1/strategies/{name}/backtest``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from kubetrade.api.deps import Connection, Limit, Page
from kubetrade.api.errors import NOT_FOUND
from kubetrade.api.routes.strategies import Backtest, to_backtest
from kubetrade.backtestjobs import store

router = APIRouter(prefix="/api/v1/backtests", tags=["backtests"])


def _cursor(value: str | None) -> tuple[datetime, uuid.UUID] | None:
    if value is None:
        return None
    stamp, _, ident = value.partition("~")
    try:
        return datetime.fromisoformat(stamp), uuid.UUID(ident)
    except ValueError as exc:
        raise HTTPException(422, "after: not a cursor this API returned") from exc


@router.get("", response_model=Page[Backtest], summary="List backtests, newest first")
async def list_backtests(
    conn: Connection,
    limit: Limit = 50,
    after: Annotated[str | None, Query(max_length=100, description="The ``next`` of the previous page.")] = None,
    namespace: Annotated[str | None, Query(max_length=63)] = None,
    strategy: Annotated[str | None, Query(max_length=253)] = None,
    status: Literal["pending", "running", "succeeded", "failed"] | None = None,
) -> Page[Backtest]:
    rows = await store.listing(
        conn, namespace=namespace, strategy=strategy, status=status, limit=limit + 1, before=_cursor(after)
    )
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = f"{rows[-1]['created_at'].isoformat()}~{rows[-1]['id']}" if more else None
    return Page[Backtest](items=[to_backtest(r) for r in rows], next=nxt)


@router.get("/{backtest_id}", response_model=Backtest, responses=NOT_FOUND, summary="Show a backtest")
async def get_backtest(backtest_id: uuid.UUID, conn: Connection) -> Backtest:
    row = await store.get(conn, backtest_id)
    if row is None:
        raise HTTPException(404, f"no backtest {backtest_id}")
    return to_backtest(row)
