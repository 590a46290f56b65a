"""Selection edge: is what the gates pass any better out of sample than chance, cash or holding?

On the bundled candles (``workloads/kubetrade/data/sample``: Binance spot BTC/USDT and
ETH/USDT, 2024-01-01 to 2024-09-07, MIT), for each timeframe measured, the Goal's own
walk-forward (``kubetrade.engine.walkforward``: NSGA-II search on each window's in-sample bars,
candidates scored on the out-of-sample windows after) and the paper gate with its default
thresholds.  Then, over the same out-of-sample windows, after the same costs (0.1 % fee,
0.02 % slippage), four rows:

(a) **gated** - the candidates the gates pass, each on every window it was scored on;
(a') **chosen** - every candidate the searches chose, gates or not (what an ungated
     autopilot would send to paper): shown because (a) is often empty;
(b) **random** - genomes drawn by the same generator (``engine.genes.random_spec``), matched
     to each chosen candidate's trade count in each window (within 25 %, at least 2 trades),
     up to 20 per candidate and window: the baseline a search must beat to have found
     anything;
(c) **cash** - 0;
(d) **buy-and-hold** - both pairs in equal parts, in at each window's first close.

Per row: the mean return per window, the share of windows with a positive mean, and the
annualised Sharpe ratio of the per-window returns' mean (across windows, so not over-read).
It reports; it is not a target to tune the generator to.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from typing import Any

POPULATION = 200
GENERATIONS = 8
WINDOWS = 4
OOS_FRACTION = 0.08
RANDOM_PER_CELL = 20
SEED = 2025


def side(timeframe: str) -> dict[str, Any]:
    import numpy as np

    from kubetrade.candles import load_csv
    from kubetrade.data import SAMPLE_DIR
    from kubetrade.engine import genes
    from kubetrade.engine.evolve import EvolveConfig, Features
    from kubetrade.engine.runs import Costs, backtest
    from kubetrade.engine.templates import ema_cross
    from kubetrade.engine.walkforward import WalkForwardConfig, _Scorer, align, walk_forward
    from kubetrade.lifecycle.gates import judged
    from kubetrade.resources.goal import SelectionGates

    data = [load_csv(SAMPLE_DIR / f"{s.replace('/', '_')}-{timeframe}.csv.gz", symbol=s, timeframe=timeframe)
            for s in ("BTC/USDT", "ETH/USDT")]
    backtest(ema_cross(), data[0].slice(0, 2000), Costs())  # kernels loaded before the clock starts
    costs = Costs(fee=0.001, slippage=0.0002)
    cfg = EvolveConfig(population=POPULATION, generations=GENERATIONS, seed=SEED, min_trades=20, costs=costs)
    wf = WalkForwardConfig(windows=WINDOWS, oos_fraction=OOS_FRACTION, blocks=16)
    t0 = time.perf_counter()
    result = walk_forward(data, cfg, wf)
    search_s = time.perf_counter() - t0
    gates = SelectionGates()
    evidence = {k: judged(e, gates) for k, e in result.evidence.items()}
    passed = [k for k, e in evidence.items() if e.passed]

    def row(per_window: dict[int, list[float]]) -> dict[str, Any]:
        means = [float(np.mean(v)) for _, v in sorted(per_window.items()) if v]
        if not means:
            return {"strategies": 0}
        sd = float(np.std(means, ddof=1)) if len(means) > 1 else 0.0
        per_year = data[0].bars_per_year / (result.windows[0].window.oos_end - result.windows[0].window.oos_start)
        return {"windows": len(means), "mean_window_return": round(float(np.mean(means)), 5),
                "positive_windows": f"{sum(m > 0 for m in means)}/{len(means)}",
                "sharpe_of_window_means": round(float(np.mean(means)) / sd * math.sqrt(per_year), 2) if sd else None}

    def returns_of(keys: list[str]) -> dict[int, list[float]]:
        out: dict[int, list[float]] = {}
        for k in keys:
            for w, sc in result.candidates[k].scores.items():
                out.setdefault(w, []).append(float(np.mean([m.total_return for m in sc.values()])))
        return out

    # (b) random genomes of the same generator, matched on each chosen candidate's trades per window
    rng = random.Random(SEED + 7)
    offsets = align(data)[2]
    scorer = _Scorer(data, Features(data), cfg)
    random_returns: dict[int, list[float]] = {}
    drawn = 0
    t1 = time.perf_counter()
    for wr in result.windows:
        w = wr.window
        bounds = [(w.oos_start + off, w.oos_end + off) for off in offsets]
        targets = [sum(m.trades for m in c.scores[w.index].values()) for c in result.candidates.values()
                   if w.index in c.scores]
        pool: list[tuple[int, float]] = []
        for _ in range(15):
            batch = [genes.to_genome(genes.random_spec(rng)) for _ in range(200)]
            drawn += len(batch)
            for sc in scorer.run(batch, bounds):
                pool.append((sum(m.trades for m in sc.values()), float(np.mean([m.total_return
                                                                                for m in sc.values()]))))
            if all(sum(1 for n, _ in pool if abs(n - t) <= max(2, 0.25 * t)) >= RANDOM_PER_CELL for t in targets):
                break
        for t in targets:
            matched = [r for n, r in pool if abs(n - t) <= max(2, 0.25 * t)][:RANDOM_PER_CELL]
            random_returns.setdefault(w.index, []).extend(matched)
    random_s = time.perf_counter() - t1

    hold = {wr.window.index: [wr.benchmark_return] for wr in result.windows}
    cash = {wr.window.index: [0.0] for wr in result.windows}
    best = max(evidence.values(), key=lambda e: e.deflated_sharpe) if evidence else None
    return {
        "timeframe": timeframe,
        "bars_per_pair": len(data[0]),
        "oos_windows": [f"{_day(wr.oos_from)}..{_day(wr.oos_to)}" for wr in result.windows],
        "trials": result.trials,
        "candidates": len(evidence),
        "passed": len(passed),
        "best_dsr": round(best.deflated_sharpe, 3) if best else None,
        "best_dsr_oos_return": round(best.oos_return_pct, 4) if best else None,
        "pbo_per_window": [round(p, 2) for p in result.pbos],
        "gated": row(returns_of(passed)),
        "chosen": row(returns_of(list(result.candidates))),
        "random_matched": row(random_returns),
        "random_drawn": drawn,
        "cash": row(cash),
        "buy_and_hold": row(hold),
        "search_seconds": round(search_s, 1),
        "random_seconds": round(random_s, 1),
    }


def _day(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def run() -> dict[str, Any]:
    from pathlib import Path

    from _child import run_child

    out: dict[str, Any] = {"population": POPULATION, "generations": GENERATIONS, "windows": WINDOWS,
                           "oos_fraction": OOS_FRACTION}
    for tf in ("1h", "5m"):
        res, mb = run_child(Path(__file__), tf)
        for k, v in res.items():
            if k != "timeframe":
                out[f"{tf}_{k}"] = v
        out[f"{tf}_peak_mb"] = round(mb)
    return out


if __name__ == "__main__":
    print(json.dumps(side(sys.argv[1])))
