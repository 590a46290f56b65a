"""Named reads of the order record, for the executor's own checks and for everyone else.

The risk manager, the runner, the API and the local report read orders, fills, positions
and ledgers only through these functions; what a row means is documented once, in the
migrations and in :mod:`kubetrade.ledger.record`.  Every function returns rows as dicts,
whatever the connection's own row factory (the API's pool hands out plain ones).
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from kubetrade.ledger.connection import Row

Conn = AsyncConnection[Any]


async def _all(conn: Conn, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def _one(conn: Conn, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
    rows = await _all(conn, sql, params)
    return rows[0] if rows else None


# --- one order ---------------------------------------------------------------------------------


async def order(conn: Conn, client_order_id: str) -> Row | None:
    return await _one(conn, "SELECT * FROM orders WHERE client_order_id = %s", (client_order_id,))


async def order_by_id_or_client_id(conn: Conn, order_id: str) -> Row | None:
    return await _one(conn, "SELECT * FROM orders WHERE client_order_id = %s OR id::text = %s", (order_id, order_id))


async def order_fills(conn: Conn, order_id: int) -> list[Row]:
    return await _all(conn, "SELECT * FROM fills WHERE order_id = %s ORDER BY id", (order_id,))


async def order_events(conn: Conn, client_order_id: str) -> list[Row]:
    return await _all(
        conn, "SELECT status, detail, time FROM order_events WHERE client_order_id = %s ORDER BY id", (client_order_id,)
    )


# --- the executor's working set ------------------------------------------------------------------


async def live_orders(conn: Conn, environment: str) -> list[Row]:
    """Orders whose status may still change: what the executor drives and reconciles."""
    return await _all(
        conn,
        "SELECT * FROM orders WHERE environment = %s AND status IN ('pending', 'open', 'partially_filled') ORDER BY id",
        (environment,),
    )


async def traded_symbols(conn: Conn, environment: str) -> list[str]:
    rows = await _all(conn, "SELECT DISTINCT symbol FROM orders WHERE environment = %s", (environment,))
    return [r["symbol"] for r in rows]


async def strategy_live_orders(conn: Conn, environment: str, namespace: str, strategy: str) -> list[Row]:
    return await _all(
        conn,
        "SELECT * FROM orders WHERE environment = %s AND namespace = %s AND strategy = %s "
        "AND status IN ('pending', 'open', 'partially_filled')",
        (environment, namespace, strategy),
    )


async def strategy_open_positions(conn: Conn, environment: str, namespace: str, strategy: str) -> list[Row]:
    return await _all(
        conn,
        "SELECT * FROM positions WHERE environment = %s AND namespace = %s AND strategy = %s AND quantity <> 0",
        (environment, namespace, strategy),
    )


# --- a strategy's own view (its runner) ----------------------------------------------------------


async def strategy_fills(conn: Conn, environment: str, namespace: str, strategy: str) -> list[Row]:
    """Every fill of one strategy, oldest first: what its runner rebuilds its books from."""
    return await _all(
        conn,
        "SELECT client_order_id, trade_id, symbol, side, quantity, price, fee, time FROM fills "
        "WHERE environment = %s AND namespace = %s AND strategy = %s ORDER BY id",
        (environment, namespace, strategy),
    )


# --- the risk manager's book ---------------------------------------------------------------------

OPEN_POSITIONS = (
    "SELECT environment, namespace, strategy, symbol, exchange, quantity, average_price, mark_price, stop_price, "
    "trailing_pct, best_price, stop_generation FROM positions WHERE quantity <> 0"
)
"""The open positions, with the columns the risk book and the stops use (no timestamps to convert)."""


async def ledgers(conn: Conn) -> list[Row]:
    """Every strategy's ledger: who trades under which policy, with what capital and cash."""
    return await _all(conn, "SELECT environment, namespace, strategy, risk_policy, capital, cash FROM ledgers")


async def open_positions(conn: Conn) -> list[Row]:
    return await _all(conn, OPEN_POSITIONS)


async def unsettled(conn: Conn, client_order_ids: str) -> list[Row]:
    """Of these client order ids (space-separated: an id never contains one, the orders' CHECK
    constraint), those not recorded yet (status None) or not final, with what they filled so far."""
    return await _all(
        conn,
        "SELECT c.id, o.status, o.filled_quantity, o.quantity, o.side "
        "FROM unnest(string_to_array(%s, ' ')) AS c(id) "
        "LEFT JOIN orders AS o ON o.client_order_id = c.id "
        "WHERE o.status IS NULL OR o.status NOT IN ('filled', 'cancelled', 'rejected', 'expired')",
        (client_order_ids,),
    )


async def finished(conn: Conn, client_order_ids: list[str]) -> list[Row]:
    """Of these orders, those in a final status, with the position they belong to."""
    return await _all(
        conn,
        "SELECT client_order_id, status, strategy, symbol, environment, namespace FROM orders "
        "WHERE client_order_id = ANY(%s) AND status IN ('filled', 'cancelled', 'rejected', 'expired')",
        (client_order_ids,),
    )


# --- listings (the API) --------------------------------------------------------------------------


async def list_orders(conn: Conn, environment: str | None, strategy: str | None, status: str | None,
                      limit: int) -> list[Row]:
    return await _all(
        conn,
        "SELECT * FROM orders WHERE (%s::text IS NULL OR environment = %s) AND (%s::text IS NULL OR strategy = %s) "
        "AND (%s::text IS NULL OR status = %s) ORDER BY id DESC LIMIT %s",
        (environment, environment, strategy, strategy, status, status, limit),
    )


async def list_positions(conn: Conn, environment: str | None, strategy: str | None, include_flat: bool) -> list[Row]:
    return await _all(
        conn,
        "SELECT * FROM positions WHERE (%s::text IS NULL OR environment = %s) AND (%s::text IS NULL OR strategy = %s) "
        "AND (%s OR quantity <> 0) ORDER BY environment, namespace, strategy, symbol",
        (environment, environment, strategy, strategy, include_flat),
    )


async def position_quantity(conn: Conn, environment: str, namespace: str, strategy: str, symbol: str) -> float:
    """The signed filled position of one strategy in one symbol, by the order record (0 when it has none)."""
    row = await _one(
        conn,
        "SELECT quantity FROM positions WHERE environment = %s AND namespace = %s AND strategy = %s AND symbol = %s",
        (environment, namespace, strategy, symbol),
    )
    return float(row["quantity"]) if row else 0.0


async def list_fills(conn: Conn, environment: str | None, strategy: str | None, symbol: str | None,
                     limit: int) -> list[Row]:
    return await _all(
        conn,
        "SELECT * FROM fills WHERE (%s::text IS NULL OR environment = %s) AND (%s::text IS NULL OR strategy = %s) "
        "AND (%s::text IS NULL OR symbol = %s) ORDER BY id DESC LIMIT %s",
        (environment, environment, strategy, strategy, symbol, symbol, limit),
    )


# --- totals (the local stack's report) -----------------------------------------------------------


async def orders_by_status(conn: Conn, environment: str) -> dict[str, int]:
    rows = await _all(
        conn, "SELECT status, count(*) AS n FROM orders WHERE environment = %s GROUP BY status", (environment,)
    )
    return {r["status"]: int(r["n"]) for r in rows}


async def fill_count(conn: Conn, environment: str) -> int:
    row = await _one(conn, "SELECT count(*) AS n FROM fills WHERE environment = %s", (environment,))
    return int(row["n"]) if row else 0


async def last_rejected(conn: Conn, environment: str, limit: int = 10) -> list[Row]:
    return await _all(
        conn,
        "SELECT client_order_id, strategy, symbol, side, quantity, reduce_only, reason FROM orders "
        "WHERE environment = %s AND status = 'rejected' ORDER BY id DESC LIMIT %s",
        (environment, limit),
    )


# --- figures (the console) -----------------------------------------------------------------------


async def equity_by_environment(conn: Conn) -> list[Row]:
    """Per environment: capital allocated, cash, open positions valued at their mark (else their average
    price), equity = cash + that value, and PnL since allocation = equity - capital (fees included)."""
    return await _all(
        conn,
        """SELECT l.environment, count(*) AS strategies, sum(l.capital) AS capital, sum(l.cash) AS cash,
                  coalesce(sum(p.value), 0) AS positions_value,
                  sum(l.cash) + coalesce(sum(p.value), 0) AS equity,
                  sum(l.cash) + coalesce(sum(p.value), 0) - sum(l.capital) AS pnl,
                  coalesce(sum(p.open), 0) AS open_positions
             FROM ledgers l
             LEFT JOIN (SELECT environment, namespace, strategy,
                               sum(quantity * coalesce(mark_price, average_price)) AS value,
                               count(*) FILTER (WHERE quantity <> 0) AS open
                          FROM positions GROUP BY environment, namespace, strategy) p
               USING (environment, namespace, strategy)
            GROUP BY l.environment ORDER BY l.environment""",
    )


async def realised_since(conn: Conn, since: Any) -> list[Row]:
    """Per environment: PnL realised by fills at or after ``since``, after their fees, and how many fills."""
    return await _all(
        conn,
        "SELECT environment, sum(realised_pnl - fee) AS pnl, count(*) AS fills FROM fills WHERE time >= %s "
        "GROUP BY environment ORDER BY environment",
        (since,),
    )


async def strategy_fill_history(conn: Conn, environment: str, namespace: str, strategy: str,
                                limit: int = 5000) -> list[Row]:
    """A strategy's fills, oldest first (its chart markers, realised equity curve and trade list)."""
    return await _all(
        conn,
        "SELECT * FROM (SELECT * FROM fills WHERE environment = %s AND namespace = %s AND strategy = %s "
        "ORDER BY time DESC, id DESC LIMIT %s) newest ORDER BY time, id",
        (environment, namespace, strategy, limit),
    )


async def ledger_of(conn: Conn, environment: str, namespace: str, strategy: str) -> Row | None:
    return await _one(
        conn, "SELECT * FROM ledgers WHERE environment = %s AND namespace = %s AND strategy = %s",
        (environment, namespace, strategy),
    )
