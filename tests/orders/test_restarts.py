"""The risk manager and the paper executor ride through a NATS restart and a PostgreSQL crash:
signals keep getting decisions, approved orders are filled once, none is lost."""

from __future__ import annotations

import asyncio

import pytest

from kubetrade.ledger import allocation, connection, queries
from kubetrade.localstack.servers import PostgresServer
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import RiskDecision
from kubetrade.storage import migrate
from tests.orders.conftest import tick, wait_for
from tests.orders.test_risk_service import publish_policy, signal, stack


@pytest.fixture
def own_pg():
    server = PostgresServer(durable=True)  # its own temp folder, reachable by the postgres service user
    server.start()
    yield server
    server.cleanup()


async def decided(nc, coid: str, qty: float) -> RiskDecision:
    """Ask until answered: while NATS or the database restarts a request may time out or be 'uncertain'."""
    while True:
        try:
            reply = await nc.request(subjects.RISK_CHECK, codec.encode(signal(coid, qty)), timeout=3)
            d = codec.decode(RiskDecision, reply.data)
            if d.rule != "submissionUncertain":
                return d
        except Exception:  # no responders / timeout during the restart
            pass
        await asyncio.sleep(0.2)


async def test_nats_restart_and_postgres_crash(own_pg, own_nats, nc) -> None:
    dsn = own_pg.create_database("restarts")
    migrate.apply(dsn)
    conn = await connection.connect(dsn)
    await allocation.allocate(conn, "paper", "alpha", 1_000_000.0, risk_policy="default")
    await conn.close()
    await publish_policy(nc, {})
    async with stack(dsn, own_nats.url) as (rm, ex):
        await tick(nc, 50_000.0)
        await wait_for(lambda: _has(rm))
        assert (await decided(nc, "x-1", 0.01)).approved
        await wait_for(lambda: _filled(dsn, "x-1"))
        subscriptions = len(ex.nc._subs)

        await asyncio.to_thread(own_nats.restart)
        await wait_for(lambda: _connected(nc, rm, ex))
        await tick(nc, 50_000.0)
        assert (await decided(nc, "x-2", 0.01)).approved
        await wait_for(lambda: _filled(dsn, "x-2"))

        await asyncio.to_thread(own_pg.kill)
        # decisions go on from the last state while the database is down ...
        await tick(nc, 50_000.0)
        assert (await decided(nc, "x-3", 0.01)).approved
        await asyncio.to_thread(own_pg.start)
        # ... and the order waits in JetStream until the executor has the database (and its lease) back
        await wait_for(lambda: _filled(dsn, "x-3"), limit=90)
        await tick(nc, 50_000.0)
        assert (await decided(nc, "x-4", 0.01)).approved
        await wait_for(lambda: _filled(dsn, "x-4"))
        # the executor's round after the lost database did not subscribe market data and closes twice
        assert len(ex.nc._subs) == subscriptions
        # a policy change after the NATS restart still reaches the risk manager (watch, or the periodic resync)
        rev = await publish_policy(nc, {"circuitBreaker": {"killSwitch": True}})
        await wait_for(lambda: _revision(rm, rev))
        assert (await decided(nc, "x-5", 0.01)).rule == "killSwitch"
    conn = await connection.connect(dsn)
    cur = await conn.execute("SELECT client_order_id, count(*) AS n FROM fills GROUP BY client_order_id")
    assert {r["client_order_id"]: r["n"] for r in await cur.fetchall()} == {f"x-{i}": 1 for i in range(1, 5)}
    cur = await conn.execute("SELECT quantity FROM positions")
    assert (await cur.fetchone())["quantity"] == pytest.approx(0.04)
    await conn.close()


async def _has(rm):
    return "BTC/USDT" in rm.feed.symbols


async def _revision(rm, rev):
    pub = rm.policies.get("default", "default")
    return pub is not None and pub.revision == rev


async def _connected(nc, rm, ex):
    return nc.is_connected and rm.nc.is_connected and ex.nc.is_connected and ex.ready.is_set()


async def _filled(dsn, coid):
    try:
        conn = await connection.connect(dsn)
    except Exception:
        return False
    try:
        row = await queries.order(conn, coid)
        return row is not None and row["status"] == "filled"
    finally:
        await conn.close()
