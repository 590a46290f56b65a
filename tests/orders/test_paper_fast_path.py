"""The paper executor's fast path (one guarded statement per batch) against the general path, on real PostgreSQL.

The fast path must record exactly what the general path records, and a memo that went
stale - capital re-allocated, an open order placed, a position moved by another path -
must be caught by the write's guards, never turned into a fill decided on old numbers.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest

from kubetrade.executor.venues import PaperVenue
from kubetrade.ledger import allocation, connection, paperbatch, queries, record
from kubetrade.messaging.schemas import OrderRequest
from kubetrade.storage import migrate
from tests.orders.conftest import now_ms, order

PRICES = {"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0}


def venue() -> PaperVenue:
    v = PaperVenue()
    for sym, px in PRICES.items():
        v.on_price("binance", sym, px)
    return v


async def general_path(conn: Any, v: PaperVenue, req: OrderRequest) -> None:
    """What the executor does with an order the fast path declines: record, send to the venue, apply."""
    row, _ = await record.record_new(conn, req)
    if row["status"] == "pending":
        result = await v.submit(row)
        await record.apply(conn, row["client_order_id"], result.status, result.fills, result.exchange_order_id)


async def snapshot(conn: Any) -> dict[str, Any]:
    async def rows(sql: str) -> list[dict[str, Any]]:
        return await (await conn.execute(sql)).fetchall()

    return {
        "orders": await rows(
            "SELECT client_order_id, status, side, quantity, price, filled_quantity, average_price, fee, stop_price, "
            "trailing_pct, reduce_only, exchange_order_id FROM orders ORDER BY client_order_id"
        ),
        "fills": await rows(
            "SELECT client_order_id, trade_id, side, quantity, price, fee, fee_currency, realised_pnl FROM fills "
            "ORDER BY client_order_id"
        ),
        "positions": await rows(
            "SELECT strategy, symbol, exchange, quantity, average_price, realised_pnl, fees, mark_price, stop_price, "
            "trailing_pct, best_price FROM positions ORDER BY strategy, symbol"
        ),
        "ledgers": await rows("SELECT strategy, cash, realised_pnl, fees FROM ledgers ORDER BY strategy"),
        "events": await rows("SELECT client_order_id, status FROM order_events ORDER BY client_order_id, id"),
    }


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-12, abs=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


async def test_the_fast_path_records_exactly_what_the_general_path_records(orders_dsn, pg_server) -> None:
    other = pg_server.create_database(f"kt_orders_{uuid.uuid4().hex[:8]}")
    migrate.apply(other)
    fast, slow = await connection.connect(orders_dsn), await connection.connect(other)
    for conn in (fast, slow):
        for s in ("alpha", "beta", "gamma"):
            await allocation.allocate(conn, "paper", s, 10_000.0)
    v, memo, rng = venue(), paperbatch.Memo(), random.Random(11)
    held: dict[tuple[str, str], float] = {}
    taken_fast = declined = 0
    n = 0
    for _ in range(60):
        batch = []
        for _ in range(rng.choice((1, 1, 2, 3, 5, 8))):
            n += 1
            strategy, symbol = rng.choice(("alpha", "beta", "gamma")), rng.choice(tuple(PRICES))
            have = held.get((strategy, symbol), 0.0)
            sell = have > 0 and rng.random() < 0.4
            qty = round(have * rng.choice((0.5, 1.0)), 6) if sell else round(rng.uniform(50, 400) / PRICES[symbol], 6)
            if qty <= 0:
                continue
            stop = None if sell or rng.random() < 0.5 else PRICES[symbol] * 0.97
            batch.append(
                order(
                    f"o-{n}",
                    strategy=strategy,
                    symbol=symbol,
                    side="sell" if sell else "buy",
                    qty=qty,
                    price=PRICES[symbol],
                    stop_price=stop,
                    trailing_pct=0.02 if stop and rng.random() < 0.5 else None,
                    slippage_bps=rng.choice((0.0, 2.0, 5.0)),
                )
            )
            held[(strategy, symbol)] = have + (-qty if sell else qty)
        if not batch:
            continue
        done = await paperbatch.record_and_fill_batch(fast, v, batch, now_ms(), memo)
        if done is None:
            declined += 1
            for req in batch:
                await general_path(fast, v, req)
        else:
            taken_fast += 1
            assert [o["client_order_id"] for o, _ in done] == [r.client_order_id for r in batch]
        for req in batch:
            await general_path(slow, v, req)
    a, b = await snapshot(fast), await snapshot(slow)
    assert len(a["fills"]) == len(b["fills"]) > 100
    for table in a:
        assert same(a[table], b[table]), f"{table} differ between the fast and the general path"
    assert taken_fast > 40, (taken_fast, declined)
    await fast.close()
    await slow.close()


async def test_a_stale_memo_is_caught_by_the_guards_and_never_decides_a_fill(orders_dsn) -> None:
    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "paper", "alpha", 1_000.0)
    v, memo = venue(), paperbatch.Memo()
    assert await paperbatch.record_and_fill(conn, v, order("m-1", qty=0.002), now_ms(), memo)
    assert memo.knows([("default", "alpha")], [("default", "alpha", "BTC/USDT")])

    # 1. capital re-allocated behind the memo's back: the guard on cash fails, the batch re-reads
    await allocation.allocate(conn, "paper", "alpha", 2_000.0)
    stale_cash = memo.cash[("default", "alpha")]
    assert await paperbatch.record_and_fill(conn, v, order("m-2", qty=0.002), now_ms(), memo)
    book = await (await conn.execute("SELECT cash FROM ledgers WHERE strategy = 'alpha'")).fetchone()
    assert memo.cash[("default", "alpha")] == book["cash"] != stale_cash
    assert book["cash"] > 1_000.0  # the extra 1,000 was counted, not overwritten by the old figure

    # 2. an open limit order reserves most of the cash: the memo (which saw no open order) must not
    # be used to approve a buy the reservation leaves no room for
    limit = order("m-3", qty=0.035, type="limit", price=49_000.0)
    row, _ = await record.record_new(conn, limit)
    await record.apply(conn, "m-3", "open", [], "m-3")
    assert memo.knows([("default", "alpha")], [("default", "alpha", "BTC/USDT")])
    assert await paperbatch.record_and_fill(conn, v, order("m-4", qty=0.01), now_ms(), memo) is None
    assert await queries.order(conn, "m-4") is None  # nothing written: the general path decides it

    # 3. the limit order fills through the general path: the position the memo holds is stale
    await record.apply(conn, "m-3", "filled", [v.fill_for({**row, "type": "market"}, now_ms()) or {}], "m-3")
    pos = await (await conn.execute("SELECT quantity FROM positions WHERE strategy = 'alpha'")).fetchone()
    assert pos["quantity"] == pytest.approx(0.039)
    assert await paperbatch.record_and_fill(conn, v, order("m-5", side="sell", qty=0.039), now_ms(), memo)
    pos = await (await conn.execute("SELECT quantity FROM positions WHERE strategy = 'alpha'")).fetchone()
    assert pos["quantity"] == pytest.approx(0.0, abs=1e-12)

    # 4. a replay of a recorded order is declined whole, and nothing is doubled
    assert await paperbatch.record_and_fill(conn, v, order("m-5", side="sell", qty=0.039), now_ms(), memo) is None
    fills = await (await conn.execute("SELECT count(*) AS n FROM fills WHERE client_order_id = 'm-5'")).fetchone()
    assert fills["n"] == 1
    await conn.close()


async def test_a_batch_is_all_or_nothing(orders_dsn) -> None:
    """One order of the batch cannot take the fast path: nothing of the batch is written."""
    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "paper", "alpha", 1_000.0)
    await allocation.allocate(conn, "paper", "beta", 1_000.0)
    v, memo = venue(), paperbatch.Memo()
    batch = [order("a-1", qty=0.002), order("a-2", strategy="beta", qty=0.05), order("a-3", qty=0.001)]
    assert await paperbatch.record_and_fill_batch(conn, v, batch, now_ms(), memo) is None  # beta cannot pay 2,500
    count = await (await conn.execute("SELECT count(*) AS n FROM orders")).fetchone()
    assert count["n"] == 0
    await conn.close()


async def test_a_connection_left_in_a_transaction_or_lost_is_replaced_not_retried(orders_dsn) -> None:
    """The executor reconnects on OperationalError; any other error would retry the order on the same
    connection forever (seen under load: every order refused for 30 s, one every 2 s)."""
    import psycopg

    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "paper", "alpha", 1_000.0)
    v = venue()
    await conn.execute("BEGIN")  # left open, as a cancelled transaction block would leave it
    with pytest.raises(psycopg.OperationalError, match="INTRANS"):
        await paperbatch.record_and_fill(conn, v, order("t-1", qty=0.001), now_ms())
    await conn.execute("ROLLBACK")
    assert await paperbatch.record_and_fill(conn, v, order("t-2", qty=0.001), now_ms()) is not None
    await conn.close()
    with pytest.raises(psycopg.OperationalError, match="unusable"):
        await paperbatch.record_and_fill(conn, v, order("t-3", qty=0.001), now_ms())
