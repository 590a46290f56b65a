"""The paper executor over real NATS and PostgreSQL: fills, costs, ledgers, idempotency, bad input."""

from __future__ import annotations

import asyncio
import contextlib
import functools

import pytest

from kubetrade.engine import costs
from kubetrade.executor.executor import Executor
from kubetrade.executor.venues import PaperVenue
from kubetrade.ledger import allocation, connection, queries, record
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import OrderEvent
from tests.orders.conftest import order, paper_books, submit, tick, wait_for


@contextlib.asynccontextmanager
async def running(ex: Executor):
    task = asyncio.create_task(ex.run())
    try:
        await wait_for(lambda: _ready(ex, task))
        yield ex
    finally:
        ex.stopping.set()
        await asyncio.wait_for(task, 30)


async def _ready(ex: Executor, task: asyncio.Task) -> bool:
    if task.done():
        task.result()
    return ex.ready.is_set()


async def test_paper_fill_uses_the_backtest_cost_model_and_the_ledger(orders_dsn, own_nats, nc) -> None:
    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "paper", "alpha", 1_000.0)
    await allocation.allocate(conn, "paper", "beta", 1_000.0)
    events: list[OrderEvent] = []
    await nc.subscribe(subjects.order_events("paper", ">"), cb=functools.partial(_collect, events))
    async with running(Executor("paper", orders_dsn, own_nats.url, PaperVenue(), sync_seconds=0.5)):
        await tick(nc, 50_000.0)
        await wait_for(lambda: _has_price(nc))
        ack = await submit(nc, order("p-1", qty=0.01, slippage_bps=5.0, fee_rate=0.001))
        assert not ack.duplicate
        filled = await wait_for(lambda: _status(conn, "p-1", "filled"))
        px = costs.fill_price("buy", 50_000.0, 0.0005)
        assert filled["average_price"] == pytest.approx(px)
        assert filled["fee"] == pytest.approx(costs.fee(0.01, px, 0.001))
        # the same order again: JetStream drops it inside the window ...
        assert (await submit(nc, order("p-1", qty=0.01))).duplicate
        # ... and the database refuses it beyond (a direct second insert returns the first)
        again, created = await record.record_new(conn, order("p-1", qty=0.01))
        assert not created and again["id"] == filled["id"]
        # beta shares the account but cannot spend alpha's allocation: 0.03 BTC = 1500 > 1000
        await submit(nc, order("p-2", strategy="beta", qty=0.03))
        rejected = await wait_for(lambda: _status(conn, "p-2", "rejected"))
        assert "available" in rejected["reason"]
        # selling more than alpha holds is refused even if the account holds more
        await submit(nc, order("p-3", side="sell", qty=0.02))
        assert "holds" in (await wait_for(lambda: _status(conn, "p-3", "rejected")))["reason"]
        # a limit order rests until the market trades through it
        await submit(nc, order("p-4", side="sell", qty=0.01, type="limit", price=51_000.0))
        await wait_for(lambda: _status(conn, "p-4", "open"))
        await tick(nc, 51_500.0)
        sold = await wait_for(lambda: _status(conn, "p-4", "filled"))
        assert sold["average_price"] == 51_000.0
        await wait_for(lambda: _event(events, "p-4", "filled"))
    cur = await conn.execute("SELECT * FROM positions WHERE strategy = 'alpha'")
    pos = await cur.fetchone()
    assert pos["quantity"] == pytest.approx(0.0)
    assert pos["realised_pnl"] == pytest.approx(0.01 * (51_000.0 - px))
    cur = await conn.execute("SELECT cash, fees FROM ledgers WHERE strategy = 'alpha'")
    book = await cur.fetchone()
    fees = costs.fee(0.01, px, 0.001) + costs.fee(0.01, 51_000.0, 0.001)
    assert book["fees"] == pytest.approx(fees)
    assert book["cash"] == pytest.approx(1_000.0 + 0.01 * (51_000.0 - px) - fees)
    await conn.close()


async def test_bad_messages_go_to_the_dead_letter_subject(orders_dsn, own_nats, nc) -> None:
    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "paper", "alpha", 1_000.0)
    dead: list = []
    await nc.subscribe("dlq.>", cb=functools.partial(_append, dead))
    async with running(Executor("paper", orders_dsn, own_nats.url, PaperVenue(), sync_seconds=0.5)) as ex:
        js = nc.jetstream()
        await js.publish(subjects.order_submit("paper"), b"{not json", headers={"Nats-Msg-Id": "junk-1"})
        await js.publish(subjects.order_submit("paper"), b'{"clientOrderId": "x"}', headers={"Nats-Msg-Id": "x"})
        # a valid order whose Nats-Msg-Id is not its client order id could be doubled: refused
        await js.publish(subjects.order_submit("paper"), codec.encode(order("m-1")), headers={"Nats-Msg-Id": "other"})
        # an order for the live environment sent to the paper executor
        await js.publish(
            subjects.order_submit("paper"), codec.encode(order("m-2", env="live")), headers={"Nats-Msg-Id": "m-2"}
        )
        # a strategy without a ledger: rejected, nothing recorded
        await submit(nc, order("m-3", strategy="ghost"))
        await submit(nc, order("m-4"))  # still works afterwards
        await tick(nc, 50_000.0)
        await wait_for(lambda: _status(conn, "m-4", "filled"))
        await wait_for(lambda: _count(dead, 4))
        assert ex.stats["orders"] == 1
    reasons = sorted(m.headers["Kubetrade-Dlq-Reason"] for m in dead)
    assert any("Nats-Msg-Id" in r for r in reasons) and any("live" in r for r in reasons)
    assert await queries.order(conn, "m-3") is None and await queries.order(conn, "m-1") is None
    await conn.close()


async def _collect(events, msg) -> None:
    events.append(codec.decode(OrderEvent, msg.data))


async def _append(items, msg) -> None:
    items.append(msg)


async def _count(items, n):
    return len(items) >= n


async def _event(events, coid, status):
    return any(e.client_order_id == coid and e.status == status for e in events)


async def _has_price(nc) -> bool:
    await asyncio.sleep(0.05)
    return True


async def _status(conn, coid, status):
    row = await queries.order(conn, coid)
    return row if row is not None and row["status"] == status else None


async def test_a_cancel_that_overtakes_its_order_still_cancels_it(orders_dsn, own_nats, nc) -> None:
    from kubetrade.messaging.schemas import CancelRequest
    from tests.orders.conftest import now_ms

    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "paper", "alpha", 10_000.0)
    async with running(Executor("paper", orders_dsn, own_nats.url, PaperVenue(), sync_seconds=0.5)):
        await tick(nc, 50_000.0)
        cancel = CancelRequest(client_order_id="o-1", environment="paper", time=now_ms())
        await nc.jetstream().publish(
            subjects.order_cancel("paper"), codec.encode(cancel), headers={"Nats-Msg-Id": "cancel-o-1"}
        )
        await asyncio.sleep(0.3)  # let the cancel arrive first (the point of the test, not a timing claim)
        await submit(nc, order("o-1", qty=0.01, type="limit", price=40_000.0))
        row = await wait_for(lambda: _status(conn, "o-1", "cancelled"))
        assert row["filled_quantity"] == 0
    await conn.close()


async def test_a_burst_over_many_strategies_fills_in_overlapping_batches_and_every_book_adds_up(
    orders_dsn, own_nats, nc
) -> None:
    conn = await connection.connect(orders_dsn)
    strategies = [f"s{i:02d}" for i in range(12)]
    for s in strategies:
        await allocation.allocate(conn, "paper", s, 100_000.0)
    ex = Executor("paper", orders_dsn, own_nats.url, PaperVenue(), sync_seconds=60, batch=3, lanes=2)
    async with running(ex):
        await tick(nc, 50_000.0)
        await wait_for(lambda: _has_price(nc))
        js = nc.jetstream()
        n = 360
        await asyncio.gather(
            *(
                js.publish(
                    subjects.order_submit("paper"),
                    codec.encode(order(f"burst-{i:03d}", strategy=strategies[i % 12], qty=0.001 * (1 + i % 3))),
                    headers={"Nats-Msg-Id": f"burst-{i:03d}"},
                )
                for i in range(n)
            )
        )

        async def all_filled() -> bool:
            cur = await conn.execute("SELECT count(*) AS n FROM orders WHERE status = 'filled'")
            row = await cur.fetchone()
            return row is not None and row["n"] >= n

        await wait_for(all_filled)
        assert ex.stats["overlapped"] > 0  # batches of different strategies were in flight together
    rows = await paper_books(conn)
    assert len(rows) == 12
    for r in rows:
        assert r["orders"] == n // 12 and r["events"] == 2 * (n // 12)
    await conn.close()
