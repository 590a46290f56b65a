"""``/api/v1/orders``, ``/api/v1/positions``, ``/api/v1/trades``: the executor's record.

Reads come from PostgreSQL (the executor's source of truth).  Writes never touch the
database directly: a new order is a signal sent to the risk manager (so a person's order
passes the same limits as a strategy's), a cancel is a message on the executor's cancel
stream.  Both answer 202 with what was asked; the order's fate is read back by id.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import Field, StringConstraints

from kubetrade.api.routes.risk import decide
from kubetrade.ledger import queries
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import CancelRequest, ClientOrderId, Side, Signal
from kubetrade.resources.base import DNS1123Name, ExchangeId, Model, Symbol
from kubetrade.validation.semantic import short

router = APIRouter(prefix="/api/v1", tags=["orders"])
log = logging.getLogger(__name__)
BASIS_READ_SECONDS = 2.0
"""Longest wait for a reduce-only order's position read (then the order goes without one)."""
Env = Literal["paper", "live"]


class NewOrder(Model):
    """A manual order; it goes through the risk manager like any strategy's signal."""

    strategy: DNS1123Name
    namespace: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)] = "default"
    environment: Env = "paper"
    exchange: ExchangeId = "binance"
    symbol: Symbol
    side: Side
    type: Literal["market", "limit"] = "market"
    quantity: float = Field(gt=0, strict=True)
    price: float = Field(gt=0, strict=True)
    stop_price: float | None = Field(default=None, gt=0, strict=True)
    reduce_only: bool = False
    """Only reduce or close the strategy's position, never open or flip one (capped at the position; the
    position the order record holds goes with it, so a risk book behind that fill re-reads the ledger)."""
    client_order_id: ClientOrderId | None = None
    """Give one to make retries of this request safe; one is generated otherwise."""


def _pool(request: Request) -> Any:
    pool = request.app.state.db_pool
    if pool is None:
        raise HTTPException(503, "no database configured (KUBETRADE_DATABASE_URL)")
    return pool


def _nats(request: Request) -> Any:
    nc = request.app.state.nats
    if nc is None or not nc.is_connected:
        raise HTTPException(503, "NATS is not reachable", headers={"Retry-After": "5"})
    return nc


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


async def _read(request: Request, query: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """One named query of the order record on a pooled connection, its rows made JSON-ready."""
    async with _pool(request).connection() as conn:
        got = await query(conn, *args)
    if got is None:
        return None
    return [_jsonable(r) for r in got] if isinstance(got, list) else _jsonable(got)


async def _basis(request: Request, body: NewOrder) -> float | None:
    """The position a manual reduce-only order reduces, as the order record holds it: sent as the signal's
    ``position``, so that a risk manager whose book has not read that fill yet (it was approved by another
    replica, or before a restart) re-reads the ledger before it refuses or cuts the order, as it does for a
    runner's exit.  None (no claim: the risk manager decides on its book) when the API has no database or the
    read fails; the decision is always the risk manager's, never this read's."""
    pool = request.app.state.db_pool
    if pool is None:
        return None
    try:
        async with asyncio.timeout(BASIS_READ_SECONDS), pool.connection() as conn:
            return await queries.position_quantity(conn, body.environment, body.namespace, body.strategy, body.symbol)
    except (TimeoutError, OSError, psycopg.Error) as exc:
        log.warning("reduce-only order %s/%s %s: the position could not be read (%s); sent without one",
                    body.namespace, body.strategy, body.symbol, type(exc).__name__)
        return None


@router.post("/orders", status_code=202)
async def create_order(body: NewOrder, request: Request) -> dict[str, Any]:
    coid = body.client_order_id or f"api-{uuid.uuid4().hex[:28]}"
    position = await _basis(request, body) if body.reduce_only else None
    signal = Signal(
        strategy=body.strategy,
        namespace=body.namespace,
        client_order_id=coid,
        exchange=body.exchange,
        symbol=body.symbol,
        side=body.side,
        quantity=body.quantity,
        price=body.price,
        stop_price=body.stop_price,
        reduce_only=body.reduce_only,
        position=position,
        time=int(time.time() * 1000),
        mode=body.environment,
        order_type=body.type,
    )
    decision = await decide(request, signal, f"; retry with clientOrderId {coid}")
    return {"clientOrderId": coid, "decision": decision.model_dump(by_alias=True, exclude_none=True)}


@router.get("/orders")
async def list_orders(
    request: Request,
    environment: Env | None = None,
    strategy: str | None = None,
    status: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await _read(request, queries.list_orders, environment, strategy, status, limit)
    return rows


async def _order(request: Request, order_id: str) -> dict[str, Any]:
    row: dict[str, Any] | None = await _read(request, queries.order_by_id_or_client_id, order_id)
    if row is None:
        raise HTTPException(404, f"no order with client order id or id {short(order_id)}")
    return row


@router.get("/orders/{order_id}")
async def get_order(order_id: str, request: Request) -> dict[str, Any]:
    order = await _order(request, order_id)
    order["fills"] = await _read(request, queries.order_fills, order["id"])
    order["events"] = await _read(request, queries.order_events, order["client_order_id"])
    return order


@router.delete("/orders/{order_id}", status_code=202)
async def cancel_order(order_id: str, request: Request) -> dict[str, Any]:
    order = await _order(request, order_id)
    if order["status"] in ("filled", "cancelled", "rejected", "expired"):
        raise HTTPException(409, f"order {order['client_order_id']} is already {order['status']}")
    req = CancelRequest(
        client_order_id=order["client_order_id"], environment=order["environment"], time=int(time.time() * 1000)
    )
    await (
        _nats(request)
        .jetstream()
        .publish(
            subjects.order_cancel(order["environment"]),
            codec.encode(req),
            headers={"Nats-Msg-Id": f"cancel-{req.client_order_id}"},
        )
    )
    return {"clientOrderId": req.client_order_id, "cancel": "requested"}


@router.get("/positions")
async def positions(
    request: Request,
    environment: Env | None = None,
    strategy: str | None = None,
    include_flat: bool = False,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await _read(request, queries.list_positions, environment, strategy, include_flat)
    for r in rows:
        mark = r.get("mark_price") or r["average_price"]
        r["unrealised_pnl"] = (mark - r["average_price"]) * r["quantity"] if r["quantity"] else 0.0
    return rows


@router.get("/trades")
async def trades(
    request: Request,
    environment: Env | None = None,
    strategy: str | None = None,
    symbol: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await _read(request, queries.list_fills, environment, strategy, symbol, limit)
    return rows
