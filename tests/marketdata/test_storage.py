"""Candle storage on real PostgreSQL: binary COPY, the upsert path, partitions, reads and roll-ups."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from kubetrade.candles import Candles
from kubetrade.messaging.schemas import Candle
from kubetrade.storage import history
from kubetrade.storage.candles import SeriesKey, ingest, last_time, upsert_messages

KEY = SeriesKey("binance", "BTC/USDT", "5m")


async def _rows(dsn: str, key: SeriesKey = KEY) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT (extract(epoch FROM time)*1000)::bigint, open, high, low, close, volume FROM candles "
            "WHERE exchange=%s AND symbol=%s AND timeframe=%s ORDER BY time", (key.exchange, key.symbol, key.timeframe))
        return await cur.fetchall()


def _as_rows(c: Candles, n: int) -> list[tuple]:
    return [(int(c.time[i]), *(float(getattr(c, f)[i]) for f in ("open", "high", "low", "close", "volume")))
            for i in range(n)]


async def test_binary_copy_round_trips_real_candles_exactly(fresh_db: str, btc_5m: Candles) -> None:
    from kubetrade.storage import migrate
    migrate.apply(fresh_db)
    part = btc_5m.slice(0, 20_000)  # about 70 days: spans three monthly partitions
    async with await psycopg.AsyncConnection.connect(fresh_db, autocommit=True) as conn:
        assert await ingest(conn, KEY, part, batch_rows=7_000) == 20_000
        cur = await conn.execute("SELECT count(*) FROM candles_default")
        assert (await cur.fetchone())[0] == 0, "rows must land in monthly partitions, not the default"
        cur = await conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'candles'::regclass")
        assert (await cur.fetchone())[0] >= 4
        assert await last_time(conn, KEY) == int(part.time[-1])
    assert await _rows(fresh_db) == _as_rows(part, 20_000)


async def test_overlapping_ingest_upserts_without_duplicates(pg_dsn: str, btc_5m: Candles) -> None:
    key = SeriesKey("binance", "BTC/USDT", "1h")  # a series of its own in the shared test DB
    first, overlap = btc_5m.slice(0, 1000), btc_5m.slice(500, 1500)
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await ingest(conn, key, first)
        # The overlapping half collides on the fast path, falls back to upsert: 500 unchanged, 500 new.
        assert await ingest(conn, key, overlap) == 500
    rows = await _rows(pg_dsn, key)
    assert len(rows) == 1500
    assert [r[0] for r in rows] == [int(t) for t in btc_5m.time[:1500]]


async def test_late_and_corrected_candles_replace_stored_values(pg_dsn: str, btc_5m: Candles) -> None:
    key = SeriesKey("kraken", "BTC/USDT", "5m")
    t = [int(x) for x in btc_5m.time[:3]]

    def msg(i: int, close: float | None = None) -> Candle:
        return Candle(exchange=key.exchange, symbol=key.symbol, timeframe="5m", time=t[i], open=float(btc_5m.open[i]),
                      high=max(float(btc_5m.high[i]), close or 0), low=float(btc_5m.low[i]),
                      close=close or float(btc_5m.close[i]), volume=float(btc_5m.volume[i]))

    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        assert await upsert_messages(conn, [msg(0), msg(2)]) == 2
        assert await upsert_messages(conn, [msg(0), msg(2)]) == 0, "a repeat changes nothing"
        assert await upsert_messages(conn, [msg(1)]) == 1, "a late candle fills the hole"
        corrected = float(btc_5m.close[2]) + 10
        assert await upsert_messages(conn, [msg(2, corrected), msg(2, corrected)]) == 1
    rows = await _rows(pg_dsn, key)
    assert [r[0] for r in rows] == t
    assert rows[2][4] == corrected


async def test_history_pages_and_date_bin_rollup_match_numpy(pg_dsn: str, btc_5m: Candles) -> None:
    key = SeriesKey("bitstamp", "BTC/USDT", "5m")
    part = btc_5m.slice(0, 288 * 3)  # three days
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        await ingest(conn, key, part)
        start, end = "2024-01-01T00:00:00Z", "2024-01-04T00:00:00Z"
        rows, source = await history.page(conn, key, start, end, 100)
        assert source == "stored" and len(rows) == 100 and rows[0][0] == int(part.time[0])
        # The 4h roll-up is not stored: it comes from the 5m rows through date_bin.
        rows, source = await history.page(conn, SeriesKey(key.exchange, key.symbol, "4h"), start, end, 1000)
    assert source == "date_bin:5m"
    assert len(rows) == 18
    per = 48  # 5m bars in 4h
    for j, row in enumerate(rows):
        sl = slice(j * per, (j + 1) * per)
        assert row[0] == int(part.time[j * per])
        assert row[1] == float(part.open[j * per])
        assert row[2] == pytest.approx(float(np.max(part.high[sl])))
        assert row[3] == pytest.approx(float(np.min(part.low[sl])))
        assert row[4] == float(part.close[(j + 1) * per - 1])
        assert row[5] == pytest.approx(float(np.sum(part.volume[sl])))


def test_plan_uses_continuous_aggregate_only_for_1m_bases_on_timescale() -> None:
    k = SeriesKey("binance", "BTC/USDT", "1h")
    assert history.plan(k, 0, 1, 10, stored=False, base="1m", timescale=True).source == "cagg:1h"
    assert history.plan(k, 0, 1, 10, stored=False, base="1m", timescale=False).source == "date_bin:1m"
    assert history.plan(k, 0, 1, 10, stored=False, base="5m", timescale=True).source == "date_bin:5m"
    assert history.plan(k, 0, 1, 10, stored=True, base=None, timescale=True).source == "stored"
    assert history.bases_for("4h") == ["1m", "3m", "5m", "15m", "30m", "1h", "2h"]
