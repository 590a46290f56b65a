"""The API's candle cache: the same bytes as a read of the database, and never a candle a committed write replaced.

Served by real uvicorn over the session's PostgreSQL; writes go through ``storage.candles`` (the
collector's path), whose NOTIFY is what keeps every API process's cache true.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from kubetrade.api import create_app
from kubetrade.api.candlecache import CandleCache, encode_row, parse_note
from kubetrade.candles import Candles
from kubetrade.messaging.schemas import Candle
from kubetrade.storage.candles import SeriesKey, ingest, upsert_messages
from tests.api.conftest import make_key, settings_for
from tests.support.server import serving

EXCHANGE = "cachetest"
N = 6_000
S = (EXCHANGE, "BTC/USDT", "5m")


def _write(dsn: str, candles: list[Candle]) -> None:
    async def write() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await upsert_messages(conn, candles)

    asyncio.run(write())


@pytest.fixture(scope="module")
def stored(pg_dsn: str, btc_5m: Candles) -> Candles:
    part = btc_5m.slice(0, N)

    async def load() -> None:
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            await ingest(conn, SeriesKey(*S), part.slice(0, N - 10))  # the last 10 come later, as live candles

    asyncio.run(load())
    return part


@pytest.fixture(scope="module")
def servers(pg_dsn: str, nats_url: str, stored: Candles) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(cached API, uncached API, headers) over the same database."""
    settings = settings_for(pg_dsn, None)
    with serving(create_app(settings)) as cached, \
            serving(create_app(dataclasses.replace(settings, candle_cache_rows=0))) as plain:
        yield cached, plain, {"X-API-Key": make_key(pg_dsn, ["read"], "cache")[1]}


def _page(url: str, headers: dict[str, str], **params: object) -> httpx.Response:
    r = httpx.get(f"{url}/api/v1/historical/BTC-USDT", headers=headers,
                  params={"exchange": EXCHANGE, "timeframe": "5m", "limit": 1000} | params, timeout=30)
    assert r.status_code in (200, 304), r.text
    return r


def _eventually(check, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the cache still serves what the write replaced"
        time.sleep(0.05)


def test_cached_pages_are_the_bytes_of_a_database_read(servers, stored: Candles) -> None:
    cached, plain, headers = servers
    start = int(stored.time[100])
    for params in ({"start": start}, {"start": start + 1}, {"start": start, "end": int(stored.time[900])},
                   {"start": int(stored.time[N - 300])}, {"start": int(stored.time[2000]), "limit": 5000}):
        want = _page(plain, headers, **params)
        first, again = _page(cached, headers, **params), _page(cached, headers, **params)
        assert first.content == want.content == again.content
        assert first.headers["etag"] == want.headers["etag"] == again.headers["etag"]
    body = json.loads(want.content)  # the shape and values are the stored candles'
    assert [c["time"] for c in body["candles"]] == [int(t) for t in stored.time[2000:2000 + len(body["candles"])]]
    assert len(body["candles"]) >= N - 10 - 2000 and "next" not in body
    one = json.loads(_page(cached, headers, start=start, limit=1).content)
    assert one["candles"] == [{"time": start, "open": float(stored.open[100]), "high": float(stored.high[100]),
                               "low": float(stored.low[100]), "close": float(stored.close[100]),
                               "volume": float(stored.volume[100])}]
    assert one["next"] == start + 300_000


def test_if_none_match_gets_304_until_the_page_changes(servers, stored: Candles, pg_dsn: str) -> None:
    cached, _, headers = servers
    start = int(stored.time[3000])
    first = _page(cached, headers, start=start, limit=10)
    etag = first.headers["etag"]
    again = _page(cached, {**headers, "If-None-Match": etag}, start=start, limit=10)
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    i = 3005
    _write(pg_dsn, [Candle(exchange=EXCHANGE, symbol="BTC/USDT", timeframe="5m", time=int(stored.time[i]),
                           open=float(stored.open[i]), high=float(stored.high[i]) + 500, low=float(stored.low[i]),
                           close=float(stored.close[i]), volume=float(stored.volume[i]))])
    _eventually(lambda: _page(cached, {**headers, "If-None-Match": etag}, start=start, limit=10).status_code == 200)
    changed = json.loads(_page(cached, headers, start=start, limit=10).content)
    assert changed["candles"][5]["high"] == float(stored.high[i]) + 500


def test_a_corrected_candle_replaces_the_cached_one(servers, stored: Candles, pg_dsn: str) -> None:
    cached, plain, headers = servers
    start = int(stored.time[1000])
    before = json.loads(_page(cached, headers, start=start).content)
    i = 1500
    assert before["candles"][500]["close"] == float(stored.close[i])
    fixed = float(stored.close[i]) * 1.001
    _write(pg_dsn, [Candle(exchange=EXCHANGE, symbol="BTC/USDT", timeframe="5m", time=int(stored.time[i]),
                           open=float(stored.open[i]), high=max(float(stored.high[i]), fixed),
                           low=float(stored.low[i]), close=fixed, volume=float(stored.volume[i]))])
    _eventually(lambda: json.loads(_page(cached, headers, start=start).content)["candles"][500]["close"] == fixed)
    assert _page(cached, headers, start=start).content == _page(plain, headers, start=start).content


def test_new_candles_reach_the_tail_page(servers, stored: Candles, pg_dsn: str) -> None:
    cached, plain, headers = servers
    start = int(stored.time[N - 40])
    assert len(json.loads(_page(cached, headers, start=start).content)["candles"]) == 30
    live = [Candle(exchange=EXCHANGE, symbol="BTC/USDT", timeframe="5m", time=int(stored.time[i]),
                   open=float(stored.open[i]), high=float(stored.high[i]), low=float(stored.low[i]),
                   close=float(stored.close[i]), volume=float(stored.volume[i])) for i in range(N - 10, N)]
    for candle in live:
        _write(pg_dsn, [candle])
    _eventually(lambda: len(json.loads(_page(cached, headers, start=start).content)["candles"]) == 40)
    assert _page(cached, headers, start=start).content == _page(plain, headers, start=start).content


ROWS = [(1000 * i, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 10.0) for i in range(10)]


def _filled(limit: int = 4, start: int = 0, rows: list[tuple[float, ...]] = ROWS) -> CandleCache:
    cache = CandleCache()
    cache.listening = True
    page = rows[: limit + 1]
    cache.put(S, cache.generation(S), start, 10**12, limit, page, [encode_row(r) for r in page])
    return cache


def test_a_full_read_proves_up_to_its_last_row_a_short_one_up_to_its_end() -> None:
    cache = _filled(limit=4)  # 5 rows read: every candle in [0, 4000] is known
    hit = cache.get(S, 0, 10**12, 4)
    assert hit is not None and hit.more and hit.rows == [encode_row(r) for r in ROWS[:4]]
    assert cache.get(S, 1000, 10**12, 4) is None  # would need the candle after 4000
    assert cache.get(S, 1000, 4001, 4) is not None and cache.get(S, 1000, 4001, 4).more is False  # type: ignore[union-attr]
    short = CandleCache()
    short.listening = True
    short.put(S, 0, 0, 3500, 10, ROWS[:4], [encode_row(r) for r in ROWS[:4]])
    got = short.get(S, 2000, 3500, 10)
    assert got is not None and not got.more and len(got.rows) == 2
    assert short.get(S, 2000, 3501, 10) is None


def test_a_write_forgets_from_its_first_candle_on_and_a_read_older_than_it_is_not_kept() -> None:
    cache = _filled(limit=8)
    cache.written(S, 5000, 5000)
    assert cache.get(S, 0, 5000, 8) is not None
    assert cache.get(S, 0, 6000, 8) is None and cache.get(S, 5000, 6000, 8) is None
    generation = cache.generation(S)
    cache.written(S, 0, 0)  # a write lands while a read is on its way
    cache.put(S, generation, 0, 10**12, 8, ROWS[:9], [encode_row(r) for r in ROWS[:9]])
    assert cache.get(S, 0, 1000, 8) is None
    assert cache.rows == 0


def test_nothing_is_kept_or_served_while_not_listening() -> None:
    cache = _filled()
    cache.listening = False
    assert cache.get(S, 0, 1000, 4) is None
    cache.clear()
    cache.put(S, cache.generation(S), 0, 10**12, 4, ROWS[:5], [encode_row(r) for r in ROWS[:5]])
    assert cache.rows == 0


def test_series_beyond_the_bound_are_evicted_oldest_first() -> None:
    cache = CandleCache(max_rows=12)
    cache.listening = True
    for n, exchange in enumerate(("a", "b", "c")):
        s = (exchange, "BTC/USDT", "5m")
        cache.put(s, 0, 0, 10**12, 4, ROWS[:5], [encode_row(r) for r in ROWS[:5]])
        assert cache.rows == min(5 * (n + 1), 10)
    assert cache.get(("a", "BTC/USDT", "5m"), 0, 1000, 4) is None
    assert cache.get(("c", "BTC/USDT", "5m"), 0, 1000, 4) is not None


@pytest.mark.parametrize("payload", ["", "a|b|c", "a|b|c|x|1", "a|b|c|1|2|3"])
def test_notes_that_cannot_be_read_are_refused(payload: str) -> None:
    assert parse_note(payload) is None
    assert parse_note("binance|BTC/USDT:USDT|1m|60000|120000") == (("binance", "BTC/USDT:USDT", "1m"), 60000, 120000)


def test_encoded_rows_are_what_json_dumps_makes() -> None:
    for row in [(1, 42283.58, 42397.23, 42261.02, 42397.23, 155.25731), (2, 1e-05, 3.0, 1e-7, 2.5e16, 0.0)]:
        want = json.dumps(dict(zip(("time", "open", "high", "low", "close", "volume"), (row[0], *map(float, row[1:])),
                                   strict=True)), separators=(",", ":"))
        assert encode_row(row).decode() == want


def test_overlapping_pages_read_in_any_order_join_into_one_run() -> None:
    cache = CandleCache()
    cache.listening = True
    rows = [(1000 * i, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 10.0) for i in range(40)]

    def read(start: int) -> None:  # a page of 4 candles and the one after it, as the route reads it
        page = rows[start:start + 5]
        cache.put(S, cache.generation(S), 1000 * start, 10**12, 4, page, [encode_row(r) for r in page])

    for start in (20, 17, 23, 14, 18):
        read(start)
    assert cache.rows == 28 - 14
    for start in range(14, 24):
        hit = cache.get(S, 1000 * start, 10**12, 4)
        assert hit is not None and hit.rows == [encode_row(r) for r in rows[start:start + 4]] and hit.more
    read(35)  # a page apart from the run replaces it: a gap between them was never read
    assert cache.get(S, 14_000, 10**12, 4) is None and cache.get(S, 35_000, 10**12, 4) is not None
    assert cache.rows == 5
