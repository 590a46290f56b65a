"""Fixtures of the orders and risk tests: a database and a NATS server of each test's own.

Executors keep durable JetStream consumers and advisory locks, so each test gets a fresh
database (migrated) and, where it runs an executor, its own nats-server: nothing a test
leaves behind can be read by the next one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from kubetrade.ledger import connection
from kubetrade.localstack.servers import NatsServer, PostgresServer
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import OrderRequest, Ticker
from kubetrade.storage import migrate


@pytest.fixture
def orders_dsn(pg_server: PostgresServer) -> str:
    dsn = pg_server.create_database(f"kt_orders_{uuid.uuid4().hex[:8]}")
    migrate.apply(dsn)
    return dsn


@pytest.fixture
def own_nats(tmp_path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
async def nc(own_nats: NatsServer) -> AsyncIterator[Any]:
    import nats

    client = await nats.connect(own_nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    yield client
    await client.drain()


def now_ms() -> int:
    return int(time.time() * 1000)


def order(
    coid: str,
    *,
    strategy: str = "alpha",
    qty: float = 0.01,
    side: str = "buy",
    env: str = "paper",
    symbol: str = "BTC/USDT",
    price: float = 50_000.0,
    **kw: Any,
) -> OrderRequest:
    return OrderRequest(
        client_order_id=coid,
        strategy=strategy,
        environment=env,
        exchange="binance",
        symbol=symbol,
        side=side,
        quantity=qty,
        price=price,
        time=now_ms(),
        **kw,
    )


async def submit(nc: Any, req: OrderRequest) -> Any:
    return await nc.jetstream().publish(
        subjects.order_submit(req.environment), codec.encode(req), headers={"Nats-Msg-Id": req.client_order_id}
    )


async def tick(nc: Any, price: float, symbol: str = "BTC/USDT") -> None:
    t = Ticker(exchange="binance", symbol=symbol, time=now_ms(), last=price)
    await nc.publish(subjects.ticker("binance", symbol), codec.encode(t))
    await nc.flush()


async def wait_for(predicate, limit: float = 30.0, interval: float = 0.05):
    """Poll an async predicate until it returns something truthy (a bound on a hang, not a timing claim)."""
    deadline = time.monotonic() + limit
    while True:
        got = await predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {limit}s")
        await asyncio.sleep(interval)


async def orders_by_status(dsn: str) -> dict[str, str]:
    conn = await connection.connect(dsn)
    try:
        cur = await conn.execute("SELECT client_order_id, status FROM orders")
        return {r["client_order_id"]: r["status"] for r in await cur.fetchall()}
    finally:
        await conn.close()


# --- the local exchange with trading ------------------------------------------------------


@pytest.fixture
def exchange() -> Iterator[Any]:
    """A local Binance with BTCUSDT at 50,000 and one account (random key, made at run time)."""
    import secrets

    from kubetrade_testbed.exchange import ExchangeState, LocalExchange, Market
    from kubetrade_testbed.exchange.trading import trading_state

    state = ExchangeState()
    state.add_market(
        Market("BTCUSDT", "BTC", "USDT", tick_size="0.01", step_size="0.00001", min_qty="0.00001", min_notional="5")
    )
    ts = trading_state(state)
    ts.set_price("BTCUSDT", "50000")
    key, secret = secrets.token_hex(16), secrets.token_hex(32)
    ts.add_account(key, secret, {"USDT": "100000", "BTC": "0"})
    with LocalExchange(state) as ex:
        ex.api_key, ex.secret, ex.trading = key, secret, ts  # type: ignore[attr-defined]
        yield ex


def ccxt_client(ex: Any, timeout_ms: int = 3000, secret: str | None = None) -> Any:
    import ccxt.async_support as ccxta

    from kubetrade.ccxtclient import point_ccxt

    client = ccxta.binance(
        {
            "apiKey": ex.api_key,
            "secret": secret or ex.secret,
            "timeout": timeout_ms,
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
        }
    )
    point_ccxt(client, ex.url)
    return client


async def paper_books(conn: Any) -> list[dict[str, Any]]:
    """Each paper ledger with what its fills add up to, and its orders' and events' counts; asserts
    that the cash and the position are exactly what the fills say (after any burst or crash)."""
    import pytest

    rows = await (
        await conn.execute(
            """SELECT l.strategy, l.capital, l.cash, p.quantity,
                      (SELECT coalesce(sum(f.quantity * f.price + f.fee), 0) FROM fills f
                        WHERE f.environment = l.environment AND f.strategy = l.strategy) AS spent,
                      (SELECT coalesce(sum(f.quantity), 0) FROM fills f
                        WHERE f.environment = l.environment AND f.strategy = l.strategy) AS bought,
                      (SELECT count(*) FROM fills f WHERE f.strategy = l.strategy) AS fills,
                      (SELECT count(*) FROM orders o WHERE o.strategy = l.strategy) AS orders,
                      (SELECT count(*) FROM order_events e JOIN orders o USING (client_order_id)
                        WHERE o.strategy = l.strategy) AS events,
                      (SELECT count(*) FROM order_events e JOIN orders o USING (client_order_id)
                        WHERE o.strategy = l.strategy AND e.status = 'filled') AS filled_events
               FROM ledgers l LEFT JOIN positions p USING (environment, namespace, strategy)
               WHERE l.environment = 'paper'"""
        )
    ).fetchall()
    for r in rows:
        assert r["cash"] == pytest.approx(r["capital"] - r["spent"], rel=1e-12, abs=1e-6), r
        assert (r["quantity"] or 0.0) == pytest.approx(r["bought"], rel=1e-12), r
    return list(rows)
