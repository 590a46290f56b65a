"""The ``backtests`` table: one row per request, its status and its result."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

_COLUMNS = "id, namespace, strategy, status, request, job, result, error, created_at, started_at, finished_at"
NAMES = [c.strip() for c in _COLUMNS.split(",")]


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(NAMES, row, strict=True))


async def create(conn: Any, namespace: str, strategy: str, request: dict[str, Any]) -> dict[str, Any]:
    cur = await conn.execute(
        f"INSERT INTO backtests (id, namespace, strategy, request) VALUES (%s, %s, %s, %s) RETURNING {_COLUMNS}",  # noqa: S608
        (uuid.uuid4(), namespace, strategy, Jsonb(request)),
    )
    return _row(await cur.fetchone())


async def get(conn: Any, backtest_id: uuid.UUID) -> dict[str, Any] | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM backtests WHERE id = %s", (backtest_id,))  # noqa: S608
    row = await cur.fetchone()
    return None if row is None else _row(row)


async def listing(conn: Any, *, namespace: str | None, strategy: str | None, status: str | None,
                  limit: int, before: tuple[datetime, uuid.UUID] | None) -> list[dict[str, Any]]:
    """Newest first; ``before`` is the (created_at, id) of the last row of the previous page."""
    cur = await conn.execute(
        f"""SELECT {_COLUMNS} FROM backtests
             WHERE (%(ns)s::text IS NULL OR namespace = %(ns)s)
               AND (%(strategy)s::text IS NULL OR strategy = %(strategy)s)
               AND (%(status)s::text IS NULL OR status = %(status)s)
               AND (%(t)s::timestamptz IS NULL OR (created_at, id) < (%(t)s, %(id)s))
             ORDER BY created_at DESC, id DESC LIMIT %(limit)s""",  # noqa: S608
        {"ns": namespace, "strategy": strategy, "status": status, "limit": limit,
         "t": before[0] if before else None, "id": before[1] if before else None},
    )
    return [_row(r) for r in await cur.fetchall()]


async def set_job(conn: Any, backtest_id: uuid.UUID, job: str) -> None:
    await conn.execute("UPDATE backtests SET job = %s WHERE id = %s", (job, backtest_id))


async def start(conn: Any, backtest_id: uuid.UUID) -> dict[str, Any] | None:
    """Claim a pending backtest; None if it is not pending (a retried Job must not run it twice)."""
    cur = await conn.execute(
        f"""UPDATE backtests SET status = 'running', started_at = now()
             WHERE id = %s AND status = 'pending' RETURNING {_COLUMNS}""",  # noqa: S608
        (backtest_id,),
    )
    row = await cur.fetchone()
    return None if row is None else _row(row)


async def finish(conn: Any, backtest_id: uuid.UUID, *, result: dict[str, Any] | None = None,
                 error: str | None = None) -> None:
    await conn.execute(
        "UPDATE backtests SET status = %s, result = %s, error = %s, finished_at = now() WHERE id = %s",
        ("failed" if error else "succeeded", Jsonb(result) if result is not None else None, error, backtest_id),
    )
