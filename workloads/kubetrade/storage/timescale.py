"""The TimescaleDB layer over the ``candles`` table, applied from code when the extension exists.

Migrations must apply on plain PostgreSQL, so nothing here is in a migration: on start
the collector and the API call :func:`setup`, which does nothing on a server without the
extension and otherwise makes ``candles`` a hypertable, adds continuous aggregates from
1m candles to 5m/15m/1h/4h/1d (each refreshed by a policy), compression of chunks older
than ``compress_after`` and retention of ``retain``.  Every statement is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from kubetrade.storage.candles import interval_literal
from kubetrade.storage.history import CAGG_TIMEFRAMES

AVAILABLE_SQL = "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"


@dataclass(frozen=True)
class Policy:
    chunk_interval: str = "7 days"
    compress_after: str = "14 days"
    retain: str = "3650 days"
    """Raw candles are kept ten years by default; the aggregates are kept as long as the raw data."""


def cagg_sql(timeframe: str) -> str:
    bucket = interval_literal(timeframe)
    return f"""CREATE MATERIALIZED VIEW IF NOT EXISTS candles_{timeframe}
  WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT exchange, symbol, time_bucket(INTERVAL '{bucket}', time) AS time,
       first(open, time) AS open, max(high) AS high, min(low) AS low,
       last(close, time) AS close, sum(volume) AS volume
  FROM candles WHERE timeframe = '1m'
 GROUP BY exchange, symbol, time_bucket(INTERVAL '{bucket}', time)
  WITH NO DATA"""  # noqa: S608 - timeframe validated by interval_literal


def statements(policy: Policy = Policy()) -> list[str]:
    """The Timescale DDL in order (pure, so the tests can run it on any Timescale build)."""
    out = [
        "CREATE EXTENSION IF NOT EXISTS timescaledb",
        f"SELECT create_hypertable('candles', 'time', chunk_time_interval => INTERVAL '{policy.chunk_interval}', "
        "if_not_exists => TRUE, migrate_data => TRUE)",
        "ALTER TABLE candles SET (timescaledb.compress, "
        "timescaledb.compress_segmentby = 'exchange, symbol, timeframe', timescaledb.compress_orderby = 'time')",
        f"SELECT add_compression_policy('candles', INTERVAL '{policy.compress_after}', if_not_exists => TRUE)",
        f"SELECT add_retention_policy('candles', INTERVAL '{policy.retain}', if_not_exists => TRUE)",
    ]
    for tf in CAGG_TIMEFRAMES:
        bucket = interval_literal(tf)
        out.append(cagg_sql(tf))
        # Refresh the recent past often; older buckets only change when late candles arrive,
        # and those are picked up because the window reaches back three buckets' worth of days.
        out.append(
            f"SELECT add_continuous_aggregate_policy('candles_{tf}', start_offset => INTERVAL '3 days', "
            f"end_offset => INTERVAL '{bucket}', schedule_interval => INTERVAL '{bucket}', if_not_exists => TRUE)"
        )
    return out


async def available(conn: psycopg.AsyncConnection) -> bool:
    cur = await conn.execute(AVAILABLE_SQL)
    row = await cur.fetchone()
    return bool(row and row[0])


async def setup(conn: psycopg.AsyncConnection, policy: Policy = Policy()) -> bool:
    """Apply the Timescale layer if the server has the extension; returns whether it did.

    On plain PostgreSQL ``candles`` is partitioned (see migration 0200) and roll-ups use
    ``date_bin`` at query time, so there is nothing to do.
    """
    if not await available(conn):
        return False
    for sql in statements(policy):
        await conn.execute(sql)
    return True
