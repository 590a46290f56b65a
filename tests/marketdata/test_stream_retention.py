"""Market data streams keep what is useful for as long as it is useful, and converge from the old layout.

Candles are the record a sink writes to the database: MARKET_DATA keeps them 30 days.
Tickers and public trades are a live view nobody reads back: MARKET_TICKS keeps an hour.
A deployment made by an older version has one MARKET_DATA capturing ``md.>`` with no limit;
starting a collector converges it without losing a stored candle.
"""

from __future__ import annotations

import contextlib
from typing import Any

from kubetrade.collector.publish import Publisher, ensure_streams, stream_resume
from kubetrade.collector.sink import Sink
from kubetrade.messaging import streams, subjects
from kubetrade.messaging.schemas import Candle, Ticker
from kubetrade.storage.candles import SeriesKey

DAY = 86_400.0


def _candle(t: int) -> Candle:
    return Candle(
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1m",
        time=t,
        open=100.0,
        high=101.0,
        low=99.0,
        close=100.5,
        volume=3.0,
    )


def _ticker(t: int) -> Ticker:
    return Ticker(exchange="binance", symbol="BTC/USDT", time=t, last=100.5, bid=100.4, ask=100.6)


async def test_an_old_single_stream_converges_into_candles_and_ticks(nats_client: Any) -> None:
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    js = nats_client.jetstream()
    for name in ("MARKET_DATA", "MARKET_TICKS", "ALT_DATA"):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(name)
    # as an older version made it: everything under md.>, kept for good
    await js.add_stream(StreamConfig(name="MARKET_DATA", subjects=["md.>"], duplicate_window=7200.0))
    old = Publisher(js)
    await old.publish(_candle(60_000))
    await old.publish(_ticker(60_500))
    # the candle sink's durable consumer, as a running deployment has it
    sink = Sink(nats_client, "postgresql://unused", durable="candle-store")
    consumer = await sink.subscribe()

    await ensure_streams(js)

    md = await js.stream_info("MARKET_DATA")
    assert md.config.subjects == ["md.*.*.candle.*"]
    assert md.config.max_age == streams.MAX_AGE_SECONDS["MARKET_DATA"] == 30 * DAY
    assert md.state.messages == 2  # nothing stored was dropped by the change (the old ticker ages out)
    ticks = await js.stream_info("MARKET_TICKS")
    assert sorted(ticks.config.subjects) == ["md.*.*.ticker", "md.*.*.trades"]
    assert ticks.config.max_age == 3600.0
    alt = await js.stream_info("ALT_DATA")
    assert alt.config.max_age == 30 * DAY

    # each kind now lands in its own stream
    pub = Publisher(js)
    await pub.publish(_candle(120_000))
    await pub.publish(_ticker(120_500))
    assert (await js.stream_info("MARKET_DATA")).state.messages == 3
    assert (await js.stream_info("MARKET_TICKS")).state.messages == 1
    last_tick = await js.get_last_msg("MARKET_TICKS", subjects.ticker("binance", "BTC/USDT"))
    assert Ticker.model_validate_json(last_tick.data).time == 120_500

    # the sink's consumer carried over: it still gets every candle, and no ticker
    got = await consumer.fetch(10, timeout=2)
    assert [m.subject for m in got] == [subjects.candle("binance", "BTC/USDT", "1m")] * 2
    await consumer.unsubscribe()

    # a collector resumes after the newest candle, as before
    resume = stream_resume(js)
    assert await resume(SeriesKey("binance", "BTC/USDT", "1m")) == 120_000

    # and a second start changes nothing
    await ensure_streams(js)
    assert (await js.stream_info("MARKET_DATA")).config.subjects == ["md.*.*.candle.*"]
    assert (await js.stream_info("MARKET_TICKS")).state.messages == 1
