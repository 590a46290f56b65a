"""Candle storage: binary COPY ingest, the upsert path for late and corrected candles, reads.

Two write paths, one result:

- :func:`ingest` (bulk, backfill, replay): rows are encoded into PostgreSQL's binary COPY
  format with numpy (no per-row Python) and copied straight into ``candles`` inside a
  savepoint.  Only if that collides with stored rows does the batch fall back to
- :func:`upsert`: the same bytes are copied into a temporary staging table and merged with
  ``INSERT ... ON CONFLICT DO UPDATE ... WHERE IS DISTINCT FROM``, so a re-sent candle is a
  no-op and a corrected one (the exchange revised a bar) replaces the stored values.

Both are idempotent, which is what makes at-least-once delivery from NATS exactly-once in
the table.  Times are UTC milliseconds at the edges and ``timestamptz`` in the table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import numpy as np
import psycopg

from kubetrade.candles import Candles, from_arrays
from kubetrade.messaging.schemas import Candle
from kubetrade.storage.series import SeriesKey as SeriesKey
from kubetrade.storage.series import interval_literal as interval_literal
from kubetrade.storage.series import last_time as last_time

PG_EPOCH_MS = 946_684_800_000
"""2000-01-01T00:00:00Z in Unix ms: PostgreSQL's binary timestamps count from there."""

_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_TRAILER = (-1).to_bytes(2, "big", signed=True)
COLUMNS = ("exchange", "symbol", "timeframe", "time", "open", "high", "low", "close", "volume")
_COLS = ", ".join(COLUMNS)
BATCH_ROWS = 200_000

MERGE_SQL = f"""INSERT INTO candles ({_COLS})
    SELECT DISTINCT ON (exchange, symbol, timeframe, time) {_COLS} FROM candles_stage
    ORDER BY exchange, symbol, timeframe, time
    ON CONFLICT (exchange, symbol, timeframe, time) DO UPDATE
       SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
           close = EXCLUDED.close, volume = EXCLUDED.volume
     WHERE (candles.open, candles.high, candles.low, candles.close, candles.volume)
           IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume)"""  # noqa: S608
"""Staged rows into ``candles``: new ones inserted, changed ones updated, identical ones left alone."""


def encode_binary(key: SeriesKey, c: Candles, start: int = 0, stop: int | None = None) -> bytes:
    """Rows ``start:stop`` of one series as a complete binary COPY stream (header to trailer).

    The three text columns are the same on every row of a series, so every row has the same
    byte layout and the whole batch is one numpy structured array written in one go.
    """
    sl = slice(start, stop)
    n = len(c.time[sl])
    texts = [key.exchange.encode(), key.symbol.encode(), key.timeframe.encode()]
    fields: list[tuple[str, str]] = [("nfields", ">i2")]
    for i, t in enumerate(texts):
        fields += [(f"l{i}", ">i4"), (f"s{i}", f"S{len(t)}")]
    for name in COLUMNS[3:]:
        fields += [(f"l_{name}", ">i4"), (name, ">i8" if name == "time" else ">f8")]
    rows = np.empty(n, dtype=np.dtype(fields))
    rows["nfields"] = len(COLUMNS)
    for i, t in enumerate(texts):
        rows[f"l{i}"] = len(t)
        rows[f"s{i}"] = t
    for name in COLUMNS[3:]:
        rows[f"l_{name}"] = 8
    rows["time"] = (c.time[sl] - PG_EPOCH_MS) * 1000
    for name in COLUMNS[4:]:
        rows[name] = getattr(c, name)[sl]
    return _HEADER + rows.tobytes() + _TRAILER


async def is_partitioned(conn: psycopg.AsyncConnection) -> bool:
    cur = await conn.execute("SELECT relkind FROM pg_class WHERE oid = 'candles'::regclass")
    row = await cur.fetchone()
    return row is not None and row[0] == "p"


def _month_floor(ms: int) -> datetime:
    d = datetime.fromtimestamp(ms / 1000, UTC)
    return datetime(d.year, d.month, 1, tzinfo=UTC)


def _next_month(d: datetime) -> datetime:
    return datetime(d.year + d.month // 12, d.month % 12 + 1, 1, tzinfo=UTC)


async def ensure_partitions(conn: psycopg.AsyncConnection, start_ms: int, end_ms: int) -> None:
    """Create the monthly partitions covering [start_ms, end_ms] (plain PostgreSQL only)."""
    if not await is_partitioned(conn):
        return
    month = _month_floor(start_ms)
    while month.timestamp() * 1000 <= end_ms:
        nxt = _next_month(month)
        name = f"candles_{month:%Y_%m}"
        # Concurrent creators race; the loser's error is harmless, so it is swallowed in a savepoint.
        try:
            async with conn.transaction():
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF candles "
                    f"FOR VALUES FROM ('{month.isoformat()}') TO ('{nxt.isoformat()}')"
                )
        except (psycopg.errors.DuplicateTable, psycopg.errors.UniqueViolation,
                psycopg.errors.CheckViolation):
            pass
        month = nxt


NOTIFY_CHANNEL = "kubetrade_candles"
"""Every write to ``candles`` notifies ``exchange|symbol|timeframe|first_ms|last_ms`` here, inside its transaction:
PostgreSQL delivers it on commit (never for a rolled-back write), so readers that cache candles (the API) can
forget exactly what a committed write may have changed."""


async def _notify(conn: psycopg.AsyncConnection, key: SeriesKey, first_ms: int, last_ms: int) -> None:
    await conn.execute("SELECT pg_notify(%s, %s)",
                       (NOTIFY_CHANNEL, f"{key.exchange}|{key.symbol}|{key.timeframe}|{first_ms}|{last_ms}"))


async def _copy(conn: psycopg.AsyncConnection, table: str, data: bytes, chunk: int = 1 << 20) -> None:
    view = memoryview(data)  # 1 MiB writes keep the pipe to the server full without copying the batch
    async with conn.cursor() as cur, cur.copy(f"COPY {table} ({_COLS}) FROM STDIN (FORMAT BINARY)") as copy:
        for i in range(0, len(view), chunk):
            await copy.write(view[i:i + chunk])


async def upsert_binary(conn: psycopg.AsyncConnection, data: bytes) -> int:
    """Merge a binary COPY stream into ``candles``; returns rows inserted or changed."""
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS candles_stage (LIKE candles INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    await conn.execute("TRUNCATE candles_stage")
    await _copy(conn, "candles_stage", data)
    cur = await conn.execute(MERGE_SQL)
    return cur.rowcount


async def ingest(conn: psycopg.AsyncConnection, key: SeriesKey, c: Candles, *, batch_rows: int = BATCH_ROWS) -> int:
    """Write a series in batches of binary COPY; batches that overlap stored rows are upserted.

    Each batch is its own transaction, so a crash mid-way leaves whole batches and a rerun
    completes the rest without duplicates.  Returns rows inserted or changed.
    """
    if len(c) == 0:
        return 0
    await ensure_partitions(conn, int(c.time[0]), int(c.time[-1]))
    written = 0
    for start in range(0, len(c), batch_rows):
        data = encode_binary(key, c, start, start + batch_rows)
        async with conn.transaction():
            try:
                async with conn.transaction():  # savepoint: a collision undoes only the fast path
                    await _copy(conn, "candles", data)
                written += min(batch_rows, len(c) - start)
            except psycopg.errors.UniqueViolation:
                written += await upsert_binary(conn, data)
            await _notify(conn, key, int(c.time[start]), int(c.time[min(start + batch_rows, len(c)) - 1]))
    return written


def to_series(candles: Iterable[Candle]) -> dict[SeriesKey, Candles]:
    """Group messages by series, sort by time, keep the last message of a repeated time."""
    groups: dict[SeriesKey, dict[int, Candle]] = defaultdict(dict)
    for m in candles:
        groups[SeriesKey(m.exchange, m.symbol, m.timeframe)][m.time] = m
    out = {}
    for key, by_time in groups.items():
        ms = [by_time[t] for t in sorted(by_time)]
        out[key] = from_arrays(
            [m.time for m in ms], [m.open for m in ms], [m.high for m in ms], [m.low for m in ms],
            [m.close for m in ms], [m.volume for m in ms], symbol=key.symbol, timeframe=key.timeframe, check=False,
        )
    return out


async def upsert_messages(conn: psycopg.AsyncConnection, candles: Sequence[Candle]) -> int:
    """Upsert candle messages (any mix of series) in one transaction; returns rows changed."""
    series = to_series(candles)
    if not series:
        return 0
    changed = 0
    async with conn.transaction():
        for key, c in series.items():
            await ensure_partitions(conn, int(c.time[0]), int(c.time[-1]))
            changed += await upsert_binary(conn, encode_binary(key, c))
            await _notify(conn, key, int(c.time[0]), int(c.time[-1]))
    return changed
