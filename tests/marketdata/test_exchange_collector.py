"""The exchange collector through ccxt's real Binance client against the local exchange, into real JetStream."""

from __future__ import annotations

import asyncio
import random

import ccxt.async_support as ccxta
import pytest
from prometheus_client import REGISTRY

from kubetrade.candles import Candles
from kubetrade.collector.exchange import clean_rows
from kubetrade.collector.publish import Publisher
from kubetrade.messaging.schemas import Candle, PublicTrade, Ticker
from kubetrade.storage.candles import SeriesKey
from kubetrade_testbed.exchange import Fault, LocalExchange

from .conftest import START
from .helpers import collector, stream_candles, stream_messages, until

DAY = 86_400_000
KEY = SeriesKey("binance", "BTC/USDT", "5m")


def _expected(c: Candles, first_ms: int, last_ms: int) -> list[tuple]:
    i, j = int((first_ms - START) // 300_000), int((last_ms - START) // 300_000)
    return [(int(c.time[k]), float(c.open[k]), float(c.high[k]), float(c.low[k]), float(c.close[k]),
             float(c.volume[k])) for k in range(i, j + 1)]


def _got(candles: list[Candle], symbol: str) -> list[tuple]:
    return [(m.time, m.open, m.high, m.low, m.close, m.volume) for m in candles if m.symbol == symbol]


async def test_backfill_then_live_then_restart_resumes_without_repeats(
        client: ccxta.binance, exchange: LocalExchange, js: object, btc_5m: Candles, eth_5m: Candles) -> None:
    clock = exchange.state.clock
    col = collector(client, js, clock, tickers=True, trades=True)
    assert await col.cycle() == 2 * 288, "one day of closed 5m candles per symbol"
    clock.advance(30 * 60_000)
    assert await col.cycle() == 2 * 6
    got = await stream_candles(js)
    last_closed = clock.now_ms() - clock.now_ms() % 300_000 - 300_000
    assert _got(got, "BTC/USDT") == _expected(btc_5m, START + DAY, last_closed)
    assert _got(got, "ETH/USDT") == _expected(eth_5m, START + DAY, last_closed)
    assert col.health.samples == 2 * 294 and col.health.errors == 0
    assert col.health.lag_seconds() == pytest.approx((clock.now_ms() - last_closed - 300_000) / 1000)
    labels = {"namespace": "test", "collector": col.health.name, "source": "exchange", "provider": "binance"}
    assert REGISTRY.get_sample_value("kubetrade_collector_samples_total", labels) == 2 * 294
    assert REGISTRY.get_sample_value("kubetrade_collector_lag_seconds", labels) == col.health.lag_seconds()
    assert REGISTRY.get_sample_value("kubetrade_collector_last_sample_timestamp_seconds", labels) == (
        (last_closed + 300_000) / 1000)
    # A restarted collector resumes after the newest candle in the stream: nothing is repeated.
    again = collector(client, js, clock)
    assert await again.cycle() == 0
    clock.advance(5 * 60_000)
    assert await again.cycle() == 2
    assert len(await stream_candles(js)) == 2 * 295
    # Tickers and trades of the first collector went to their own subjects.
    tickers = await stream_messages(js, "md.binance.BTC_USDT.ticker", Ticker)
    assert len(tickers) == 2 and tickers[-1].last == pytest.approx(
        exchange.state.last_price("BTCUSDT", START + 2 * DAY + 60_000 + 30 * 60_000))
    trades = await stream_messages(js, "md.binance.ETH_USDT.trades", PublicTrade)
    assert len(trades) > 4 and len({t.id for t in trades}) == len(trades), "each print once, across polls"


async def test_jetstream_drops_a_republished_candle_by_message_id(js: object) -> None:
    pub = Publisher(js)
    c = Candle(exchange="binance", symbol="BTC/USDT", timeframe="1m", time=START, open=1, high=2, low=1, close=2,
               volume=3)
    await pub.publish(c)
    await pub.publish(c)
    assert (pub.published, pub.duplicates) == (1, 1)
    assert len(await stream_candles(js)) == 1


async def test_errors_timeouts_and_429s_are_retried_and_nothing_is_lost(
        client: ccxta.binance, exchange: LocalExchange, js: object, btc_5m: Candles) -> None:
    st = exchange.state
    st.limits.window_seconds = 2  # so the real limiter's Retry-After is about a second
    col = collector(client, js, st.clock, symbols=["BTC/USDT"])
    st.faults.inject(Fault("/api/v3/klines", status=503, body="Service Unavailable."))
    st.faults.inject(Fault("/api/v3/klines", delay=client.timeout / 1000 + 0.5))
    st.faults.inject(Fault("/api/v3/klines", status=500, body={"code": -1000, "msg": "Unknown error"}))
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    try:
        await until(lambda: col.health.samples >= 288, "backfill through the faults")
        # Now exhaust the request weight for real: the collector must wait out Retry-After, not earn a 418.
        st.limits.weight_per_minute = st.limits.used + 1
        st.clock.advance(10 * 60_000)
        await until(lambda: st.limits.rejected_429 > 0, "a real 429")
        st.limits.weight_per_minute = 6000
        await until(lambda: col.health.samples >= 290, "catch-up after the 429")
    finally:
        stop.set()
        await task
    assert st.limits.rejected_418 == 0
    assert col.health.errors >= 4
    got = await stream_candles(js)
    assert _got(got, "BTC/USDT") == _expected(btc_5m, START + DAY, START + 2 * DAY + 5 * 60_000)


async def test_malformed_shuffled_and_repeated_rows_are_repaired_or_retried(
        client: ccxta.binance, exchange: LocalExchange, js: object, btc_5m: Candles) -> None:
    st = exchange.state

    def corrupt(rows: list) -> list:
        rows = [list(r) for r in rows]
        for r in rows:
            if r[0] == START + DAY + 100 * 300_000:
                r[2] = "1.0"  # high below the open: malformed
        rows += rows[10:20]  # repeated rows
        random.Random(7).shuffle(rows)  # out of order
        return rows

    st.faults.inject(Fault("/api/v3/klines", rewrite=corrupt, times=2))
    col = collector(client, js, st.clock, symbols=["BTC/USDT"])
    assert await col.cycle() == 100, "everything before the bad row, in order, once"
    assert col.health.errors == 1 and "do not bracket" in (col.health.last_error or "")
    assert await col.cycle() == 0, "the exchange still sends it broken: wait"
    assert await col.cycle() == 188, "fixed at the source: the rest follows"
    assert _got(await stream_candles(js), "BTC/USDT") == _expected(btc_5m, START + DAY, START + 2 * DAY - 300_000)


def test_clean_rows_holds_back_the_open_candle_and_skips_a_bad_row_after_strikes() -> None:
    good = [[START + i * 300_000, 10.0, 12.0, 9.0, 11.0, 1.0] for i in range(4)]
    now = START + 3 * 300_000 + 1  # the fourth candle is still open
    cleaned = clean_rows(good, KEY, START, now)
    assert [c.time for c in cleaned.candles] == [START, START + 300_000, START + 600_000]
    assert cleaned.next_cursor == START + 900_000 and cleaned.problem is None
    early = clean_rows(good, KEY, START, now, grace_ms=1000)  # the third closed 1 ms ago: not yet, with a grace
    assert [c.time for c in early.candles] == [START, START + 300_000]
    bad = [list(r) for r in good]
    bad[1][4] = float("nan")
    held = clean_rows(bad, KEY, START, now)
    assert [c.time for c in held.candles] == [START] and "non-finite" in (held.problem or "")
    skipped = clean_rows(bad, KEY, START, now, skip=lambda t: t == START + 300_000)
    assert [c.time for c in skipped.candles] == [START, START + 600_000]
    misaligned = [[START + 7, 10.0, 12.0, 9.0, 11.0, 1.0]]
    assert "multiple of the timeframe" in (clean_rows(misaligned, KEY, START, now).problem or "")


async def test_websocket_stream_wakes_the_collector_when_a_candle_closes(
        exchange: LocalExchange, js: object, btc_5m: Candles) -> None:
    import ccxt.pro

    from kubetrade.ccxtclient import point_ccxt

    st = exchange.state
    pro = ccxt.pro.binance({"options": {"fetchMarkets": {"types": ["spot"]}}, "timeout": 3000})
    point_ccxt(pro, exchange.url)
    # Polling once an hour: only the stream can bring the next candle in during this test.
    col = collector(pro, js, st.clock, symbols=["BTC/USDT"], websocket=True, interval_seconds=3600)
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    try:
        await until(lambda: col.health.samples >= 288, "backfill")
        st.clock.advance(10 * 60_000)
        await until(lambda: col.health.samples >= 290, "the two candles that closed, fetched on the stream's cue")
    finally:
        stop.set()
        await task
        await pro.close()
    assert _got(await stream_candles(js), "BTC/USDT") == _expected(btc_5m, START + DAY, START + 2 * DAY + 300_000)
