"""One leader among the API replicas for each alert loop, by a PostgreSQL advisory lock.

The evaluator, the dispatcher and the SMS sender each run in every API replica, and each
works only while it holds its own session-level advisory lock: the others wait and take
over within :data:`POLL_SECONDS` if the leader's connection goes (its pod died).  The lock
lives as long as the connection, so a loop checks it (:func:`alive`) between its steps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("kubetrade.alerts")

POLL_SECONDS = 2.0
EVALUATOR_LOCK = 0x6B74_616C_7274  # "ktalrt"
DISPATCHER_LOCK = 0x6B74_6469_7370  # "ktdisp"
SMS_LOCK = 0x6B74_736D_7373  # "ktsmss"


async def try_lock(conn: Any, key: int) -> bool:
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def alive(conn: Any) -> None:
    """Raises when the lock's connection is gone (and with it the leadership)."""
    await conn.execute("SELECT 1")


async def lead(dsn: str, key: int, name: str, body: Callable[[Any], Awaitable[None]]) -> None:
    """Run ``body(lock_connection)`` whenever this process leads; until cancelled."""
    import psycopg

    while True:
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as lock:
                while not await try_lock(lock, key):  # noqa: ASYNC110 - polling a lock held by another process
                    await asyncio.sleep(POLL_SECONDS)
                log.info(f"{name} leading")
                await body(lock)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(f"{name} restarting", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
            await asyncio.sleep(POLL_SECONDS)
