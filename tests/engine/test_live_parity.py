"""The live signal function, fed one closed candle at a time, decides exactly what the backtest did."""

from __future__ import annotations

import math

import pytest

from kubetrade.candles import Candles
from kubetrade.engine.live import LiveSignal
from kubetrade.engine.runs import Costs, backtest

from .strategies import LONG_GENOMES, PERP_GENOMES


@pytest.mark.parametrize(("genome", "market"), [(LONG_GENOMES[1], "spot"), (LONG_GENOMES[3], "spot"),
                                                (PERP_GENOMES[0], "perpetual"), (PERP_GENOMES[2], "perpetual")])
def test_live_matches_backtest_bar_by_bar(btc_1m: Candles, genome: object, market: str) -> None:
    c = btc_1m.slice(0, 1200)
    costs = Costs(fee=0.001, slippage=0.0002)
    bt = backtest(genome, c, costs, market=market)  # type: ignore[arg-type]
    live = LiveSignal(genome, market=market, fee=costs.fee, slippage=costs.slippage,  # type: ignore[arg-type]
                      capital=costs.init_cash)
    entries, exits = [], []
    for i in range(len(c)):
        s = live.on_bar(int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i])
        if s.exit_reason:
            exits.append((i, s.exit_reason, s.exit_price))
        if s.opened:
            entries.append((i, s.opened, s.entry_price))
        assert not (math.isnan(s.exit_price) and s.exit_reason)
    assert len(bt.trades) >= 3
    assert [(t.entry_bar, t.side, t.entry_price) for t in bt.trades] == entries[: len(bt.trades)]
    assert [(t.exit_bar, t.reason, t.exit_price) for t in bt.trades] == exits
    assert live.position == (0 if len(entries) == len(exits) else entries[-1][1])


def test_primed_history_is_not_traded_and_decisions_continue(btc_1m: Candles) -> None:
    genome = LONG_GENOMES[0]
    c = btc_1m.slice(0, 3000)
    live = LiveSignal(genome, timeframe="1m", capital=10_000)
    live.prime(c.slice(0, 2000))
    assert live.position == 0
    opened = [live.on_bar(int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i]).opened
              for i in range(2000, 3000)]
    # from a flat start at bar 2000, the backtest over the same candles opens on the same bars
    bt = backtest(genome, c, Costs(fee=0.0), start=2000)
    live_entries = [2000 + i for i, o in enumerate(opened) if o]
    # the backtest lists closed trades; a position still open at the last bar is the live one's last entry
    still_open = 1 if live.position != 0 else 0
    assert live_entries[: len(live_entries) - still_open] == [t.entry_bar for t in bt.trades]
    assert len(live_entries) >= 3


@pytest.mark.parametrize(
    ("bar", "message"),
    [
        ((240_000, 10.0, 11.0, 9.0, 10.0, 1.0), r"2 bar\(s\) missing before it \(gap\)"),
        ((60_000, 10.0, 11.0, 9.0, 10.0, 1.0), "duplicate or out of order"),
        ((180_000, 10.0, 9.5, 9.0, 10.0, 1.0), "do not bracket"),
        ((180_000, float("nan"), 11.0, 9.0, 10.0, 1.0), "positive and finite"),
    ],
)
def test_live_refuses_bad_bars(bar: tuple[float, ...], message: str) -> None:
    from kubetrade.candles import CandleError

    live = LiveSignal(LONG_GENOMES[0], timeframe="1m")
    live.on_bar(0, 10.0, 11.0, 9.0, 10.0, 1.0)
    live.on_bar(60_000, 10.0, 11.0, 9.0, 10.0, 1.0)
    t, *rest = bar
    with pytest.raises(CandleError, match=message):
        live.on_bar(int(t), *rest)


def test_warmup_compiles_everything() -> None:
    from kubetrade.engine import warmup

    warmup()


@pytest.mark.parametrize(("genome", "market"), [(LONG_GENOMES[0], "spot"), (LONG_GENOMES[1], "spot"),
                                                (LONG_GENOMES[2], "spot"), (PERP_GENOMES[1], "perpetual")])
def test_the_trimmed_window_decides_as_the_full_history(btc_1m_full: Candles, genome: object, market: str) -> None:
    """30 days of real 1m bars through a window of 1,000 to 2,000 bars: the full backtest's trades, bar for bar."""
    c = btc_1m_full
    costs = Costs(fee=0.001, slippage=0.0002)
    expected = backtest(genome, c, costs, market=market).trades  # type: ignore[arg-type]
    live = LiveSignal(genome, market=market, fee=costs.fee, slippage=costs.slippage,  # type: ignore[arg-type]
                      capital=costs.init_cash)
    assert live.window is not None and live.window <= 2000
    entries, exits = [], []
    longest = 0
    for i in range(len(c)):
        s = live.on_bar(int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i])
        longest = max(longest, live.held)
        assert s.bar == i
        if s.exit_reason:
            exits.append((i, s.exit_reason, s.exit_price))
        if s.opened:
            entries.append((i, s.opened, s.entry_price))
    assert live.offset > 38_000 and longest < 2 * live.window  # it did trim, over and over
    assert len(expected) >= 10
    assert [(t.entry_bar, t.side, t.entry_price) for t in expected] == entries[: len(expected)]
    assert [(t.exit_bar, t.reason, t.exit_price) for t in expected] == exits


@pytest.mark.parametrize(("genome", "market"), [(LONG_GENOMES[1], "spot"), (PERP_GENOMES[2], "perpetual")])
def test_the_shadow_is_a_backtest_of_the_bars_after_it_is_armed(btc_1m: Candles, genome: object, market: str) -> None:
    """What the runner reports as the backtest of its paper period is the backtester's own result."""
    c = btc_1m.slice(0, 2400)
    costs = Costs(fee=0.001, slippage=0.0002, init_cash=5_000)
    live = LiveSignal(genome, market=market, fee=costs.fee, slippage=costs.slippage, capital=1.0)  # type: ignore[arg-type]
    live.prime(c.slice(0, 300))
    armed_at = 900
    for i in range(300, len(c)):
        live.on_bar(int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i])
        if i == armed_at - 1:
            live.arm_shadow(costs.init_cash)
    sh = live.shadow
    assert sh is not None and sh.since == int(c.time[armed_at]) and sh.bars == len(c) - armed_at
    bt = backtest(genome, c, costs, market=market, start=armed_at)  # type: ignore[arg-type]
    assert len(bt.trades) >= 3
    assert sh.trades == [(int(c.time[t.entry_bar]), int(c.time[t.exit_bar]), t.side) for t in bt.trades]
    assert sh.equity == pytest.approx(bt.equity[-1], rel=1e-12)
