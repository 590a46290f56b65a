"""Reading candles back: pages of history, roll-ups to coarser timeframes, streamed exports.

A timeframe that is stored is read as is.  One that is not (say 4h when the collector
stores 1m) is rolled up from the finest stored timeframe that divides it: from the
continuous aggregate ``candles_<tf>`` on TimescaleDB, else with ``date_bin`` at query
time on plain PostgreSQL.  Pages are keyed by candle time (``after``), not by OFFSET, so
deep pages cost the same as the first and concurrent inserts do not shift them.

The SQL is plain text with ``%(name)s`` parameters so that the same statements run through
psycopg and through the PGlite/TimescaleDB bridge in the tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from kubetrade.storage.series import SeriesKey, interval_literal, last_time
from kubetrade.timeframes import timeframe_ms

ROLLUP_BASES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
CAGG_TIMEFRAMES = ("5m", "15m", "1h", "4h", "1d")
"""Timeframes with a continuous aggregate over 1m candles on TimescaleDB."""

_SELECT = "(extract(epoch FROM time) * 1000)::bigint AS t, open, high, low, close, volume"

STORED_SQL = f"""SELECT {_SELECT} FROM candles
 WHERE exchange = %(exchange)s AND symbol = %(symbol)s AND timeframe = %(timeframe)s
   AND time >= %(start)s AND time < %(end)s
 ORDER BY time LIMIT %(limit)s"""  # noqa: S608 - constant

LATEST_SQL = f"""SELECT {_SELECT} FROM candles
 WHERE exchange = %(exchange)s AND symbol = %(symbol)s AND timeframe = %(timeframe)s
 ORDER BY time DESC LIMIT 1"""  # noqa: S608 - constant
"""The newest stored candle of a series (the primary key index answers it)."""

CAGG_SQL = """SELECT {select} FROM candles_{tf}
 WHERE exchange = %(exchange)s AND symbol = %(symbol)s AND time >= %(start)s AND time < %(end)s
 ORDER BY time LIMIT %(limit)s"""

DATE_BIN_SQL = """SELECT (extract(epoch FROM b) * 1000)::bigint AS t,
       (array_agg(open ORDER BY time))[1], max(high), min(low),
       (array_agg(close ORDER BY time DESC))[1], sum(volume)
  FROM (SELECT date_bin(%(bin)s::interval, time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS b, *
          FROM candles
         WHERE exchange = %(exchange)s AND symbol = %(symbol)s AND timeframe = %(base)s
           AND time >= %(start)s AND time < %(end)s) s
 GROUP BY b ORDER BY b LIMIT %(limit)s"""


@dataclass(frozen=True)
class Plan:
    """How a request is answered: the SQL and its parameters, and where the data comes from."""

    sql: str
    params: dict[str, Any]
    source: str
    """``stored``, ``cagg:<tf>`` or ``date_bin:<base>``."""


def plan(key: SeriesKey, start: Any, end: Any, limit: int, *, stored: bool, base: str | None,
         timescale: bool) -> Plan:
    """Pure choice of the query for a request, given what is stored (tested without a server)."""
    params: dict[str, Any] = {"exchange": key.exchange, "symbol": key.symbol, "timeframe": key.timeframe,
                              "start": start, "end": end, "limit": limit}
    if stored or base is None:
        return Plan(STORED_SQL, params, "stored")
    if timescale and base == "1m" and key.timeframe in CAGG_TIMEFRAMES:
        return Plan(CAGG_SQL.format(select=_SELECT, tf=key.timeframe), params, f"cagg:{key.timeframe}")
    return Plan(DATE_BIN_SQL, params | {"bin": interval_literal(key.timeframe), "base": base},
                f"date_bin:{base}")


def bases_for(timeframe: str) -> list[str]:
    """Finer timeframes a timeframe can be rolled up from, finest first."""
    ms = timeframe_ms(timeframe)
    return [b for b in ROLLUP_BASES if timeframe_ms(b) < ms and ms % timeframe_ms(b) == 0]


async def _has(conn: psycopg.AsyncConnection, key: SeriesKey, timeframe: str) -> bool:
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM candles WHERE exchange = %s AND symbol = %s AND timeframe = %s)",
        (key.exchange, key.symbol, timeframe),
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def timescale_active(conn: psycopg.AsyncConnection) -> bool:
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def plan_for(conn: psycopg.AsyncConnection, key: SeriesKey, start: Any, end: Any, limit: int) -> Plan:
    stored = await _has(conn, key, key.timeframe)
    base = None
    if not stored:
        for candidate in bases_for(key.timeframe):
            if await _has(conn, key, candidate):
                base = candidate
                break
    return plan(key, start, end, limit, stored=stored, base=base, timescale=await timescale_active(conn))


async def page(conn: psycopg.AsyncConnection, key: SeriesKey, start: Any, end: Any, limit: int
               ) -> tuple[list[tuple[Any, ...]], str]:
    """Up to ``limit`` candles in [start, end) and where they came from."""
    p = await plan_for(conn, key, start, end, limit)
    cur = await conn.execute(p.sql, p.params)
    return list(await cur.fetchall()), p.source


async def stream(conn: psycopg.AsyncConnection, key: SeriesKey, start: Any, end: Any, *,
                 chunk_rows: int = 10_000, limit: int = 2**62) -> AsyncIterator[list[tuple[Any, ...]]]:
    """Yield the result in chunks from a server-side cursor: memory stays at one chunk."""
    p = await plan_for(conn, key, start, end, limit)
    async with conn.transaction(), conn.cursor(name="kubetrade_export") as cur:
        await cur.execute(p.sql, p.params)
        while rows := await cur.fetchmany(chunk_rows):
            yield rows


async def tail(conn: psycopg.AsyncConnection, key: SeriesKey, end: datetime, n: int
               ) -> tuple[list[tuple[Any, ...]], str]:
    """The newest ``n`` candles that open before ``end``, oldest first (for indicator warm-up)."""
    p = await plan_for(conn, key, None, None, n)
    source_tf = key.timeframe if p.source == "stored" else p.source.split(":")[1]
    newest = await last_time(conn, SeriesKey(key.exchange, key.symbol, source_tf))
    if newest is None:
        return [], p.source
    tf = timeframe_ms(key.timeframe)
    hi_ms = min(int(end.timestamp() * 1000), newest + timeframe_ms(source_tf))
    if p.source != "stored":
        hi_ms -= hi_ms % tf  # whole buckets only
    lo = datetime.fromtimestamp((hi_ms - (n + 1) * tf) / 1000, UTC)
    rows, source = await page(conn, key, lo, datetime.fromtimestamp(hi_ms / 1000, UTC), n + 1)
    return rows[-n:], source
