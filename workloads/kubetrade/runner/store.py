"""The runner's database work, each piece in a short-lived process (:mod:`kubetrade.runner.dbwork`).

A runner touches PostgreSQL only when it starts (its ledger allocated, the fills it rebuilds its
books from, the warm-up history) and when a candle gap makes it warm up again; in between it
trades over NATS.  Holding psycopg in the runner's process cost every paper runner 5 MB of Python
objects (83 modules) plus libpq with its own OpenSSL, and two connections kept idle for its whole
life cost the database a backend each (bench runner_footprint); a node runs hundreds of paper
runners.  So the work runs in ``python -m kubetrade.runner.dbwork``: the request (with the DSN) on
its stdin, its JSON answer on stdout; it exits when done, and the runner's process never imports
psycopg.  The answer carries what the in-process calls returned, as the runner used it (numbers
as floats, times as UTC milliseconds), so the books and the warm-up are the same.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

Fill = tuple[str, str, str, str, float, float, float, int]
"""client order id, trade id, symbol, side, quantity, price, fee, time (ms)."""


class StoreError(RuntimeError):
    """The database work failed; the message says why (:func:`kubetrade.runner.exits.why`'s words)."""


async def call(request: dict[str, Any], seconds: float = 300.0) -> dict[str, Any]:
    """Run one request in its own process and return its answer; :class:`StoreError` when it fails."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubetrade.runner.dbwork", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(request).encode()), seconds)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise StoreError(f"database work ({request.get('op')}) did not finish in {seconds:.0f}s") from None
    except asyncio.CancelledError:  # the runner stops meanwhile: the work is not wanted any more
        proc.kill()
        await proc.wait()
        raise
    try:
        answer = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = " ".join(err.decode(errors="replace").split())[-500:]
        raise StoreError(f"database work ({request.get('op')}) exited {proc.returncode} without an answer: "
                         f"{tail or 'no output'}") from None
    if proc.returncode != 0 or "error" in answer:
        raise StoreError(str(answer.get("error") or f"database work exited {proc.returncode}"))
    return dict(answer)


async def books(dsn: str, environment: str, namespace: str, strategy: str, capital: float,
                risk_policy: str | None, currency: str) -> list[Fill]:
    """Allocate the strategy's ledger (idempotent) and return its fills, oldest first."""
    got = await call({"op": "books", "dsn": dsn, "environment": environment, "namespace": namespace,
                      "strategy": strategy, "capital": capital, "riskPolicy": risk_policy, "currency": currency})
    return [(str(c), str(t), str(s), str(side), float(q), float(p), float(f), int(ms))
            for c, t, s, side, q, p, f, ms in got["fills"]]


async def history(dsn: str, exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int, limit: int,
                  wait_seconds: float) -> list[tuple[int, float, float, float, float, float]]:
    """Stored candles in [start, end), waiting up to ``wait_seconds`` for the newest to reach ``end``."""
    got = await call({"op": "history", "dsn": dsn, "exchange": exchange, "symbol": symbol, "timeframe": timeframe,
                      "startMs": start_ms, "endMs": end_ms, "limit": limit, "waitSeconds": wait_seconds},
                     seconds=300.0 + wait_seconds)
    return [(int(t), float(o), float(h), float(lo), float(c), float(v)) for t, o, h, lo, c, v in got["rows"]]
