"""500 long-only EMA crossovers over 90 days of BTC/USDT 1m: the engine against vectorbt, same run.

Grid: fast 2, 4, ..., 40 x slow 50, 60, ..., 290; 0.1 % fee per side; fills at the signal
bar's close; 100 initial cash.  vectorbt gets the same EMAs (TA-Lib through its indicator
factory), its own crossover detection and ``Portfolio.from_signals`` over the whole grid.
Each side runs in its own process (peak memory = that process's max RSS); each side's
timed part starts after a small warm-up call, so JIT compilation is not counted for either.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
FAST = list(range(2, 41, 2))
SLOW = list(range(50, 300, 10))
FEE = 0.001
CASH = 100.0


def _data_file() -> Path:
    """The 90-day BTC/USDT 1m file, or MissingData saying how to get it."""
    from kubetrade.candles import shared_files

    return shared_files("binance-spot", "BTC_USDT-1m.csv.gz", exchange="binance", pairs="BTC/USDT",
                        timeframe="1m", days=90)[0]


def _candles() -> Any:
    from kubetrade.candles import load_csv

    return load_csv(_data_file())


def engine_side(out: Path) -> dict[str, float]:
    from kubetrade.engine.compile import build_features, compile_genomes
    from kubetrade.engine.runs import Costs, run_program
    from kubetrade.engine.templates import ema_cross

    c = _candles()
    costs = Costs(fee=FEE, slippage=0.0, init_cash=CASH)
    warm = c.slice(0, 2000)
    plan, prog = compile_genomes([ema_cross(2, 50)])
    run_program(plan, prog, warm, costs)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        plan, prog = compile_genomes([ema_cross(f, s) for f in FAST for s in SLOW])
        metrics = run_program(plan, prog, c, costs, features=build_features(plan, c))
        times.append(time.perf_counter() - t0)
    np.savez(out, total_return=[m.total_return for m in metrics], trades=[m.trades for m in metrics])
    return {"seconds": min(times), "bars": len(c)}


def vectorbt_side(out: Path) -> dict[str, float]:
    import pandas as pd
    import vectorbt as vbt

    c = _candles()

    def grid(close: pd.Series) -> Any:
        ema = vbt.IndicatorFactory.from_talib("EMA")
        fast = ema.run(close, timeperiod=FAST).real.to_numpy()
        slow = ema.run(close, timeperiod=SLOW).real.to_numpy()
        f = pd.DataFrame(np.repeat(fast, len(SLOW), axis=1))
        s = pd.DataFrame(np.tile(slow, (1, len(FAST))))
        return vbt.Portfolio.from_signals(close, f.vbt.crossed_above(s), f.vbt.crossed_below(s), fees=FEE,
                                          init_cash=CASH, freq="1min")

    grid(pd.Series(c.close[:2000])).total_return()
    t0 = time.perf_counter()
    pf = grid(pd.Series(c.close))
    total = pf.total_return().to_numpy()
    trades = pf.trades.closed.count().to_numpy()
    seconds = time.perf_counter() - t0
    np.savez(out, total_return=total, trades=trades)
    return {"seconds": seconds, "bars": len(c)}


def run() -> dict[str, Any]:
    from _child import run_child

    _data_file()  # before any child starts: a missing file is one clear message, not two tracebacks
    with tempfile.TemporaryDirectory() as tmp:
        ours_file, theirs_file = Path(tmp) / "engine.npz", Path(tmp) / "vectorbt.npz"
        ours, ours_mb = run_child(Path(__file__), "engine", str(ours_file))
        theirs, theirs_mb = run_child(Path(__file__), "vectorbt", str(theirs_file),
                                      env_drop=("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"))
        a, b = np.load(ours_file), np.load(theirs_file)
        max_diff = float(np.max(np.abs(a["total_return"] - b["total_return"])))
        same_trades = bool(np.array_equal(a["trades"], b["trades"]))
    n = len(FAST) * len(SLOW)
    work = n * ours["bars"]
    return {
        "strategies": n,
        "bars": ours["bars"],
        "engine_seconds": round(ours["seconds"], 3),
        "vectorbt_seconds": round(theirs["seconds"], 2),
        "engine_bar_strategies_per_s": f"{work / ours['seconds']:.3g}",
        "vectorbt_bar_strategies_per_s": f"{work / theirs['seconds']:.3g}",
        "throughput_ratio": round(theirs["seconds"] / ours["seconds"], 1),
        "engine_peak_mb": round(ours_mb),
        "vectorbt_peak_mb": round(theirs_mb),
        "memory_ratio": round(theirs_mb / ours_mb, 1),
        "max_abs_return_diff": f"{max_diff:.2e}",
        "identical_trade_counts": same_trades,
        "targets_met": bool(theirs["seconds"] / ours["seconds"] >= 20 and ours_mb < 1024 and max_diff <= 1e-9
                            and same_trades),
    }


if __name__ == "__main__":
    side, out_path = sys.argv[1], Path(sys.argv[2])
    result = engine_side(out_path) if side == "engine" else vectorbt_side(out_path)
    print(json.dumps(result))
