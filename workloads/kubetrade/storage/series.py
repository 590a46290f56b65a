"""Which series, and its newest stored candle: what a reader of candles needs, without numpy.

:mod:`kubetrade.storage.candles` (the writers: binary COPY with numpy) re-exports these; the
readers (:mod:`kubetrade.storage.history`, a runner's warm-up) import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from kubetrade.timeframes import timeframe_ms


@dataclass(frozen=True)
class SeriesKey:
    exchange: str
    symbol: str
    timeframe: str


async def last_time(conn: psycopg.AsyncConnection, key: SeriesKey) -> int | None:
    """Open time (ms) of the newest stored candle of a series: where a collector resumes."""
    cur = await conn.execute(
        "SELECT (extract(epoch FROM max(time)) * 1000)::bigint FROM candles "
        "WHERE exchange = %s AND symbol = %s AND timeframe = %s",
        (key.exchange, key.symbol, key.timeframe),
    )
    row = await cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def interval_literal(timeframe: str) -> str:
    """A timeframe as a PostgreSQL interval literal: ``4h`` -> ``14400 seconds``."""
    return f"{timeframe_ms(timeframe) // 1000} seconds"
