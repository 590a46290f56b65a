"""The paper executor's fast path: a fetch of new market orders recorded and filled in a few round trips.

The general path (:func:`store.record_new` then :func:`store.apply`) takes about twenty
statements per order; at a thousand orders a second that is the whole budget.  For the
common paper case - new orders, a known price, ledgers that can pay - this reads what the
decisions need for the whole batch in one pipelined round trip (locking the ledger and
position rows, in a fixed order, as the general path does), decides in Python with the
same pure functions (:func:`ledger.spend_check`, :func:`ledger.apply_fill`), and writes
orders, fills, positions, ledgers and lifecycle events in one more.  Anything else (a
replay, a rejection, no price yet, a limit order) returns None before writing, and the
caller takes the general path, one order at a time.
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection, pq

from kubetrade.executor import ledger
from kubetrade.executor.store import UPSERT_POSITION, is_spot, ts
from kubetrade.executor.venues import PaperVenue
from kubetrade.messaging.schemas import OrderRequest

Row = dict[str, Any]


async def record_and_fill(
    conn: AsyncConnection[Row], venue: PaperVenue, req: OrderRequest, now_ms: int
) -> tuple[Row, Row] | None:
    """One order through the batch path: (order, fill) as recorded, or None for the general path."""
    # inside the executor's batch transaction the batch is the unit; alone, this order is
    atomic = conn.transaction() if conn.info.transaction_status == pq.TransactionStatus.IDLE else nullcontext()
    async with atomic:
        done = await record_and_fill_batch(conn, venue, [req], now_ms)
    return done[0] if done else None


async def record_and_fill_batch(
    conn: AsyncConnection[Row], venue: PaperVenue, reqs: list[OrderRequest], now_ms: int
) -> list[tuple[Row, Row]] | None:
    """A whole fetch of new paper market orders in about three round trips, or None (take the per-order path).

    Must run inside the caller's transaction.  All or nothing: if any order of the batch is
    not a plain new market order that fills and that its ledger can pay, None is returned
    before anything is written, and the caller handles the batch one order at a time.
    """
    if not reqs or any(r.type != "market" for r in reqs):
        return None
    coids = [r.client_order_id for r in reqs]
    if len(set(coids)) != len(coids):
        return None
    env = reqs[0].environment
    if any(r.environment != env for r in reqs):
        return None
    books = sorted({(r.namespace, r.strategy) for r in reqs})
    pairs = sorted({(r.namespace, r.strategy, r.symbol) for r in reqs})
    ns_b, st_b = [b[0] for b in books], [b[1] for b in books]
    ns_p, st_p, sy_p = [p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs]
    async with conn.pipeline():
        c_ledgers = await conn.execute(
            "SELECT namespace, strategy, cash FROM ledgers WHERE environment = %s AND (namespace, strategy) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[])) ORDER BY namespace, strategy FOR UPDATE",
            (env, ns_b, st_b),
        )
        c_positions = await conn.execute(
            "SELECT namespace, strategy, symbol, quantity, average_price, realised_pnl, fees FROM positions "
            "WHERE environment = %s AND (namespace, strategy, symbol) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])) "
            "ORDER BY namespace, strategy, symbol FOR UPDATE",
            (env, ns_p, st_p, sy_p),
        )
        c_known = await conn.execute("SELECT 1 FROM orders WHERE client_order_id = ANY(%s) LIMIT 1", (coids,))
        c_open = await conn.execute(
            "SELECT namespace, strategy, symbol, side, sum(quantity - filled_quantity) AS q, "
            "sum((quantity - filled_quantity) * price * (1 + fee_rate)) AS v FROM orders "
            "WHERE environment = %s AND status IN ('pending', 'open', 'partially_filled') AND (namespace, strategy) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[])) GROUP BY namespace, strategy, symbol, side",
            (env, ns_b, st_b),
        )
        cash = {(r["namespace"], r["strategy"]): float(r["cash"]) for r in await c_ledgers.fetchall()}
        positions = {
            (r["namespace"], r["strategy"], r["symbol"]): ledger.Position(
                float(r["quantity"]), float(r["average_price"]), float(r["realised_pnl"]), float(r["fees"])
            )
            for r in await c_positions.fetchall()
        }
        known = await c_known.fetchone()
        open_rows = await c_open.fetchall()
    if known is not None or len(cash) != len(books):
        return None
    reserved: dict[tuple[str, str], float] = {}
    selling: dict[tuple[str, str, str], float] = {}
    for r in open_rows:
        if r["side"] == "buy":
            k2 = (r["namespace"], r["strategy"])
            reserved[k2] = reserved.get(k2, 0.0) + float(r["v"])
        else:
            selling[(r["namespace"], r["strategy"], r["symbol"])] = float(r["q"])
    when = datetime.fromtimestamp(now_ms / 1000, UTC)
    out: list[tuple[Row, Row]] = []
    order_rows, fill_rows, events = [], [], []
    touched: dict[tuple[str, str, str], ledger.Position] = {}
    marks: dict[tuple[str, str, str], tuple[str, float]] = {}
    opener: dict[tuple[str, str, str], tuple[OrderRequest, float]] = {}
    """The order (and its fill price) that opened a position in this batch: it sets the stop."""
    deltas: dict[tuple[str, str], list[float]] = {}
    for req in reqs:
        book, key = (req.namespace, req.strategy), (req.namespace, req.strategy, req.symbol)
        pos = positions.get(key, ledger.Position())
        order: Row = {
            "client_order_id": req.client_order_id,
            "environment": env,
            "namespace": req.namespace,
            "strategy": req.strategy,
            "exchange": req.exchange,
            "symbol": req.symbol,
            "side": req.side,
            "type": "market",
            "quantity": req.quantity,
            "price": req.price,
            "filled_quantity": 0.0,
            "slippage_bps": req.slippage_bps,
            "fee_rate": req.fee_rate,
        }
        fill = venue.fill_for(order, now_ms)
        if (
            fill is None
            or ledger.spend_check(
                cash[book],
                reserved.get(book, 0.0),
                req.side,
                req.quantity,
                fill["price"],
                req.fee_rate,
                pos.quantity - selling.get(key, 0.0),
                is_spot(req.symbol),
                req.reduce_only,
            )
            is not None
        ):
            return None
        new_pos, realised = ledger.apply_fill(pos, req.side, fill["quantity"], fill["price"], fill["fee"])
        opened = new_pos.quantity != 0 and (pos.quantity == 0 or (pos.quantity > 0) != (new_pos.quantity > 0))
        positions[key] = new_pos
        touched[key] = new_pos
        marks[key] = (req.exchange, fill["price"])
        if opened:
            opener[key] = (req, fill["price"])
        elif new_pos.quantity == 0:
            opener.pop(key, None)
        delta = ledger.cash_after_fill(0.0, req.side, fill["quantity"], fill["price"], fill["fee"])
        cash[book] += delta
        d = deltas.setdefault(book, [0.0, 0.0, 0.0])
        d[0] += delta
        d[1] += realised
        d[2] += fill["fee"]
        order_rows.append(
            (
                req.client_order_id,
                env,
                req.namespace,
                req.strategy,
                req.exchange,
                req.symbol,
                req.side,
                req.quantity,
                req.price,
                req.stop_price,
                req.trailing_pct,
                req.reduce_only,
                req.fee_rate,
                req.slippage_bps,
                fill["quantity"],
                fill["price"],
                fill["fee"],
                req.client_order_id,
                ts(req.time),
                ts(req.expires_at),
            )
        )
        fill_rows.append(
            (
                req.client_order_id,
                req.client_order_id,
                env,
                req.namespace,
                req.strategy,
                req.exchange,
                req.symbol,
                req.side,
                fill["trade_id"],
                fill["quantity"],
                fill["price"],
                fill["fee"],
                fill["fee_currency"],
                realised,
                when,
            )
        )
        events += [(req.client_order_id, env, "pending"), (req.client_order_id, env, "filled")]
        order.update(status="filled", filled_quantity=fill["quantity"], average_price=fill["price"], fee=fill["fee"])
        out.append(
            (
                order,
                {
                    "trade_id": fill["trade_id"],
                    "quantity": fill["quantity"],
                    "price": fill["price"],
                    "fee": fill["fee"],
                    "fee_currency": fill["fee_currency"],
                    "time": when,
                },
            )
        )
    async with conn.pipeline(), conn.cursor() as cur:
        await cur.executemany(
            """INSERT INTO orders (client_order_id, environment, namespace, strategy, exchange, symbol, side, type,
                       quantity, price, stop_price, trailing_pct, reduce_only, fee_rate, slippage_bps, status,
                       filled_quantity, average_price, fee, exchange_order_id, decided_at, expires_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, 'market', %s, %s, %s, %s, %s, %s, %s, 'filled', %s, %s, %s, %s,
                           %s, %s)""",
            order_rows,
        )
        await cur.executemany(
            """INSERT INTO fills (order_id, client_order_id, environment, namespace, strategy, exchange, symbol,
                       side, trade_id, quantity, price, fee, fee_currency, realised_pnl, time)
                   VALUES ((SELECT id FROM orders WHERE client_order_id = %s), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                           %s, %s, %s, %s)""",
            fill_rows,
        )
        await cur.executemany(
            UPSERT_POSITION,
            [_position_params(env, k, p, marks[k], opener.get(k)) for k, p in touched.items()],
        )
        await cur.executemany(
            """UPDATE ledgers SET cash = cash + %s, realised_pnl = realised_pnl + %s, fees = fees + %s,
                       updated_at = now() WHERE environment = %s AND namespace = %s AND strategy = %s""",
            [(d[0], d[1], d[2], env, b[0], b[1]) for b, d in deltas.items()],
        )
        await cur.executemany(
            "INSERT INTO order_events (client_order_id, environment, status) VALUES (%s, %s, %s)", events
        )
    return out


def _position_params(
    env: str,
    key: tuple[str, str, str],
    pos: ledger.Position,
    mark: tuple[str, float],
    opened: tuple[OrderRequest, float] | None,
) -> dict[str, Any]:
    req = opened[0] if opened else None
    return {
        "e": env,
        "n": key[0],
        "s": key[1],
        "y": key[2],
        "x": mark[0],
        "q": pos.quantity,
        "a": pos.average_price,
        "r": pos.realised_pnl,
        "f": pos.fees,
        "m": mark[1],
        "opened": req is not None,
        "sp": req.stop_price if req is not None and not req.reduce_only else None,
        "tp": req.trailing_pct if req is not None else None,
        "b": opened[1] if opened else mark[1],
    }
