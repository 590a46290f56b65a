"""The numba backtester against the plain-Python reference loop, hand-made bar scenarios and its own metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from kubetrade.candles import Candles, from_arrays
from kubetrade.engine.compile import GenomeError, compile_genomes
from kubetrade.engine.runs import Costs, backtest, backtest_many
from kubetrade.resources.genome import Genome
from kubetrade_testbed.reference import backtest as reference_backtest

from .strategies import LONG_GENOMES, PERP_GENOMES, g, ind, rule, val

COSTS = Costs(fee=0.001, slippage=0.0005)


@pytest.mark.parametrize(("idx", "market"), [(i, "spot") for i in range(len(LONG_GENOMES))]
                         + [(i, "perpetual") for i in range(len(PERP_GENOMES))])
def test_kernel_matches_reference_loop(btc_1m: Candles, eth_perp: Candles, idx: int, market: str) -> None:
    genome = (LONG_GENOMES if market == "spot" else PERP_GENOMES)[idx]
    c = (btc_1m if market == "spot" else eth_perp).slice(0, 2500)
    ours = backtest(genome, c, COSTS, market=market)  # type: ignore[arg-type]
    trades, equity = reference_backtest.run(genome, c, COSTS.fee, COSTS.slippage, COSTS.init_cash)
    assert len(trades) >= 5, "scenario too quiet to prove anything"
    assert [(t.entry_bar, t.exit_bar, t.side, t.reason) for t in ours.trades] == [
        (t.entry_bar, t.exit_bar, t.side, t.reason) for t in trades]
    for a, b in zip(ours.trades, trades, strict=True):
        assert a.entry_price == pytest.approx(b.entry_price, rel=1e-12)
        assert a.exit_price == pytest.approx(b.exit_price, rel=1e-12)
        assert a.pnl == pytest.approx(b.pnl, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(ours.equity, equity, rtol=1e-9)


def test_batch_equals_single_runs(btc_1m: Candles) -> None:
    c = btc_1m.slice(0, 4000)
    batch = backtest_many(LONG_GENOMES, c, COSTS)
    for genome, m in zip(LONG_GENOMES, batch, strict=True):
        assert backtest(genome, c, COSTS).metrics == m


def test_metrics_agree_with_the_equity_curve(btc_1m: Candles) -> None:
    c = btc_1m.slice(0, 6000)
    r = backtest(LONG_GENOMES[3], c, COSTS)
    eq = r.equity
    m = r.metrics
    rets = eq[1:] / eq[:-1] - 1
    assert m.total_return == pytest.approx(eq[-1] / COSTS.init_cash - 1, rel=1e-12)
    assert m.max_drawdown == pytest.approx(np.max(1 - eq / np.maximum.accumulate(eq)), rel=1e-9)
    ann = math.sqrt(c.bars_per_year)
    assert m.sharpe == pytest.approx(rets.mean() / rets.std() * ann, rel=1e-6)
    assert m.sortino == pytest.approx(rets.mean() / math.sqrt(np.mean(np.minimum(rets, 0) ** 2)) * ann, rel=1e-6)
    assert m.trades == len(r.trades)
    assert m.win_rate == pytest.approx(np.mean([t.pnl > 0 for t in r.trades]))
    wins = sum(t.pnl for t in r.trades if t.pnl > 0)
    losses = -sum(t.pnl for t in r.trades if t.pnl <= 0)
    assert m.profit_factor == pytest.approx(wins / losses)
    years = len(c) / c.bars_per_year
    assert m.cagr == pytest.approx((eq[-1] / COSTS.init_cash) ** (1 / years) - 1, rel=1e-9)
    assert m.calmar == pytest.approx(m.cagr / m.max_drawdown)
    in_pos = sum(t.exit_bar - t.entry_bar for t in r.trades)
    # closed trades held from entry close to exit close; a position still open at the end adds its tail
    tail = round(m.exposure * len(c)) - in_pos
    assert 0 <= tail <= len(c) - r.trades[-1].exit_bar


def _bars(rows: Sequence[tuple[float, float, float, float]]) -> Candles:
    n = len(rows)
    o, h, lo, c = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    return from_arrays(np.arange(n) * 60_000, o, h, lo, c, np.ones(n), timeframe="1m")


# buy on bar 1's close (close crosses above 100.5), then watch the stop logic on bar 2
ENTER = [(100, 100.2, 99.8, 100), (100, 101.2, 99.9, 101)]


def _stops(**risk: float) -> Genome:
    return g({"entry": {"rules": [rule({"price": "close"}, "crossesAbove", val(100.5))]}, **risk})


@pytest.mark.parametrize(
    ("bar2", "risk", "reason", "price"),
    [
        # low touches the stop and high the target in one bar: the stop is assumed first
        ((101, 104, 98, 102), {"stopLossPct": 0.02, "takeProfitPct": 0.02}, "stop-loss", 101 * 0.98),
        # a gap below the stop fills at the (worse) open
        ((97, 97.5, 96, 97), {"stopLossPct": 0.02}, "stop-loss", 97),
        # a gap above the target fills at the (better) open
        ((104, 105, 103.5, 104), {"takeProfitPct": 0.02}, "take-profit", 104),
        ((101, 103.5, 100.5, 103), {"takeProfitPct": 0.02}, "take-profit", 101 * 1.02),
        # trailing stop follows the open before the check, not the bar's own high
        ((102, 110, 100.9, 105), {"trailingStopPct": 0.01}, "trailing-stop", 102 * 0.99),
        # the tighter of stop-loss and trailing stop wins
        ((101, 101.5, 99, 100), {"stopLossPct": 0.005, "trailingStopPct": 0.02}, "stop-loss", 101 * 0.995),
    ],
)
def test_stops_inside_the_bar(bar2: tuple[float, float, float, float], risk: dict[str, float], reason: str,
                              price: float) -> None:
    r = backtest(_stops(**risk), _bars([*ENTER, bar2, (100, 100, 100, 100)]), Costs(fee=0, slippage=0))
    assert [(t.entry_bar, t.exit_bar, t.reason) for t in r.trades] == [(1, 2, reason)]
    assert r.trades[0].exit_price == pytest.approx(price, rel=1e-12)


def test_trailing_stop_rises_with_earlier_highs() -> None:
    rows = [*ENTER, (101, 110, 101, 109), (109, 109.5, 108, 108.5)]
    r = backtest(_stops(trailingStopPct=0.01), _bars(rows), Costs(fee=0, slippage=0))
    assert [(t.exit_bar, t.reason) for t in r.trades] == [(3, "trailing-stop")]
    assert r.trades[0].exit_price == pytest.approx(110 * 0.99)


def test_fees_slippage_and_sizing_arithmetic() -> None:
    genome = g({"entry": {"rules": [rule({"price": "close"}, "crossesAbove", val(100.5))]},
                "exit": {"rules": [rule({"price": "close"}, "gt", val(105))]}, "positionPct": 0.5})
    r = backtest(genome, _bars([*ENTER, (101, 106, 101, 106)]), Costs(fee=0.001, slippage=0.002, init_cash=1000))
    (t,) = r.trades
    buy, sell = 101 * 1.002, 106 * 0.998
    qty = 500 / 1.001 / buy
    assert t.entry_price == pytest.approx(buy) and t.exit_price == pytest.approx(sell)
    assert t.qty == pytest.approx(qty)
    assert t.pnl == pytest.approx(qty * sell * 0.999 - qty * buy * 1.001)
    assert r.equity[-1] == pytest.approx(1000 + t.pnl)


@pytest.mark.parametrize(
    ("spec", "market", "message"),
    [
        ({"entry": {"rules": [rule(ind("supertrend", period=3), "gt", val(1))]}}, "spot",
         r"genome\[0\]: entry.rules\[0\].left: unknown indicator 'supertrend'"),
        ({"entry": {"rules": [rule(ind("ema", period=0), "gt", val(1))]}}, "spot", "period=0 is outside"),
        ({"entry": {"rules": [rule(ind("macd", "signal", fast=40, slow=20), "gt", val(0))]}}, "spot",
         "fast .40. must be shorter than slow"),
        ({"entry": {"rules": [rule(val(1), "gt", val(0))]}}, "spot", "compares two constants"),
        ({"direction": "both", "entry": {"rules": [rule(ind("rsi"), "gt", val(1))]},
          "shortEntry": {"rules": [rule(ind("rsi"), "lt", val(1))]}}, "spot", "needs a perpetual market"),
    ],
)
def test_bad_genomes_name_the_problem(spec: dict[str, object], market: str, message: str) -> None:
    with pytest.raises(GenomeError, match=message):
        compile_genomes([g(spec)], market=market)  # type: ignore[arg-type]


def test_shared_indicator_work(btc_1m: Candles) -> None:
    """A 20 x 25 EMA grid needs 45 series, not 1000."""
    from kubetrade.engine.templates import ema_cross

    plan, program = compile_genomes([ema_cross(f, s) for f in range(2, 42, 2) for s in range(50, 300, 10)])
    assert len(program) == 500 and len(plan.keys) == 45
    assert plan.warmup == 289  # EMA(290) has its first value on bar 289
