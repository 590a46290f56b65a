"""Walk-forward evaluation and the paper gate on real candles: noise is refused, a planted edge passes.

The series are the real ETH/USDT hourly candles of ``tests/data`` with their returns put in a
random order (a random walk with the market's own return distribution) or, for the planted
edge, the same plus a known sine cycle (``tests/engine/series.py``).  Every figure of the
evidence is recomputed here a different way: per window by a plain backtest of that window,
pooled from the equity curves' returns, the benchmark from the closes.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kubetrade.candles import Candles, from_arrays, load_csv
from kubetrade.engine import backtest as bt
from kubetrade.engine import genes
from kubetrade.engine.compile import compile_genomes
from kubetrade.engine.evolve import EvolveConfig
from kubetrade.engine.runs import Costs, backtest, backtest_many, run_program_segments
from kubetrade.engine.stats import Moments, deflated_sharpe
from kubetrade.engine.walkforward import (
    WalkForwardConfig,
    WalkForwardError,
    WalkForwardResult,
    Window,
    check_windows,
    evaluate,
    plan_windows,
    walk_forward,
)
from kubetrade.lifecycle.gates import judged, paper_gate
from kubetrade.resources.genome import Genome
from kubetrade.resources.goal import SelectionGates
from kubetrade.resources.strategy import SelectionEvidence
from tests.engine.series import planted_cycle, random_walk
from tests.engine.strategies import LONG_GENOMES

COSTS = Costs(fee=0.001, slippage=0.0002)
CFG = EvolveConfig(population=48, generations=3, seed=3, min_trades=10, costs=COSTS)
WF = WalkForwardConfig(windows=3, oos_fraction=0.1, blocks=10)
GATES = SelectionGates()


@pytest.fixture(scope="module")
def eth_1h(market_data: Path) -> Candles:
    return load_csv(market_data / "binance-spot" / "ETH_USDT-1h.csv.gz")


def test_segment_sums_add_up_to_the_whole_run(btc_1m: Candles) -> None:
    c = btc_1m.slice(0, 6000)
    plan, program = compile_genomes(LONG_GENOMES, market="spot")
    ends = [1500, 2200, 4000, 6000]
    metrics, segs = run_program_segments(plan, program, c, COSTS, start=300, end=6000, segments=ends)
    assert segs.shape == (len(LONG_GENOMES), 4, 3)
    for g, (m, seg) in enumerate(zip(metrics, segs, strict=True)):
        assert seg[:, bt.G_N].sum() == m.returns.n
        assert seg[:, bt.G_SUM].sum() == pytest.approx(m.returns.s1, abs=1e-12)
        # each segment against the equity curve of a plain backtest: returns of the bars in it
        r = backtest(LONG_GENOMES[g], c, COSTS, start=300, end=6000)
        rets = np.diff(r.equity) / r.equity[:-1]  # the return of bar i is realised on bar i (i > start)
        bounds = [300, *ends]
        for k in range(4):
            part = rets[max(0, bounds[k] - 301):bounds[k + 1] - 301]
            assert seg[k, bt.G_N] == part.size
            assert seg[k, bt.G_SUM2] == pytest.approx(float((part**2).sum()), rel=1e-9, abs=1e-15)
    with pytest.raises(ValueError, match="must rise strictly"):
        run_program_segments(plan, program, c, COSTS, start=300, end=6000, segments=[2000, 1000, 6000])


def test_rolling_and_anchored_layouts() -> None:
    rolling = plan_windows(1000, WalkForwardConfig(windows=3, oos_bars=100))
    assert [(w.is_start, w.is_end, w.oos_start, w.oos_end) for w in rolling] == [
        (0, 700, 700, 800), (100, 800, 800, 900), (200, 900, 900, 1000)]
    anchored = plan_windows(1000, WalkForwardConfig(windows=3, oos_bars=100, mode="anchored"))
    assert [(w.is_start, w.is_end) for w in anchored] == [(0, 700), (0, 800), (0, 900)]
    # the last 600 bars only; what comes before just warms the indicators up
    tail = plan_windows(1000, WalkForwardConfig(windows=2, bars=600, oos_bars=100, step_bars=150, is_bars=300))
    assert [(w.is_start, w.is_end, w.oos_start, w.oos_end) for w in tail] == [
        (450, 750, 750, 850), (600, 900, 900, 1000)]


def test_bad_windows_and_data_are_named(eth_1h: Candles) -> None:
    with pytest.raises(WalkForwardError, match="overlap: step 50 bars < window length 100 bars"):
        plan_windows(1000, WalkForwardConfig(windows=3, oos_bars=100, step_bars=50))
    with pytest.raises(WalkForwardError, match=r"windows 1 \[150, 250\) and 2 \[200, 300\) overlap"):
        check_windows([Window(1, 0, 150, 150, 250), Window(2, 0, 200, 200, 300)], 300)
    with pytest.raises(WalkForwardError, match="need 1100, but the walk-forward covers 1000 bars"):
        plan_windows(1000, WalkForwardConfig(windows=4, oos_bars=200, is_bars=300))
    with pytest.raises(WalkForwardError, match="last 2000 bars, but the candle sets share only 1000"):
        plan_windows(1000, WalkForwardConfig(bars=2000))
    with pytest.raises(WalkForwardError, match="blocks 7 must be even"):
        WalkForwardConfig(blocks=7)
    short = eth_1h.slice(0, 600)  # window 0 searches bars [0, 400): 280 training bars, 239 of them warm-up
    with pytest.raises(WalkForwardError, match=r"window 0: the search's training part has 41 bars after the "
                                               r"239-bar warm-up, fewer than the 60 that 30 trades need"):
        walk_forward([short], replace(CFG, min_trades=30), WalkForwardConfig(windows=2, oos_bars=100))
    gap = from_arrays(np.delete(eth_1h.time, 500), *(np.delete(getattr(eth_1h, f), 500) for f in
                                                     ("open", "high", "low", "close", "volume")),
                      symbol="ETH/USDT", timeframe="1h", check=False)
    with pytest.raises(WalkForwardError, match=r"gap after 2024-01-21T19:00:00.000Z \(row 499\).*1 bar\(s\)"):
        walk_forward([gap], CFG, WF)
    with pytest.raises(WalkForwardError, match="buy-and-hold of BTC/USDT cannot be computed: no candles for "
                                               "BTC/USDT \\(have ETH/USDT\\)"):
        walk_forward([eth_1h], CFG, replace(WF, benchmark_symbol="BTC/USDT"))
    other = eth_1h.slice(0, 4000)
    other = Candles(other.time, other.open, other.high, other.low, other.close, other.volume, symbol="BTC/USDT",
                    timeframe="1h")
    with pytest.raises(WalkForwardError, match=r"benchmark buy-and-hold, window 0 .* BTC/USDT has no bar at"):
        walk_forward([eth_1h], CFG, replace(WF, benchmark_symbol="BTC/USDT"), benchmark_data=other)
    with pytest.raises(WalkForwardError, match="several timeframes: 1d, 1h"):
        walk_forward([eth_1h, load_csv(Path(__file__).parents[1] / "data/binance-spot/ETH_USDT-1d.csv.gz")], CFG, WF)


def _check_evidence_independently(e: SelectionEvidence, genome: Genome, c: Candles, result: WalkForwardResult,
                                  ) -> None:
    """Every figure of one candidate's evidence, recomputed from plain backtests and the closes."""
    pooled = Moments()
    growth = bench = 1.0
    for row in e.windows:
        w = result.windows[row.index]
        s, end = w.window.oos_start, w.window.oos_end
        r = backtest(genome, c, COSTS, start=s, end=end)
        assert row.return_pct == pytest.approx(r.metrics.total_return)
        assert row.trades == len(r.trades)
        rets = np.diff(r.equity) / r.equity[:-1]
        pooled = pooled + Moments.of(rets)
        growth *= 1 + row.return_pct
        # buy and hold: in at the first bar's close (slippage and fee paid), marked at the last close
        held = c.close[end - 1] / (c.close[s] * (1 + COSTS.slippage) * (1 + COSTS.fee)) - 1
        assert row.benchmark_return_pct == pytest.approx(held)
        bench *= 1 + held
    assert e.oos_return_pct == pytest.approx(growth - 1)
    assert e.benchmark_return_pct == pytest.approx(bench - 1)
    dsr = deflated_sharpe(pooled, e.trials, 1 / (pooled.n - 1))
    assert e.deflated_sharpe == pytest.approx(dsr.value, abs=1e-9)
    assert e.sharpe == pytest.approx(pooled.sharpe * math.sqrt(c.bars_per_year))


def test_a_search_on_noise_sends_nothing_to_paper(eth_1h: Candles) -> None:
    noise = random_walk(eth_1h, seed=1)
    result = walk_forward([noise], CFG, WF)
    assert result.trials > CFG.population * 3  # every window searched
    verdicts = {k: paper_gate(e, GATES) for k, e in result.evidence.items()}
    assert verdicts and not any(v.passed for v in verdicts.values())
    best = max(result.evidence.values(), key=lambda e: e.deflated_sharpe)
    assert best.deflated_sharpe < 0.5
    key = next(k for k, e in result.evidence.items() if e is best)
    _check_evidence_independently(best, result.candidates[key].genome, noise, result)


def test_the_best_of_many_random_genomes_on_noise_is_refused(eth_1h: Candles) -> None:
    """A manufactured edge: the best in-sample Sharpe of 400 random genomes on a random walk."""
    noise = random_walk(eth_1h, seed=2)
    wf = WalkForwardConfig(windows=3, oos_fraction=0.1)
    first_oos = plan_windows(len(noise), wf)[0].oos_start
    r = random.Random(9)
    pool = [genes.to_genome(genes.random_spec(r)) for _ in range(400)]
    insample = backtest_many(pool, noise, COSTS, start=0, end=first_oos)
    ranked = sorted((m.sharpe, i) for i, m in enumerate(insample) if m.trades >= 20)
    sharpe_in, best = ranked[-1]
    assert sharpe_in > 1.0, "the search manufactured an in-sample edge to refuse"
    res = evaluate(pool[best], [noise], CFG, wf, trials=400)
    (e,) = res.evidence.values()
    v = paper_gate(e, GATES)
    assert not v.passed
    assert any("deflated Sharpe" in f and "best of 400 tries" in f for f in v.failures), v.failures
    assert any("no probability of backtest overfitting" in f for f in v.failures)
    _check_evidence_independently(e, pool[best], noise, res)


def test_a_planted_edge_passes_every_gate(eth_1h: Candles) -> None:
    cycle = planted_cycle(eth_1h, seed=1)
    result = walk_forward([cycle], CFG, WF)
    judged_all = {k: judged(e, GATES) for k, e in result.evidence.items()}
    passed = {k: e for k, e in judged_all.items() if e.passed}
    assert passed, [e.failures for e in judged_all.values()][:3]
    for e in passed.values():
        assert len(e.windows) >= GATES.min_windows and e.trades >= GATES.min_trades
        assert e.positive_windows / len(e.windows) > 0.5
        assert e.deflated_sharpe >= 0.95 and e.pbo is not None and e.pbo <= 0.5
        assert e.oos_return_pct > e.benchmark_return_pct and e.failures == []
        assert e.trials == result.trials
    key, e = max(passed.items(), key=lambda kv: kv[1].deflated_sharpe)
    _check_evidence_independently(e, result.candidates[key].genome, cycle, result)
    # the same genome judged alone by ``evaluate`` gets the same out-of-sample figures for its windows
    alone = evaluate(result.candidates[key].genome, [cycle], CFG, WF, trials=result.trials)
    (again,) = alone.evidence.values()
    by_index = {w.index: w for w in again.windows}
    for w in e.windows:
        assert by_index[w.index].return_pct == pytest.approx(w.return_pct)


def _write(c: Candles, path: Path) -> Path:
    import gzip

    with gzip.open(path, "wt") as f:
        f.write("time,open,high,low,close,volume\n")
        for row in zip(c.time, c.open, c.high, c.low, c.close, c.volume, strict=True):
            f.write(",".join(repr(float(x)) if i else str(int(x)) for i, x in enumerate(row)) + "\n")
    return path


def test_cli_evolve_walk_forward_and_evaluate(tmp_path: Path, eth_1h: Candles) -> None:
    import subprocess
    import sys

    import yaml

    cycle = _write(planted_cycle(eth_1h, seed=1), tmp_path / "CYCLE_USDT-1h.csv.gz")
    noise = _write(random_walk(eth_1h, seed=1), tmp_path / "NOISE_USDT-1h.csv.gz")
    common = ["--windows", "3", "--oos-fraction", "0.1", "--blocks", "10"]
    cli = [sys.executable, "-m", "kubetrade.cli"]
    out = subprocess.run([*cli, "evolve", str(cycle), "--walk-forward", "--population", "48", "--generations", "3",
                          "--seed", "3", "--min-trades", "10", "--fee", "0.001", "--slippage", "0.0002",
                          "--top", "2", "--out", str(tmp_path / "m"), *common],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "walk-forward: 3 windows (rolling)" in out.stdout and "passed" in out.stdout
    manifests = sorted((tmp_path / "m").glob("*.yaml"))
    assert 1 <= len(manifests) <= 2
    doc = yaml.safe_load(manifests[0].read_text())
    assert doc["status"]["evidence"]["passed"] is True
    trials = doc["status"]["evidence"]["trials"]
    good = subprocess.run([*cli, "evaluate", str(manifests[0]), str(cycle), *common],  # trials, PBO: the manifest
                          capture_output=True, text=True, timeout=600)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "gates: 1 of 1 passed" in good.stdout
    bad = subprocess.run([*cli, "evaluate", str(manifests[0]), str(noise), "--trials", str(trials), *common],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 3 and "gates: 0 of 1 passed" in bad.stdout and "deflated Sharpe" in bad.stdout
    overlap = subprocess.run([*cli, "evaluate", str(manifests[0]), str(cycle), "--oos-bars", "500",
                              "--step-bars", "200"], capture_output=True, text=True, timeout=600)
    assert overlap.returncode == 1 and "overlap: step 200 bars < window length 500 bars" in overlap.stdout
