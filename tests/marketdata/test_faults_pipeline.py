"""Restarts mid-stream: NATS under a running collector, PostgreSQL under the storing consumer.

Both use servers of this module's own (``own_nats``, ``own_pg``) so that stopping them
does not disturb the rest of the session.
"""

from __future__ import annotations

import asyncio
import contextlib

import ccxt.async_support as ccxta
import nats
import psycopg

from kubetrade.candles import Candles
from kubetrade.collector.publish import Publisher, ensure_streams
from kubetrade.collector.sink import Sink
from kubetrade.localstack.servers import ManagedProcess, NatsServer, PostgresServer
from kubetrade.messaging.schemas import Candle
from kubetrade_testbed.exchange import LocalExchange

from .conftest import START
from .helpers import collector, stream_candles, until

DAY = 86_400_000


async def _connect(url: str) -> nats.NATS:
    return await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=2)


async def _fresh_streams(js: object) -> None:
    from nats.js.errors import NotFoundError

    for name in ("MARKET_DATA", "MARKET_TICKS", "ALT_DATA"):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(name)  # type: ignore[attr-defined]
    await ensure_streams(js)


async def test_collector_survives_a_nats_restart_without_loss_or_duplicates(
        own_nats: NatsServer, client: ccxta.binance, exchange: LocalExchange, btc_5m: Candles) -> None:
    nc = await _connect(own_nats.url)
    js = nc.jetstream()
    await _fresh_streams(js)
    clock = exchange.state.clock
    col = collector(client, js, clock, symbols=["BTC/USDT"], backfill_days=1)
    col.publisher.timeout = 1.0
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    try:
        await until(lambda: col.health.samples >= 288, "the backfill published")
        await asyncio.to_thread(own_nats.stop)
        clock.advance(DAY)  # a day of candles closes while NATS is down
        await until(lambda: col.publisher.retries >= 1, "a publish failing while NATS is down")
        await asyncio.to_thread(_start_again, own_nats)
        await until(lambda: col.health.samples >= 576, "the day published after NATS came back")
    finally:
        stop.set()
        await task
    got = await stream_candles(js)
    await nc.drain()
    first = int((START + DAY - btc_5m.time[0]) // 300_000)
    assert [m.time for m in got] == [int(t) for t in btc_5m.time[first:first + 576]], "every candle once, in order"
    assert [m.close for m in got] == [float(x) for x in btc_5m.close[first:first + 576]]


def _start_again(server: NatsServer) -> None:
    """Start a stopped server on the same port and store (JetStream state survives)."""
    server.process = ManagedProcess(server.process.name, server.process.argv, server.process.log_path)
    server.start()


async def test_sink_survives_a_database_crash_and_stores_each_candle_once(
        own_pg: PostgresServer, own_dsn: str, nats_url: str, btc_5m: Candles) -> None:
    nc = await _connect(nats_url)
    js = nc.jetstream()
    await _fresh_streams(js)
    pub = Publisher(js)
    n = 3000

    async def publish(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            await pub.publish(Candle(
                exchange="binance", symbol="BTC/USDT", timeframe="5m", time=int(btc_5m.time[i]),
                open=float(btc_5m.open[i]), high=float(btc_5m.high[i]), low=float(btc_5m.low[i]),
                close=float(btc_5m.close[i]), volume=float(btc_5m.volume[i])))

    await publish(0, 1000)
    await nc.publish("md.binance.BTC_USDT.candle.5m", b'{"exchange": "binance", "time": "soon"}')
    sink = Sink(nc, own_dsn, durable="crash-test", batch=250, max_backoff=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    try:
        await until(lambda: sink.stored >= 1000, "the first candles stored")
        await asyncio.to_thread(own_pg.kill)  # crash (SIGKILL), not a clean shutdown
        await publish(1000, n)  # mid-stream: these arrive while the database is down
        await until(lambda: sink.db_errors >= 1, "the sink to meet the dead database")
        await asyncio.to_thread(own_pg.start)
        await until(lambda: sink.stored >= n, "all candles stored after the crash")
    finally:
        stop.set()
        await task
    dlq = await js.stream_info("DLQ")
    await nc.drain()
    assert sink.db_errors >= 1 and sink.dead_lettered == 1 and dlq.state.messages >= 1
    with psycopg.connect(own_dsn) as conn:
        rows = conn.execute(
            "SELECT (extract(epoch FROM time)*1000)::bigint, close FROM candles ORDER BY time").fetchall()
    assert [r[0] for r in rows] == [int(t) for t in btc_5m.time[:n]]
    assert [r[1] for r in rows] == [float(x) for x in btc_5m.close[:n]]
