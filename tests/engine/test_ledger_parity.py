"""The backtest kernel's money arithmetic is the ledger's: every trade the kernel makes, replayed
as two fills through :mod:`kubetrade.ledger.accounting` (what the executor records and the
runner's books use), gives the kernel's trade PnL, its cash after each exit and its equity on
every bar in between - long, short and reversing, with fees and slippage."""

from __future__ import annotations

import pytest

from kubetrade.candles import Candles
from kubetrade.engine.runs import Costs, backtest
from kubetrade.ledger import accounting

from .strategies import LONG_GENOMES, PERP_GENOMES

COSTS = Costs(fee=0.001, slippage=0.0005)


@pytest.mark.parametrize(("idx", "market"), [(i, "spot") for i in range(len(LONG_GENOMES))]
                         + [(i, "perpetual") for i in range(len(PERP_GENOMES))])
def test_kernel_fills_equal_the_ledgers_accounting(btc_1m: Candles, eth_perp: Candles, idx: int, market: str) -> None:
    genome = (LONG_GENOMES if market == "spot" else PERP_GENOMES)[idx]
    c = (btc_1m if market == "spot" else eth_perp).slice(0, 5000)
    result = backtest(genome, c, COSTS, market=market)  # type: ignore[arg-type]
    assert len(result.trades) >= 5, "scenario too quiet to prove anything"
    if market == "perpetual":
        assert any(t.side < 0 for t in result.trades), "the perpetual scenarios must hold shorts"
    cash, pos = COSTS.init_cash, accounting.Position()
    checked_bars = 0
    for n, t in enumerate(result.trades):
        opening, closing = ("buy", "sell") if t.side > 0 else ("sell", "buy")
        cash_before = cash
        entry_fee = t.qty * t.entry_price * COSTS.fee
        pos, realised_in = accounting.apply_fill(pos, opening, t.qty, t.entry_price, entry_fee)
        cash = accounting.cash_after_fill(cash, opening, t.qty, t.entry_price, entry_fee)
        assert realised_in == 0.0 and pos.quantity == pytest.approx(t.side * t.qty, rel=1e-15)
        # marked to market on the bars it is held (after its entry bar, before its exit bar)
        for i in range(t.entry_bar + 1, t.exit_bar):
            equity = cash + pos.quantity * float(c.close[i])
            assert equity == pytest.approx(result.equity[i], rel=1e-10)
            checked_bars += 1
        exit_fee = t.qty * t.exit_price * COSTS.fee
        pos, realised = accounting.apply_fill(pos, closing, t.qty, t.exit_price, exit_fee)
        cash = accounting.cash_after_fill(cash, closing, t.qty, t.exit_price, exit_fee)
        assert pos.quantity == 0.0
        assert realised == pytest.approx(t.side * t.qty * (t.exit_price - t.entry_price), rel=1e-12, abs=1e-9)
        assert cash - cash_before == pytest.approx(t.pnl, rel=1e-9, abs=1e-9)
        assert realised - entry_fee - exit_fee == pytest.approx(t.pnl, rel=1e-9, abs=1e-9)
        # flat at this close (no reversal into the next trade, which the trade list shows only once
        # it is closed: hence not after the last one), the kernel's equity is its cash
        if n + 1 < len(result.trades) and result.trades[n + 1].entry_bar != t.exit_bar:
            assert cash == pytest.approx(result.equity[t.exit_bar], rel=1e-10)
    assert checked_bars > 100
    assert pos.fees == pytest.approx(sum(t.qty * (t.entry_price + t.exit_price) * COSTS.fee for t in result.trades))
