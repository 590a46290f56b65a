"""``python -m kubetrade.runner.dbwork``: one piece of a runner's database work, in a process of its own.

The runner (:mod:`kubetrade.runner.store`) starts it with a JSON request on stdin (the DSN in it,
never on the command line), reads one JSON answer from stdout and waits for it to exit.  It
connects, does the work with the same functions the runner called in-process before
(:func:`~kubetrade.ledger.allocation.allocate`, :func:`~kubetrade.ledger.queries.strategy_fills`,
:func:`~kubetrade.storage.history.page`), closes its connection and exits.  A failure answers
``{"error": ...}`` in :func:`kubetrade.runner.exits.why`'s words (no credentials) and exit code 1.

Requests:

``{"op": "books", "dsn", "environment", "namespace", "strategy", "capital", "riskPolicy", "currency"}``
    allocate the strategy's ledger (idempotent), answer its fills, oldest first:
    ``{"fills": [[client_order_id, trade_id, symbol, side, quantity, price, fee, time_ms], ...]}``
``{"op": "history", "dsn", "exchange", "symbol", "timeframe", "startMs", "endMs", "limit", "waitSeconds"}``
    the stored candles in [start, end), asked again every half second until the newest is the bar
    right before ``endMs`` or ``waitSeconds`` passed: ``{"rows": [[time_ms, o, h, l, c, v], ...]}``
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from kubetrade.ledger import allocation, connection, queries
from kubetrade.runner import exits
from kubetrade.storage import history
from kubetrade.storage.series import SeriesKey
from kubetrade.timeframes import timeframe_ms


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def books(req: dict[str, Any]) -> dict[str, Any]:
    conn = await connection.connect(req["dsn"])
    try:
        await allocation.allocate(conn, req["environment"], req["strategy"], float(req["capital"]),
                                  req["namespace"], req["riskPolicy"], req["currency"])
        fills = await queries.strategy_fills(conn, req["environment"], req["namespace"], req["strategy"])
    finally:
        await conn.close()
    return {"fills": [[f["client_order_id"], f["trade_id"], f["symbol"], f["side"], float(f["quantity"]),
                       float(f["price"]), float(f["fee"]), int(f["time"].timestamp() * 1000)] for f in fills]}


async def candles(req: dict[str, Any]) -> dict[str, Any]:
    key = SeriesKey(req["exchange"], req["symbol"], req["timeframe"])
    before = int(req["endMs"])
    last = before - timeframe_ms(key.timeframe)
    deadline = time.monotonic() + float(req["waitSeconds"])
    async with await psycopg.AsyncConnection.connect(req["dsn"], autocommit=True) as conn:
        while True:
            rows, _ = await history.page(conn, key, _dt(int(req["startMs"])), _dt(before), int(req["limit"]))
            if (rows and int(rows[-1][0]) == last) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    return {"rows": [[int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])] for r in rows]}


OPS = {"books": books, "history": candles}


def main() -> int:
    try:
        req = json.loads(sys.stdin.read())
        answer = asyncio.run(OPS[req["op"]](req))
    except Exception as exc:  # the runner says why it cannot go on; this process only reports it
        print(json.dumps({"error": exits.why(exc)}))
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
