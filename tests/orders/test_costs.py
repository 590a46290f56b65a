"""Paper fills cost what the backtester assumes: the shared cost model against the backtest itself."""

from __future__ import annotations

import numpy as np
import pytest

from kubetrade.candles import Candles
from kubetrade.engine import costs
from kubetrade.executor.venues import PaperVenue
from kubetrade.resources.genome import Genome
from kubetrade_testbed.reference import backtest as reference_backtest


def test_paper_venue_fills_like_the_backtest() -> None:
    close = np.array([100.0, 101.0, 103.0, 99.0, 98.0, 97.0])
    candles = Candles(
        time=np.arange(6, dtype=np.int64) * 300_000,
        open=close.copy(),
        high=close * 1.001,
        low=close * 0.999,
        close=close,
        volume=np.ones(6),
        symbol="BTC/USDT",
        timeframe="5m",
    )
    genome = Genome.model_validate(
        {
            "entry": {"rules": [{"left": {"price": "close"}, "op": "gt", "right": {"value": 100.5}}]},
            "exit": {"rules": [{"left": {"price": "close"}, "op": "lt", "right": {"value": 100.0}}]},
            "positionPct": 1.0,
        }
    )
    fee, slip = 0.001, 0.0005
    trades, _ = reference_backtest.run(genome, candles, fee, slip, cash=10_000.0)
    t = trades[0]
    assert (t.entry_bar, t.exit_bar) == (1, 3)
    assert t.entry_price == pytest.approx(costs.fill_price("buy", 101.0, slip))
    assert t.exit_price == pytest.approx(costs.fill_price("sell", 99.0, slip))
    qty = 10_000.0 / (1 + fee) / t.entry_price
    assert t.pnl == pytest.approx(
        qty * (t.exit_price - t.entry_price) - costs.fee(qty, t.entry_price, fee) - costs.fee(qty, t.exit_price, fee)
    )
    # the paper venue, at the same close and the same settings (slippageBps = 5, feeRate = 0.001)
    venue = PaperVenue()
    venue.on_price("binance", "BTC/USDT", 101.0)
    order = {
        "client_order_id": "c-1",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "side": "buy",
        "type": "market",
        "quantity": qty,
        "filled_quantity": 0.0,
        "price": 101.0,
        "slippage_bps": 5.0,
        "fee_rate": fee,
    }
    fill = venue.fill_for(order, 0)
    assert fill is not None
    assert fill["price"] == pytest.approx(t.entry_price)
    assert fill["fee"] == pytest.approx(qty * t.entry_price * fee)
    with pytest.raises(ValueError):
        costs.fill_price("buy", -1.0, slip)
