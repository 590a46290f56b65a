"""The executor's writes to the order record: orders, fills, positions, ledgers (migration 0300).

Every write that belongs together is one transaction: a fill, the position it moves, the
ledger cash it spends and the order's filled quantity commit together or not at all, so
a SIGKILL between any two statements leaves nothing half-done.  Fills are keyed by the
exchange's trade id, so replaying a fill (after a restart, a redelivery or a periodic sync)
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from kubetrade.ledger import accounting, orderstatus
from kubetrade.ledger.connection import Row, is_spot, ts
from kubetrade.messaging.schemas import OrderRequest

UPSERT_POSITION = """INSERT INTO positions (environment, namespace, strategy, symbol, exchange, quantity, average_price,
           realised_pnl, fees, mark_price, stop_price, trailing_pct, best_price)
       VALUES (%(e)s, %(n)s, %(s)s, %(y)s, %(x)s, %(q)s, %(a)s, %(r)s, %(f)s, %(m)s, %(sp)s, %(tp)s, %(b)s)
       ON CONFLICT (environment, namespace, strategy, symbol) DO UPDATE SET
         quantity = %(q)s, average_price = %(a)s, realised_pnl = %(r)s, fees = %(f)s, mark_price = %(m)s,
         stop_price = CASE WHEN %(opened)s THEN %(sp)s ELSE positions.stop_price END,
         trailing_pct = CASE WHEN %(opened)s THEN %(tp)s ELSE positions.trailing_pct END,
         best_price = CASE WHEN %(opened)s THEN %(b)s ELSE positions.best_price END,
         updated_at = now()"""
"""A position after a fill: the stop, trail and best price are reset only when the fill opens it."""


@dataclass
class Applied:
    """What one state update did: the order after it and the fills that were new."""

    order: Row
    new_fills: list[Row]
    changed: bool


async def _event(conn: AsyncConnection[Row], order: Row, status: str, detail: str | None) -> None:
    await conn.execute(
        "INSERT INTO order_events (client_order_id, environment, status, detail) VALUES (%s, %s, %s, %s)",
        (order["client_order_id"], order["environment"], status, detail),
    )


async def record_new(conn: AsyncConnection[Row], req: OrderRequest) -> tuple[Row, bool]:
    """Insert a decided order, or return the one already recorded under its client order id.

    The strategy's ledger row is locked for the spend check, so two orders of one strategy
    cannot both spend the same cash; an order the ledger cannot pay is recorded as rejected.
    """
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT * FROM ledgers WHERE environment = %s AND namespace = %s AND strategy = %s FOR UPDATE",
            (req.environment, req.namespace, req.strategy),
        )
        book = await cur.fetchone()
        cur = await conn.execute("SELECT * FROM orders WHERE client_order_id = %s", (req.client_order_id,))
        existing = await cur.fetchone()
        if existing is not None:
            return existing, False
        if book is None:
            raise LookupError(f"strategy {req.namespace}/{req.strategy} has no {req.environment} ledger")
        why = await _spend_check(conn, book, req)
        cur = await conn.execute(
            """INSERT INTO orders (client_order_id, environment, namespace, strategy, exchange, symbol, side, type,
                   quantity, price, stop_price, trailing_pct, reduce_only, fee_rate, slippage_bps, status, reason,
                   decided_at, expires_at, bar_exit)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (client_order_id) DO NOTHING RETURNING *""",
            (
                req.client_order_id,
                req.environment,
                req.namespace,
                req.strategy,
                req.exchange,
                req.symbol,
                req.side,
                req.type,
                req.quantity,
                req.price,
                req.stop_price,
                req.trailing_pct,
                req.reduce_only,
                req.fee_rate,
                req.slippage_bps,
                "rejected" if why else "pending",
                why,
                ts(req.time),
                ts(req.expires_at),
                (Jsonb(req.bar_exit.to_k8s()) if req.bar_exit is not None and req.environment == "paper"
                 and req.reduce_only else None),
            ),
        )
        row = await cur.fetchone()
        if row is None:  # a concurrent insert won: theirs is the order
            cur = await conn.execute("SELECT * FROM orders WHERE client_order_id = %s", (req.client_order_id,))
            found = await cur.fetchone()
            assert found is not None
            return found, False
        await _event(conn, row, row["status"], why)
        return row, True


async def _spend_check(conn: AsyncConnection[Row], book: Row, req: OrderRequest) -> str | None:
    cur = await conn.execute(
        """SELECT
             COALESCE((SELECT quantity FROM positions WHERE environment = %(e)s AND namespace = %(n)s
                       AND strategy = %(s)s AND symbol = %(y)s), 0) AS position,
             COALESCE((SELECT sum((quantity - filled_quantity) * price * (1 + fee_rate)) FROM orders
                       WHERE environment = %(e)s AND namespace = %(n)s AND strategy = %(s)s AND side = 'buy'
                       AND status IN ('pending', 'open', 'partially_filled')), 0) AS reserved,
             COALESCE((SELECT sum(quantity - filled_quantity) FROM orders
                       WHERE environment = %(e)s AND namespace = %(n)s AND strategy = %(s)s AND symbol = %(y)s
                       AND side = 'sell' AND status IN ('pending', 'open', 'partially_filled')), 0) AS selling""",
        {"e": req.environment, "n": req.namespace, "s": req.strategy, "y": req.symbol},
    )
    got = await cur.fetchone()
    assert got is not None
    price = req.price * (1 + req.slippage_bps / 10_000) if req.type == "market" else req.price
    position = float(got["position"]) - float(got["selling"])
    return accounting.spend_check(
        float(book["cash"]),
        float(got["reserved"]),
        req.side,
        req.quantity,
        price,
        req.fee_rate,
        position,
        is_spot(req.symbol),
        req.reduce_only,
    )


async def bump_attempt(conn: AsyncConnection[Row], order_id: int) -> int:
    """Count a submission before it is sent: an order with attempts > 0 is looked up before any resend."""
    cur = await conn.execute(
        "UPDATE orders SET submit_attempts = submit_attempts + 1, updated_at = now() WHERE id = %s "
        "RETURNING submit_attempts",
        (order_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["submit_attempts"])


async def apply(
    conn: AsyncConnection[Row],
    client_order_id: str,
    observed: str,
    fills: list[dict[str, Any]],
    exchange_order_id: str | None = None,
    reason: str | None = None,
    fee_in_quote: bool = True,
) -> Applied:
    """Record what the venue says about an order: new fills, then the status (never backwards)."""
    async with conn.transaction():
        cur = await conn.execute("SELECT * FROM orders WHERE client_order_id = %s FOR UPDATE", (client_order_id,))
        order = await cur.fetchone()
        if order is None:
            raise LookupError(f"order {client_order_id} is not recorded")
        new_fills = []
        for fill in fills:
            row = await _record_fill(conn, order, fill, fee_in_quote)
            if row is not None:
                new_fills.append(row)
        cur = await conn.execute(
            "SELECT COALESCE(sum(quantity), 0) AS q, COALESCE(sum(quantity * price), 0) AS n, "
            "COALESCE(sum(fee), 0) AS f FROM fills WHERE order_id = %s",
            (order["id"],),
        )
        sums = await cur.fetchone()
        assert sums is not None
        filled = float(sums["q"])
        status = observed
        if status == "filled" and filled < order["quantity"] * (1 - 1e-9):
            status = "partially_filled" if filled > 0 else "open"  # fills not seen yet: the next sync completes it
        elif status in ("open", "partially_filled") and filled > 0:
            status = "filled" if filled >= order["quantity"] * (1 - 1e-9) else "partially_filled"
        status = orderstatus.merge(order["status"], status)
        changed = status != order["status"] or bool(new_fills)
        if changed or (exchange_order_id and exchange_order_id != order["exchange_order_id"]):
            cur = await conn.execute(
                """UPDATE orders SET status = %s, filled_quantity = %s, average_price = %s, fee = %s,
                       exchange_order_id = COALESCE(%s, exchange_order_id), reason = COALESCE(%s, reason),
                       updated_at = now()
                   WHERE id = %s RETURNING *""",
                (
                    status,
                    filled,
                    float(sums["n"]) / filled if filled else None,
                    float(sums["f"]),
                    exchange_order_id,
                    reason,
                    order["id"],
                ),
            )
            updated = await cur.fetchone()
            assert updated is not None
            if status != order["status"]:
                await _event(conn, updated, status, reason)
            order = updated
        return Applied(order, new_fills, changed)


async def _record_fill(conn: AsyncConnection[Row], order: Row, fill: dict[str, Any], fee_in_quote: bool) -> Row | None:
    fee = float(fill.get("fee") or 0.0)
    base = order["symbol"].split("/")[0]
    if fill.get("fee_currency") == base:
        fee *= float(fill["price"])  # a fee charged in the base asset, valued in quote for the ledger
    cur = await conn.execute(
        """SELECT * FROM positions WHERE environment = %s AND namespace = %s AND strategy = %s AND symbol = %s
           FOR UPDATE""",
        (order["environment"], order["namespace"], order["strategy"], order["symbol"]),
    )
    prow = await cur.fetchone()
    pos = (
        accounting.Position(
            float(prow["quantity"]), float(prow["average_price"]), float(prow["realised_pnl"]), float(prow["fees"])
        )
        if prow
        else accounting.Position()
    )
    new_pos, realised = accounting.apply_fill(pos, order["side"], float(fill["quantity"]), float(fill["price"]), fee)
    cur = await conn.execute(
        """INSERT INTO fills (order_id, client_order_id, environment, namespace, strategy, exchange, symbol, side,
               trade_id, quantity, price, fee, fee_currency, realised_pnl, time)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (environment, exchange, symbol, trade_id) DO NOTHING RETURNING *""",
        (
            order["id"],
            order["client_order_id"],
            order["environment"],
            order["namespace"],
            order["strategy"],
            order["exchange"],
            order["symbol"],
            order["side"],
            fill["trade_id"],
            fill["quantity"],
            fill["price"],
            fee,
            fill.get("fee_currency") or "",
            realised,
            ts(int(fill.get("time") or 0)) or datetime.now(UTC),
        ),
    )
    row = await cur.fetchone()
    if row is None:
        return None  # already recorded: a replay changes nothing
    opened = pos.quantity == 0 or (pos.quantity > 0) != (new_pos.quantity > 0)
    await conn.execute(
        UPSERT_POSITION,
        {
            "e": order["environment"],
            "n": order["namespace"],
            "s": order["strategy"],
            "y": order["symbol"],
            "x": order["exchange"],
            "q": new_pos.quantity,
            "a": new_pos.average_price,
            "r": new_pos.realised_pnl,
            "f": new_pos.fees,
            "m": float(fill["price"]),
            "b": float(fill["price"]),
            "sp": order["stop_price"] if not order["reduce_only"] else None,
            "tp": order["trailing_pct"],
            "opened": opened and new_pos.quantity != 0,
        },
    )
    cash_delta = accounting.cash_after_fill(0.0, order["side"], float(fill["quantity"]), float(fill["price"]), fee)
    await conn.execute(
        """UPDATE ledgers SET cash = cash + %s, realised_pnl = realised_pnl + %s, fees = fees + %s, updated_at = now()
           WHERE environment = %s AND namespace = %s AND strategy = %s""",
        (cash_delta, realised, fee, order["environment"], order["namespace"], order["strategy"]),
    )
    return row


async def request_cancel(conn: AsyncConnection[Row], client_order_id: str) -> Row | None:
    cur = await conn.execute(
        "UPDATE orders SET cancel_requested = true, updated_at = now() WHERE client_order_id = %s RETURNING *",
        (client_order_id,),
    )
    return await cur.fetchone()


async def record_reconciliation(
    conn: AsyncConnection[Row], environment: str, started: datetime, checked: int, differences: list[dict[str, Any]]
) -> None:
    await conn.execute(
        "INSERT INTO reconciliations (environment, started_at, orders_checked, differences) VALUES (%s, %s, %s, %s)",
        (environment, started, checked, Jsonb(differences)),
    )
