"""Fixtures for the market-data tests: the local Binance-compatible exchange, ccxt pointed at it,
JetStream streams, and a PostgreSQL + NATS pair of this module's own that tests may restart."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import ccxt.async_support as ccxta
import pytest

from kubetrade.candles import Candles, load_csv
from kubetrade.ccxtclient import point_ccxt
from kubetrade.collector.publish import ensure_streams
from kubetrade.data import SAMPLE_DIR
from kubetrade.localstack.servers import NatsServer, PostgresServer
from kubetrade.storage import migrate
from kubetrade_testbed.exchange import ExchangeState, LocalExchange

BTC_5M = SAMPLE_DIR / "BTC_USDT-5m.csv.gz"
ETH_5M = SAMPLE_DIR / "ETH_USDT-5m.csv.gz"
START = 1_704_067_200_000  # 2024-01-01T00:00Z, first bar of the sample


@pytest.fixture(scope="session")
def btc_5m() -> Candles:
    return load_csv(BTC_5M)


@pytest.fixture(scope="session")
def eth_5m() -> Candles:
    return load_csv(ETH_5M)


@pytest.fixture
def exchange(btc_5m: Candles, eth_5m: Candles) -> Iterator[LocalExchange]:
    """A fresh local exchange serving real BTC and ETH 5m candles; its clock starts 2 days in."""
    state = ExchangeState()
    state.add_candles("BTCUSDT", "5m", btc_5m)
    state.add_candles("ETHUSDT", "5m", eth_5m)
    state.clock.set(START + 2 * 86_400_000 + 60_000)
    with LocalExchange(state) as ex:
        yield ex


def binance(url: str, **config: object) -> ccxta.binance:
    """ccxt's real async Binance client, spot only, with its URLs pointed at ``url``."""
    client = ccxta.binance({"options": {"fetchMarkets": {"types": ["spot"]}}, "timeout": 3000, **config})
    point_ccxt(client, url)
    return client


@pytest.fixture
async def client(exchange: LocalExchange) -> AsyncIterator[ccxta.binance]:
    c = binance(exchange.url)
    yield c
    await c.close()


@pytest.fixture
async def js(nats_client: object) -> object:
    """JetStream with new market-data streams, so each test sees only its own messages.

    Deleted and created again rather than purged: a purge keeps the de-duplication window,
    which would (correctly) swallow a test's candles that an earlier test already sent.
    """
    from nats.js.errors import NotFoundError

    jet = nats_client.jetstream()  # type: ignore[attr-defined]
    for name in ("MARKET_DATA", "MARKET_TICKS", "ALT_DATA"):
        with contextlib.suppress(NotFoundError):
            await jet.delete_stream(name)
    await ensure_streams(jet)
    return jet


@pytest.fixture(scope="module")
def own_pg() -> Iterator[PostgresServer]:
    """A PostgreSQL server this module may stop and start (the session one is shared)."""
    server = PostgresServer(durable=True)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def own_dsn(own_pg: PostgresServer) -> str:
    dsn = own_pg.create_database(f"md_{uuid.uuid4().hex[:8]}")
    migrate.apply(dsn)
    return dsn


@pytest.fixture(scope="module")
def own_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A NATS server this module may restart."""
    server = NatsServer(tmp_path_factory.mktemp("own-nats"))
    server.start()
    yield server
    server.cleanup()
