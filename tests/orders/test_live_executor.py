"""The live executor through ccxt's real Binance client against the local exchange:
timeouts are looked up, not retried blind; reconciliation at start adopts what happened
while it was down; rejections are final; the environment's singleton lease holds."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys

import pytest

from kubetrade.executor.executor import Executor
from kubetrade.executor.lease import AlreadyHeld
from kubetrade.executor.venues import CcxtVenue, PaperVenue
from kubetrade.ledger import allocation, connection, queries, record
from kubetrade_testbed.exchange import Fault
from tests.orders.conftest import ccxt_client, order, submit, wait_for


@pytest.fixture
def keys(exchange, monkeypatch):
    monkeypatch.setenv("KUBETRADE_EXCHANGE_API_KEY", exchange.api_key)
    monkeypatch.setenv("KUBETRADE_EXCHANGE_SECRET", exchange.secret)


def live(dsn, url, exchange, **kw) -> Executor:
    venue = CcxtVenue("binance", exchange.url, timeout_ms=500)
    return Executor("live", dsn, url, venue, sync_seconds=0.3, settle_seconds=0.3, ack_wait=5, **kw)


@contextlib.asynccontextmanager
async def running(ex: Executor):
    task = asyncio.create_task(ex.run(wait_for_lease=False))

    async def ready():
        if task.done():
            task.result()
        return ex.ready.is_set()

    try:
        await wait_for(ready)
        yield ex
    finally:
        ex.stopping.set()
        await asyncio.wait_for(task, 30)


async def _status(conn, coid, *statuses):
    row = await queries.order(conn, coid)
    return row if row is not None and row["status"] in statuses else None


async def test_timeouts_rejections_and_rate_limits(orders_dsn, own_nats, nc, exchange, keys) -> None:
    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "live", "alpha", 100_000.0)
    ts = exchange.trading
    async with running(live(orders_dsn, own_nats.url, exchange)) as ex:
        # accepted and filled, but the answer never comes in time: looked up, adopted, not resent
        ts.faults.hang_after_accept, ts.faults.hang_seconds = 1, 1.5
        await submit(nc, order("l-1", env="live", qty=0.01))
        row = await wait_for(lambda: _status(conn, "l-1", "filled"))
        assert ts.accepted["l-1"] == 1 and row["submit_attempts"] >= 1 and ex.stats["uncertain"] >= 1
        cur = await conn.execute("SELECT count(*) AS n FROM fills WHERE client_order_id = 'l-1'")
        assert (await cur.fetchone())["n"] == 1
        # the exchange says no: rejected with its reason, never retried
        ts.faults.reject = 1
        await submit(nc, order("l-2", env="live", qty=0.01))
        row = await wait_for(lambda: _status(conn, "l-2", "rejected"))
        assert "Order would trigger immediately" in row["reason"] and "l-2" not in ts.accepted
        # rate limited (429, then 500): not a rejection; it goes through once the exchange answers
        exchange.state.faults.inject(Fault("/api/v3/order", status=429, body={"code": -1003, "msg": "Too many"}))
        exchange.state.faults.inject(Fault("/api/v3/order", status=500))
        await submit(nc, order("l-3", env="live", qty=0.01))
        await wait_for(lambda: _status(conn, "l-3", "filled"))
        assert ts.accepted["l-3"] == 1
        # a partial fill completes through the periodic sync
        ts.faults.partial = 1
        await submit(nc, order("l-4", env="live", qty=0.01))
        await wait_for(lambda: _status(conn, "l-4", "partially_filled"))
        ts.complete_partials()
        done = await wait_for(lambda: _status(conn, "l-4", "filled"))
        assert done["filled_quantity"] == pytest.approx(0.01)
        # a resting limit order is cancelled by client order id
        await submit(nc, order("l-5", env="live", qty=0.001, type="limit", price=40_000.0))
        await wait_for(lambda: _status(conn, "l-5", "open"))
        from kubetrade.messaging import codec, subjects
        from kubetrade.messaging.schemas import CancelRequest

        await nc.jetstream().publish(
            subjects.order_cancel("live"),
            codec.encode(CancelRequest(client_order_id="l-5", environment="live", time=1)),
            headers={"Nats-Msg-Id": "c-l-5"},
        )
        await wait_for(lambda: _status(conn, "l-5", "cancelled"))
    cur = await conn.execute("SELECT quantity FROM positions WHERE strategy = 'alpha'")
    assert (await cur.fetchone())["quantity"] == pytest.approx(0.03)
    await conn.close()


async def test_reconciliation_on_start_adopts_what_happened_while_down(
    orders_dsn, own_nats, nc, exchange, keys
) -> None:
    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "live", "alpha", 100_000.0)
    # crashed after sending (attempts = 1) - the exchange has it and filled it
    row, _ = await record.record_new(conn, order("g-1", env="live", qty=0.01))
    await record.bump_attempt(conn, row["id"])
    # crashed after bumping the attempt but before the request left: the exchange never saw it
    row2, _ = await record.record_new(conn, order("g-2", env="live", qty=0.02))
    await record.bump_attempt(conn, row2["id"])
    # recorded as open; filled on the exchange while the executor was down
    row3, _ = await record.record_new(conn, order("g-3", env="live", qty=0.001, type="limit", price=49_000.0))
    client = ccxt_client(exchange)
    try:
        await client.create_order("BTC/USDT", "market", "buy", 0.01, params={"newClientOrderId": "g-1"})
        await client.create_order("BTC/USDT", "limit", "buy", 0.001, 49_000, params={"newClientOrderId": "g-3"})
        await record.bump_attempt(conn, row3["id"])
        await record.apply(conn, "g-3", "open", [])
        exchange.trading.set_price("BTCUSDT", "48000")
        # someone placed an order by hand on the same account: reported, not touched
        await client.create_order("BTC/USDT", "limit", "buy", 0.001, 30_000, params={"newClientOrderId": "manual-1"})
    finally:
        await client.close()
    async with running(live(orders_dsn, own_nats.url, exchange)):
        assert (await queries.order(conn, "g-1"))["status"] == "filled"  # before any new work
        assert (await queries.order(conn, "g-2"))["status"] == "filled"  # looked up, not found, sent once
        assert (await queries.order(conn, "g-3"))["status"] == "filled"
        assert exchange.trading.accepted == {"g-1": 1, "g-3": 1, "manual-1": 1, "g-2": 1}
        cur = await conn.execute("SELECT differences FROM reconciliations ORDER BY id LIMIT 1")
        first = (await cur.fetchone())["differences"]
        assert {d.get("clientOrderId") for d in first} >= {"g-1", "g-2", "g-3", "manual-1"}
    await conn.close()


async def test_one_executor_per_environment(orders_dsn, own_nats) -> None:
    first = Executor("paper", orders_dsn, own_nats.url, PaperVenue())
    async with running(first):
        with pytest.raises(AlreadyHeld):
            await Executor("paper", orders_dsn, own_nats.url, PaperVenue()).run(wait_for_lease=False)
        # the CLI refuses too (exit 3), as a second pod would
        proc = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "kubetrade.executor",
                "executor",
                "--environment",
                "paper",
                "--no-wait",
                "--database-url",
                orders_dsn,
                "--nats-url",
                own_nats.url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 3, proc.stderr[-2000:]
        # another environment is a different singleton
        other = Executor("live", orders_dsn, own_nats.url, PaperVenue())
        async with running(other):
            assert other.ready.is_set()
    # the lease is free again once the holder stops
    async with running(Executor("paper", orders_dsn, own_nats.url, PaperVenue())) as again:
        assert again.ready.is_set()


async def test_dropped_connection_after_the_exchange_took_the_order(orders_dsn, own_nats, nc, exchange, keys) -> None:
    from kubetrade_testbed.exchange.proxy import DroppingProxy

    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "live", "alpha", 100_000.0)
    with DroppingProxy(exchange.port) as proxy:
        venue = CcxtVenue("binance", proxy.url, timeout_ms=2000)
        ex = Executor("live", orders_dsn, own_nats.url, venue, sync_seconds=0.3, settle_seconds=0.3, ack_wait=5)
        async with running(ex):
            proxy.drop_responses = 2
            await submit(nc, order("d-1", env="live", qty=0.01))
            await submit(nc, order("d-2", env="live", qty=0.02))
            await wait_for(lambda: _status(conn, "d-1", "filled"))
            await wait_for(lambda: _status(conn, "d-2", "filled"))
        assert proxy.dropped == 2 and ex.stats["uncertain"] >= 2
    assert exchange.trading.accepted == {"d-1": 1, "d-2": 1}
    await conn.close()
