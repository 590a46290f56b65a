"""The operator's close-strategy request: cancel a strategy's open orders and close its positions.

Closing orders are ordinary reduce-only market orders submitted through the same path as
any other (JetStream, client order id, ledger), with ids derived from the position so a
repeated request (the operator retries until it gets an answer) submits nothing twice.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

from kubetrade.messaging import codec, signing, subjects
from kubetrade.messaging.schemas import CloseStrategyRequest, CloseStrategyResult, OrderRequest

if TYPE_CHECKING:
    from kubetrade.executor.executor import Executor


def closing_id(namespace: str, strategy: str, symbol: str, quantity: float) -> str:
    digest = hashlib.sha256(f"{namespace}|{strategy}|{symbol}|{quantity!r}".encode()).hexdigest()
    return f"close-{digest[:30]}"


async def close_strategy(executor: Executor, data: bytes) -> bytes:
    try:
        req = codec.decode(CloseStrategyRequest, data)
    except codec.BadMessage as exc:
        return codec.encode(CloseStrategyResult(ok=False, message=str(exc)))
    conn = executor.conn
    assert conn is not None
    cur = await conn.execute(
        "SELECT * FROM orders WHERE environment = %s AND namespace = %s AND strategy = %s "
        "AND status IN ('pending', 'open', 'partially_filled')",
        (executor.environment, req.namespace, req.strategy),
    )
    cancelled = 0
    for row in await cur.fetchall():
        await conn.execute("UPDATE orders SET cancel_requested = true WHERE id = %s", (row["id"],))
        row["cancel_requested"] = True
        await executor._cancel(row)
        cancelled += 1
    cur = await conn.execute(
        "SELECT * FROM positions WHERE environment = %s AND namespace = %s AND strategy = %s AND quantity <> 0",
        (executor.environment, req.namespace, req.strategy),
    )
    js = executor.nc.jetstream()
    closed = 0
    for pos in await cur.fetchall():
        qty = abs(float(pos["quantity"]))
        order = OrderRequest(
            client_order_id=closing_id(req.namespace, req.strategy, pos["symbol"], float(pos["quantity"])),
            strategy=req.strategy,
            namespace=req.namespace,
            environment=executor.environment,
            exchange=pos["exchange"],
            symbol=pos["symbol"],
            side="sell" if float(pos["quantity"]) > 0 else "buy",
            quantity=qty,
            price=float(pos["mark_price"] or pos["average_price"]),
            reduce_only=True,
            time=int(time.time() * 1000),
        )
        subject, data = subjects.order_submit(executor.environment), codec.encode(order)
        headers = signing.headers(executor.signing_key, subject, order.client_order_id, data)
        await js.publish(subject, data, headers=headers)
        closed += 1
    return codec.encode(
        CloseStrategyResult(
            ok=True,
            cancelled_orders=cancelled,
            closed_positions=closed,
            message=f"cancelled {cancelled} order(s); submitted {closed} closing order(s)",
        )
    )
