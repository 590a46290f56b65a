"""A stop and the strategy's own close, racing: the stop must not close what is already being closed.

The stop watch reloads positions once a second; between reloads a strategy can close its
position itself (its close approved by the risk manager, reserved in the book, on its way
to the executor).  A price crossing the stale stop then must not send a second close (the
executor would refuse it: reduce-only with nothing left), and a partial close in flight
leaves the stop closing only what will be left.  Against a real JetStream.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import OrderRequest
from kubetrade.messaging.streams import ensure_order_streams as ensure_streams
from kubetrade.resources.riskpolicy import StopLossSettings
from kubetrade.risk.stopwatch import StopWatch

KEY = ("paper", "default", "alpha", "BTC/USDT")


def _row(quantity: float) -> dict[str, Any]:
    return {
        "environment": "paper",
        "namespace": "default",
        "strategy": "alpha",
        "symbol": "BTC/USDT",
        "exchange": "binance",
        "quantity": quantity,
        "average_price": 100.0,
        "stop_price": 95.0,
        "trailing_pct": None,
        "best_price": None,
        "stop_generation": 0,
    }


async def test_a_stop_does_not_close_what_the_strategy_is_already_closing(nc: Any) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    sent: list[OrderRequest] = []

    async def on_order(msg: Any) -> None:
        sent.append(codec.decode(OrderRequest, msg.data))

    await nc.subscribe(subjects.order_submit("paper"), cb=on_order)
    held = {KEY: 0.0}
    watch = StopWatch(held=lambda key: held.get(key))
    watch.load([_row(2.0)], lambda *_: StopLossSettings())

    # the strategy's full close is approved (the book holds nothing more): the crossed stop is moot
    assert await watch.on_price(js, "BTC/USDT", 94.0) == 0
    assert watch.moot == 1 and watch.closing == set()

    # its partial close in flight (1.5 of 2 being sold): the stop closes the 0.5 that will be left
    held[KEY] = 0.5
    assert await watch.on_price(js, "BTC/USDT", 94.0) == 1
    # a book that knows nothing of the position (None) leaves the stop as it was loaded
    other = StopWatch(held=lambda key: None)
    other.load([_row(-3.0) | {"strategy": "beta", "stop_price": 105.0}], lambda *_: StopLossSettings())
    assert await other.on_price(js, "BTC/USDT", 106.0) == 1
    await nc.flush()
    for _ in range(100):
        if len(sent) == 2:
            break
        await asyncio.sleep(0.02)
    by_strategy = {o.strategy: o for o in sent}
    assert by_strategy["alpha"].side == "sell" and by_strategy["alpha"].quantity == 0.5
    assert by_strategy["alpha"].reduce_only
    assert by_strategy["beta"].side == "buy" and by_strategy["beta"].quantity == 3.0
