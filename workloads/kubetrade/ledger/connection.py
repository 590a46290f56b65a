"""A database connection as the order record's functions expect it, and the small conversions they share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

Row = dict[str, Any]


async def connect(dsn: str) -> AsyncConnection[Row]:
    """Autocommit (each function opens the transaction it needs) with rows as dicts."""
    return await AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row)


def ts(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def is_spot(symbol: str) -> bool:
    return ":" not in symbol
