"""The operator's close-strategy request: cancel a strategy's open orders and close its positions.

Closing orders are ordinary reduce-only market orders submitted through the same path as
any other (JetStream, client order id, ledger), with ids derived from the position so a
repeated request (the operator retries until it gets an answer) submits nothing twice.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import AsyncConnection

from kubetrade.ledger import queries, record
from kubetrade.ledger.connection import Row
from kubetrade.messaging import codec, signing, subjects
from kubetrade.messaging.schemas import CloseStrategyRequest, CloseStrategyResult, OrderRequest

Cancel = Callable[[Row], Awaitable[None]]
"""The executor's cancel of one recorded order (its venue, its bookkeeping)."""


def closing_id(namespace: str, strategy: str, symbol: str, quantity: float) -> str:
    digest = hashlib.sha256(f"{namespace}|{strategy}|{symbol}|{quantity!r}".encode()).hexdigest()
    return f"close-{digest[:30]}"


async def close_strategy(conn: AsyncConnection[Row], environment: str, js: Any, cancel: Cancel, data: bytes) -> bytes:
    """Answer one close-strategy request: cancel the strategy's live orders, then submit a
    reduce-only market order for each open position through ``js`` (the ORDERS stream)."""
    try:
        req = codec.decode(CloseStrategyRequest, data)
    except codec.BadMessage as exc:
        return codec.encode(CloseStrategyResult(ok=False, message=str(exc)))
    cancelled = 0
    for row in await queries.strategy_live_orders(conn, environment, req.namespace, req.strategy):
        marked = await record.request_cancel(conn, row["client_order_id"])
        await cancel(marked or {**row, "cancel_requested": True})
        cancelled += 1
    closed = 0
    for pos in await queries.strategy_open_positions(conn, environment, req.namespace, req.strategy):
        qty = abs(float(pos["quantity"]))
        order = OrderRequest(
            client_order_id=closing_id(req.namespace, req.strategy, pos["symbol"], float(pos["quantity"])),
            strategy=req.strategy,
            namespace=req.namespace,
            environment=environment,
            exchange=pos["exchange"],
            symbol=pos["symbol"],
            side="sell" if float(pos["quantity"]) > 0 else "buy",
            quantity=qty,
            price=float(pos["mark_price"] or pos["average_price"]),
            reduce_only=True,
            time=int(time.time() * 1000),
        )
        subject, body = subjects.order_submit(environment), codec.encode(order)
        # signed like the risk manager's orders: the executor's own closing orders pass its check
        headers = signing.headers(signing.key_from_env(), subject, order.client_order_id, body)
        await js.publish(subject, body, headers=headers)
        closed += 1
    return codec.encode(
        CloseStrategyResult(
            ok=True,
            cancelled_orders=cancelled,
            closed_positions=closed,
            message=f"cancelled {cancelled} order(s); submitted {closed} closing order(s)",
        )
    )
