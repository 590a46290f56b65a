"""What the stop watch writes back to the positions, against a real database.

A trailing stop's tightened level and best price are written (a restarted risk manager
resumes from them); a fixed stop whose best price moved has nothing worth writing; and a
stop never loosens (nor its best price go back) in SQL either.  All of a save goes in one transaction.
"""

from __future__ import annotations

from typing import Any

from kubetrade.executor.venues import PaperVenue
from kubetrade.ledger import allocation, connection, paperbatch
from kubetrade.ledger.queries import OPEN_POSITIONS
from kubetrade.resources.riskpolicy import StopLossSettings
from kubetrade.risk.stopwatch import StopWatch
from tests.orders.conftest import now_ms, order


async def test_trailing_stops_are_written_back_and_fixed_ones_are_not(orders_dsn: str) -> None:
    conn = await connection.connect(orders_dsn)
    try:
        venue = PaperVenue()
        venue.on_price("binance", "BTC/USDT", 100.0)
        for strategy in ("trail", "fixed"):
            await allocation.allocate(conn, "paper", strategy, 10_000.0, risk_policy="default")
            assert await paperbatch.record_and_fill(
                conn, venue, order(f"{strategy}-1", strategy=strategy, qty=1.0, price=100.0), now_ms()
            )
        settings = {
            "trail": StopLossSettings(defaultStopPct=0.05, trailing=True, trailingPct=0.05),
            "fixed": StopLossSettings(defaultStopPct=0.05),
        }
        rows = await (await conn.execute(OPEN_POSITIONS)).fetchall()
        watch = StopWatch()
        watch.load(rows, lambda env, ns, strategy: settings[strategy])

        async def written() -> dict[str, tuple[Any, Any]]:
            cur = await conn.execute("SELECT strategy, stop_price, best_price FROM positions")
            return {r["strategy"]: (r["stop_price"], r["best_price"]) for r in await cur.fetchall()}

        before = await written()
        assert await watch.on_price(None, "BTC/USDT", 120.0) == 0  # both bests move; only the trail tightens
        assert watch.moved == {("paper", "default", "trail", "BTC/USDT")}
        await watch.save(conn)
        after = await written()
        assert after["fixed"] == before["fixed"]
        assert after["trail"] == (120.0 * 0.95, 120.0)
        assert watch.moved == set()

        # a price back down moves nothing, and a stop written back never loosens in SQL
        assert await watch.on_price(None, "BTC/USDT", 115.0) == 0
        assert watch.moved == set()
        stale = StopWatch()
        stale.load(rows, lambda env, ns, strategy: settings[strategy])  # the rows as read before the move
        stale.moved = {("paper", "default", "trail", "BTC/USDT")}
        await stale.save(conn)
        assert (await written())["trail"] == (120.0 * 0.95, 120.0)
    finally:
        await conn.close()
