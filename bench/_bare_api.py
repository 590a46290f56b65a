"""The baselines of ``bench_api``.

- ``app``: bare FastAPI serving the same 1,000 candles (same JSON shape) from the same
  database with the same read function, without keys, limits, tracing, logs or metrics;
- ``gated_app``: the full kubetrade API (keys, limits, spans, access logs, metrics) with
  that same bare handler behind the same gate as every route, at ``/bench/historical``;
  against ``app`` it isolates what the gate costs from what a route's own code costs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request

router = APIRouter()


@router.get("/historical/{symbol}")
async def historical(request: Request, symbol: str, exchange: str = "binance", timeframe: str = "5m",
                     limit: int = 1000, start: int = 0) -> dict[str, Any]:
    from kubetrade.storage import history
    from kubetrade.storage.candles import SeriesKey

    key = SeriesKey(exchange, symbol.replace("-", "/"), timeframe)
    begin = datetime.fromtimestamp(start / 1000, UTC)
    async with request.app.state.db_pool.connection() as conn:
        rows, source = await history.page(conn, key, begin, datetime(9999, 1, 1, tzinfo=UTC), limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"exchange": exchange, "symbol": key.symbol, "timeframe": timeframe, "source": source,
            "candles": [{"time": r[0], "open": r[1], "high": r[2], "low": r[3], "close": r[4], "volume": r[5]}
                        for r in rows],
            "next": int(rows[-1][0]) + 300_000 if more else None}


def app() -> FastAPI:
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(os.environ["KUBETRADE_DATABASE_URL"], min_size=1, max_size=10, open=False)

    @contextlib.asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        await pool.open()
        api.state.db_pool = pool
        yield
        await pool.close()

    api = FastAPI(lifespan=lifespan)
    api.include_router(router, prefix="/api/v1")
    return api


def gated_app() -> FastAPI:
    from kubetrade.api.commands import served_app
    from kubetrade.api.errors import PROTECTED_RESPONSES
    from kubetrade.api.security import authenticate

    api: FastAPI = served_app()
    api.include_router(router, prefix="/bench", dependencies=[Depends(authenticate)], responses=PROTECTED_RESPONSES)
    return api
