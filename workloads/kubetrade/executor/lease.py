"""The singleton guarantee: one executor per environment, held by a PostgreSQL advisory lock.

The lock lives as long as the session that took it.  If the holder dies (SIGKILL, node
loss) PostgreSQL ends the session and frees the lock, so a successor can start at once;
if the database restarts, the holder loses it too and must stop work and take it again
(:meth:`Lease.check` tells it).  Because the same database holds the orders, "I hold the
lock" and "I may write orders" can never disagree across a partition.
"""

from __future__ import annotations

import hashlib

import psycopg


class LeaseLost(RuntimeError):
    """The lock's session ended; stop handling orders until it is taken again."""


class AlreadyHeld(RuntimeError):
    """Another executor of this environment holds the lease."""


def lock_key(environment: str) -> int:
    digest = hashlib.sha256(f"kubetrade-executor/{environment}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Lease:
    def __init__(self, dsn: str, environment: str) -> None:
        self.dsn = dsn
        self.environment = environment
        self.key = lock_key(environment)
        self.conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None

    async def try_acquire(self) -> bool:
        conn = await psycopg.AsyncConnection.connect(
            self.dsn, autocommit=True, application_name=f"executor-{self.environment}"
        )
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
        row = await cur.fetchone()
        if row and row[0]:
            self.conn = conn
            return True
        await conn.close()
        return False

    async def check(self) -> None:
        """Raise :class:`LeaseLost` unless the session holding the lock is alive."""
        if self.conn is None:
            raise LeaseLost("no lease")
        try:
            await self.conn.execute("SELECT 1")
        except psycopg.Error as exc:
            self.conn = None
            raise LeaseLost(f"lease session ended: {type(exc).__name__}") from exc

    async def release(self) -> None:
        if self.conn is not None:
            try:
                await self.conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
                await self.conn.close()
            except psycopg.Error:
                pass
            self.conn = None
