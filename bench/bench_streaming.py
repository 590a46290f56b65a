"""Streaming: candles/s from NATS JetStream into PostgreSQL, at-least-once, without duplicates.

Real BTC/USDT and ETH/USDT 5m candles (the bundled sample, about 140k) are published to
the MARKET_DATA stream with their message ids, then 10 % of them again (a restarting
collector) - JetStream drops those.  The timed part is :class:`kubetrade.collector.sink.Sink`
draining the stream into ``candles``: fetch a batch, upsert it in one transaction, ack.
Half-way the consumer is stopped and a new one takes over the durable consumer where the
acks left off; the table must end with every candle exactly once (checked, not assumed).
Redelivery of unacknowledged batches after a database crash is proven in the tests
(``tests/marketdata/test_faults_pipeline.py``).

Baseline in the same run: the same consumer fetching and acking without touching the
database (the NATS floor), so the ratio says what storing costs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nats
import psycopg

from kubetrade.candles import load_csv
from kubetrade.collector.publish import ensure_streams
from kubetrade.collector.sink import CANDLE_FILTER, Sink
from kubetrade.data import SAMPLE_DIR
from kubetrade.localstack.servers import NatsServer, PostgresServer
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import Candle
from kubetrade.storage import migrate


def messages() -> list[Candle]:
    out = []
    for sym in ("BTC", "ETH"):
        c = load_csv(SAMPLE_DIR / f"{sym}_USDT-5m.csv.gz")
        cols = [c.time.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(), c.close.tolist(),
                c.volume.tolist()]
        out += [Candle(exchange="binance", symbol=c.symbol, timeframe="5m", time=t, open=o, high=h, low=lo, close=cl,
                       volume=v) for t, o, h, lo, cl, v in zip(*cols, strict=True)]
    return out


async def publish(js: Any, msgs: list[Candle]) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(msgs), 2000):
        futures = [await js.publish_async(subjects.candle(m.exchange, m.symbol, m.timeframe), codec.encode(m),
                                          headers={"Nats-Msg-Id": m.msg_id()}) for m in msgs[i:i + 2000]]
        await asyncio.gather(*futures)
    return time.perf_counter() - t0


async def bare_consume(nc: Any, n: int) -> float:
    """Fetch and ack ``n`` messages, decoding them, without storing: the NATS floor."""
    from nats.js.api import AckPolicy, ConsumerConfig

    sub = await nc.jetstream().pull_subscribe(CANDLE_FILTER, durable="bare", stream="MARKET_DATA",
                                              config=ConsumerConfig(ack_policy=AckPolicy.ALL, max_ack_pending=8000))
    got = 0
    t0 = time.perf_counter()
    while got < n:
        batch = await sub.fetch(2000, timeout=5)
        for m in batch:
            codec.decode(Candle, m.data)
        await batch[-1].ack_sync()
        got += len(batch)
    secs = time.perf_counter() - t0
    await sub.unsubscribe()
    return secs


async def stream_to_db(nc: Any, dsn: str, n: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    first = Sink(nc, dsn, durable="store", batch=2000)
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    while first.stored < n // 2:  # noqa: ASYNC110 - polling a counter, not waiting for an event
        await asyncio.sleep(0.01)
    stop.set()
    await task
    second = Sink(nc, dsn, durable="store", batch=2000)
    await second.run(asyncio.Event(), idle_exit=True)
    return time.perf_counter() - t0, first.stored + second.stored


def run() -> dict[str, Any]:
    msgs = messages()
    repeats = msgs[:: 10]
    with NatsServer() as ns, PostgresServer(durable=False) as pg:
        dsn = pg.create_database("bench_streaming")
        migrate.apply(dsn)

        async def main() -> dict[str, Any]:
            nc = await nats.connect(ns.url)
            js = nc.jetstream()
            await ensure_streams(js)
            pub_secs = await publish(js, msgs)
            await publish(js, repeats)
            info = await js.stream_info("MARKET_DATA")
            if info.state.messages != len(msgs):
                raise RuntimeError(f"stream has {info.state.messages} messages, expected {len(msgs)}: de-dup failed")
            bare = await bare_consume(nc, len(msgs))
            secs, delivered = await stream_to_db(nc, dsn, len(msgs))
            await nc.drain()
            async with await psycopg.AsyncConnection.connect(dsn) as conn:
                row = await (await conn.execute(
                    "SELECT count(*), count(DISTINCT (symbol, time)) FROM candles")).fetchone()
            assert row is not None
            if row[0] != len(msgs) or row[1] != len(msgs):
                raise RuntimeError(f"table has {row[0]} rows ({row[1]} distinct), expected {len(msgs)}")
            return {
                "candles": len(msgs),
                "republished_and_dropped_by_jetstream": len(repeats),
                "delivered_to_store": delivered,
                "publish_candles_per_s": round(len(msgs) / pub_secs),
                "bare_consume_candles_per_s": round(len(msgs) / bare),
                "nats_to_db_candles_per_s": round(len(msgs) / secs),
                "ratio_vs_bare_consume": round(bare / secs, 3),
                "rows_in_db": row[0],
                "duplicates_in_db": row[0] - row[1],
            }

        return asyncio.run(main())


if __name__ == "__main__":
    print(run())
