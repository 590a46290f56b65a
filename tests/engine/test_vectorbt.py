"""An EMA-crossover grid with fees: the engine and vectorbt must agree trade for trade.

vectorbt is driven entirely by its own machinery (TA-Lib EMAs through its indicator
factory, its crossover detection, ``Portfolio.from_signals``), so agreement checks the
engine's signals, fills, fees and accounting, not shared code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt

from kubetrade.candles import Candles
from kubetrade.engine.runs import Costs, backtest, backtest_many
from kubetrade.engine.templates import ema_cross

FAST = [2, 6, 10, 20, 40]
SLOW = [50, 90, 150, 290]


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_ema_grid_matches_vectorbt(btc_1m: Candles) -> None:
    c = btc_1m
    close = pd.Series(c.close)
    ema = vbt.IndicatorFactory.from_talib("EMA")
    fast = ema.run(close, timeperiod=FAST).real.to_numpy()
    slow = ema.run(close, timeperiod=SLOW).real.to_numpy()
    f = pd.DataFrame(np.repeat(fast, len(SLOW), axis=1))
    s = pd.DataFrame(np.tile(slow, (1, len(FAST))))
    pf = vbt.Portfolio.from_signals(close, f.vbt.crossed_above(s), f.vbt.crossed_below(s), fees=0.001,
                                    init_cash=100.0, freq="1min")
    genomes = [ema_cross(a, b) for a in FAST for b in SLOW]
    costs = Costs(fee=0.001, slippage=0.0, init_cash=100.0)
    ours = backtest_many(genomes, c, costs)

    np.testing.assert_allclose([m.total_return for m in ours], pf.total_return().to_numpy(), rtol=0, atol=1e-9)
    closed = pf.trades.closed.count().to_numpy()
    assert [m.trades for m in ours] == closed.tolist()
    assert closed.min() > 20

    records = pf.trades.records_readable
    for col, genome in enumerate(genomes):
        r = backtest(genome, c, costs)
        theirs = records[(records["Column"] == col) & (records["Status"] == "Closed")]
        assert [(t.entry_bar, t.exit_bar) for t in r.trades] == list(
            zip(theirs["Entry Timestamp"], theirs["Exit Timestamp"], strict=True))
        np.testing.assert_allclose([t.pnl for t in r.trades], theirs["PnL"].to_numpy(), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(r.equity, pf.value().iloc[:, col].to_numpy(), rtol=1e-9)
