"""Rate limits that hold across API replicas: fixed windows in PostgreSQL, leased in chunks.

Each bucket (``key:<id>``, ``addr:<client address>``) may make ``limit`` requests per
window.  The count lives in ``api_rate_windows``, which every replica shares.  Asking the
database on every request would make it the API's bottleneck, so a replica *leases* a
chunk of the window's quota (``limit // 50``, at least 1) with one atomic
``INSERT ... ON CONFLICT DO UPDATE SET used = used + chunk`` and spends it locally.

What that guarantees: the requests granted in a window, summed over all replicas, never
exceed the limit (every grant comes out of the shared counter).  What it costs: a replica
may refuse while another still holds part of a leased chunk, at most ``chunk`` requests
per replica, i.e. 2 % of the limit.  Small limits lease one request at a time and are exact.
Fixed windows let a client spend up to twice the limit across a window boundary; that is
the usual trade for O(1) state and a simple ``Retry-After`` (the end of the window).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

LEASE_FRACTION = 50
DB_TIMEOUT = 3.0
"""Seconds to wait for a pooled connection: with the database down, answer 503 fast, not hang."""

_CLAIM = """INSERT INTO api_rate_windows (bucket, window_start, used) VALUES (%(bucket)s, %(window)s, %(chunk)s)
ON CONFLICT (bucket, window_start) DO UPDATE SET used = api_rate_windows.used + %(chunk)s
RETURNING used"""


def chunk_for(limit: int) -> int:
    return max(1, limit // LEASE_FRACTION)


def granted(used_after: int, chunk: int, limit: int) -> int:
    """How much of a claimed chunk is within the limit, given the counter after the claim."""
    before = used_after - chunk
    return max(0, min(chunk, limit - before))


@dataclass
class _Lease:
    remaining: int
    exhausted: bool = False


class Limiter:
    """Per-process front of the shared windows; one per API process."""

    def __init__(self, pool: Any, window_seconds: int = 60) -> None:
        self.pool = pool
        self.window = window_seconds
        self._leases: dict[tuple[str, int], _Lease] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._current = 0

    def _window(self, now: float) -> int:
        return int(now // self.window) * self.window

    def retry_after(self, now: float) -> int:
        return max(1, math.ceil(self._window(now) + self.window - now))

    async def hit(self, bucket: str, limit: int) -> int | None:
        """Spend one request of ``bucket``; None if allowed, else seconds until it may retry."""
        now = time.time()
        window = self._window(now)
        if window != self._current:
            await self._new_window(window)
        key = (bucket, window)
        lease = self._leases.get(key)
        if lease is None or (lease.remaining == 0 and not lease.exhausted):
            lock = self._locks.setdefault(bucket, asyncio.Lock())
            async with lock:
                lease = self._leases.get(key)
                if lease is None or (lease.remaining == 0 and not lease.exhausted):
                    lease = await self._claim(bucket, window, limit, lease)
        if lease.remaining > 0:
            lease.remaining -= 1
            return None
        return self.retry_after(now)

    async def _claim(self, bucket: str, window: int, limit: int, lease: _Lease | None) -> _Lease:
        chunk = chunk_for(limit)
        async with self.pool.connection(timeout=DB_TIMEOUT) as conn:
            cur = await conn.execute(_CLAIM, {"bucket": bucket, "window": window, "chunk": chunk})
            row = await cur.fetchone()
        got = granted(int(row[0]), chunk, limit)
        lease = lease or _Lease(0)
        lease.remaining += got
        lease.exhausted = got < chunk
        self._leases[(bucket, window)] = lease
        return lease

    async def _new_window(self, window: int) -> None:
        """Forget the previous windows' leases here and, once per window, their rows everywhere."""
        self._current = window
        self._leases = {k: v for k, v in self._leases.items() if k[1] >= window}
        self._locks = {}
        async with self.pool.connection(timeout=DB_TIMEOUT) as conn:
            await conn.execute("DELETE FROM api_rate_windows WHERE window_start < %s", (window - self.window,))
