"""Alternative data as genome operands: joined as of each bar's close, never earlier, the same in the
backtester, the live signal function and the evolution.

Candles are real (BTC/USDT perpetual 1m); the alternative series is a test series of hourly
MVRV-like values (a seeded mean-reverting walk around 1.5) stamped at the start of each hour,
the way Glassnode stamps its hourly points.  No real on-chain history is shipped with the tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from kubetrade.candles import Candles
from kubetrade.engine import altdata
from kubetrade.engine.altdata import AltDataError, AltSeries, as_of, series
from kubetrade.engine.compile import GenomeError, alt_refs
from kubetrade.engine.evolve import EvolveConfig, evolve
from kubetrade.engine.live import LiveSignal
from kubetrade.engine.runs import Costs, backtest
from kubetrade.resources.genome import AltSeriesRef, Genome

HOUR = 3_600_000
REF = AltSeriesRef(provider="glassnode", topic="BTC", metric="mvrv")
COSTS = Costs(fee=0.0005, slippage=0.0001)
GENOME = Genome.model_validate({
    "entry": {"combine": "all", "rules": [
        {"left": {"price": "close"}, "op": "gt", "right": {"indicator": "ema", "params": {"period": 30}}},
        {"left": {"alt": REF.to_k8s()}, "op": "lt", "right": {"value": 1.495}}]},
    "exit": {"rules": [{"left": {"alt": REF.to_k8s()}, "op": "gt", "right": {"value": 1.505}}]},
    "stopLossPct": 0.005,
})


def stamps_and_values(c: Candles, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    first = int(c.time[0]) - int(c.time[0]) % HOUR - 24 * HOUR
    t = np.arange(first, int(c.time[-1]) + HOUR, HOUR)
    noise = np.random.default_rng(seed).normal(0, 0.01, t.size)
    x = np.zeros(t.size)
    for k in range(1, t.size):
        x[k] = 0.8 * x[k - 1] + noise[k]
    return t, 1.5 + x


@pytest.fixture(scope="module")
def candles(btc_1m: Candles) -> Candles:
    return btc_1m.slice(0, 6000)


@pytest.fixture(scope="module")
def mvrv(candles: Candles) -> AltSeries:
    return series(REF, *stamps_and_values(candles))


def test_each_bar_sees_the_last_value_known_at_its_close(candles: Candles, mvrv: AltSeries) -> None:
    stamps, values = stamps_and_values(candles)
    joined = as_of(mvrv, candles.time, candles.bar_ms)
    for i in range(0, len(candles), 37):
        close = int(candles.time[i]) + candles.bar_ms
        known = [v for s, v in zip(stamps, values, strict=True) if s + HOUR <= close]  # an hour's value: at its end
        assert joined[i] == (known[-1] if known else pytest.approx(np.nan, nan_ok=True))
    # a bar closing at 10:00 sees the 09:00 point (known at 10:00), not the 10:00 one
    i = next(i for i in range(len(candles)) if (int(candles.time[i]) + candles.bar_ms) % HOUR == 0)
    close = int(candles.time[i]) + candles.bar_ms
    assert joined[i] == values[list(stamps).index(close - HOUR)]


def _decisions(c: Candles, alt: AltSeries) -> tuple[np.ndarray, list[tuple[int, int, float]]]:
    r = backtest(GENOME, c, COSTS, alt={REF.key: alt})
    return r.equity, [(t.entry_bar, t.exit_bar, t.exit_price) for t in r.trades]


@pytest.mark.parametrize("cut", [1500, 3333, 5000])
def test_moving_or_changing_later_points_changes_no_earlier_decision(candles: Candles, cut: int) -> None:
    stamps, values = stamps_and_values(candles)
    base_eq, base_trades = _decisions(candles, series(REF, stamps, values))
    assert len(base_trades) >= 5, "the genome must trade on the series for this test to say anything"
    close_before = int(candles.time[cut])  # the close of bar cut-1
    later = stamps + HOUR > close_before  # points not yet known when bar cut-1 closed
    shifted = stamps + np.where(later, candles.bar_ms, 0)  # each one bar later
    changed = np.where(later, values[::-1], values)  # or different altogether
    for variant in (series(REF, shifted, values), series(REF, stamps, changed)):
        eq, trades = _decisions(candles, variant)
        assert np.array_equal(eq[:cut], base_eq[:cut])
        assert [t for t in trades if t[1] < cut] == [t for t in base_trades if t[1] < cut]
    # ... and the later decisions do change: the test can see a difference when there is one
    eq, _ = _decisions(candles, series(REF, stamps, changed))
    assert not np.array_equal(eq[cut:], base_eq[cut:])


def test_the_live_signal_decides_as_the_backtest_on_the_same_series(candles: Candles, mvrv: AltSeries) -> None:
    expected = backtest(GENOME, candles, COSTS, alt={REF.key: mvrv}).trades
    stamps, values = stamps_and_values(candles)
    store: dict[str, AltSeries] = {}
    live = LiveSignal(GENOME, timeframe="1m", fee=COSTS.fee, slippage=COSTS.slippage, capital=COSTS.init_cash,
                      alt=store)
    arrived = 0
    entries, exits = [], []
    for i in range(len(candles)):
        close = int(candles.time[i]) + candles.bar_ms
        while arrived < stamps.size and stamps[arrived] + HOUR <= close:  # points come in as they become known
            s = store.get(REF.key)
            store[REF.key] = (series(REF, [stamps[arrived]], [values[arrived]]) if s is None
                              else altdata.append(s, int(stamps[arrived]), float(values[arrived])))
            arrived += 1
        sig = live.on_bar(int(candles.time[i]), candles.open[i], candles.high[i], candles.low[i], candles.close[i],
                          candles.volume[i])
        if sig.opened:
            entries.append(i)
        if sig.exit_reason:
            exits.append((i, sig.exit_reason, sig.exit_price))
    assert len(expected) >= 5
    assert [t.entry_bar for t in expected] == entries[: len(expected)]
    assert [(t.exit_bar, t.reason, t.exit_price) for t in expected] == exits


def test_a_series_that_is_not_loaded_or_unknown_is_named(candles: Candles) -> None:
    assert alt_refs(GENOME) == [REF]
    with pytest.raises(GenomeError, match="uses alternative data glassnode/BTC/mvrv, which is not loaded"):
        backtest(GENOME, candles, COSTS)
    with pytest.raises(AltDataError, match="unknown provider"):
        series(AltSeriesRef(provider="nosuch", topic="x", metric="y"), [0], [1.0])
    with pytest.raises(AltDataError, match="is not a finite number"):
        series(REF, [0, HOUR], [1.0, float("nan")])


def test_the_evolution_draws_rules_on_the_series_from_its_past_only(candles: Candles, mvrv: AltSeries) -> None:
    cfg = EvolveConfig(population=24, generations=1, seed=5, min_trades=5, costs=COSTS)
    result = evolve([candles], cfg, alt={REF.key: mvrv})
    with_alt = [s for s in result.tried.values() if "'alt'" in str(s)]
    assert with_alt, "some tried genomes compare the series"
    split = int(len(candles) * cfg.train_fraction)
    past = mvrv.known_before(int(candles.time[split - 1]) + candles.bar_ms)
    (op,) = altdata.operands([REF], {REF.key: mvrv}, int(candles.time[split - 1]) + candles.bar_ms)
    assert min(past) <= min(op.levels) and max(op.levels) <= max(past)
    levels = {r["right"]["value"] for s in with_alt for rs in ("entry", "exit") if s.get(rs)
              for r in s[rs]["rules"] if "alt" in r["left"]}
    assert levels and levels <= set(op.levels)


def test_a_goals_evolution_uses_the_series_it_names_and_refuses_without_them(candles: Candles,
                                                                            mvrv: AltSeries) -> None:
    from kubetrade.goalevolution.goalrun import GoalRunError, run_goal_evolution
    from kubetrade.resources.goal import GoalSpec

    spec = GoalSpec.model_validate({
        "target": {"capital": {"amount": 10_000}, "returnPct": 0.05}, "riskPolicyRef": {"name": "default"},
        "evolution": {"symbols": [candles.symbol], "timeframe": "1m", "backtestDays": 3, "population": 16,
                      "generations": 1, "minTrades": 5, "alternativeData": [REF.to_k8s()],
                      "walkForward": {"windows": 2, "outOfSampleFraction": 0.15, "blocks": 8}}})
    with pytest.raises(GoalRunError, match="alternativeData: no points stored for glassnode/BTC/mvrv"):
        run_goal_evolution("g", spec, {candles.symbol: candles}, seed=1)
    run = run_goal_evolution("g", spec, {candles.symbol: candles}, seed=1, alt={REF.key: mvrv})
    assert run.walk.trials > 16 and run.ranked
    assert any(alt_refs(c.genome) == [REF] for c in run.walk.candidates.values()) or any(
        "'alt'" in str(s) for w in run.walk.windows for s in w.search.tried.values())
