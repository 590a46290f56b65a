"""CPU time of one live bar after 10^3, 10^4 and 10^5 bars of history: flat, or growing with the run.

Each side is fed the 90-day BTC/USDT 1m file: primed with ``H`` bars of history, then timed
(``time.process_time``) over the next ``BARS`` bars, one ``on_bar`` call each, for H = 1,000,
10,000 and 100,000.  The genome is a typical evolved one with memory and windows (EMA cross,
RSI, Bollinger Bands, ATR stop):

- ``stream``: :class:`kubetrade.engine.stream.StreamSignal`, what the runner runs (plain Python,
  state carried forward, nothing held per bar);
- ``window``: the kernel's :class:`kubetrade.engine.live.LiveSignal` with its bounded window,
  what the runner runs for a genome that cannot stream;
- ``baseline``: that same LiveSignal holding every bar (``window=None``), the runner before
  this change: each bar recomputes the features over the whole history.

Reported: microseconds per bar at each history length, and for each side the ratio of the
cost after 10^5 bars to the cost after 10^3 (1.0 is flat), plus each side's cost after 10^5
bars against the baseline's.  All three run in this process, in turn, on the same bars.
"""

from __future__ import annotations

import os
import time
from typing import Any

HISTORIES = (1_000, 10_000, 100_000)
BARS = int(os.environ.get("BENCH_BAR_COST_BARS", "300"))
BASELINE_BARS = int(os.environ.get("BENCH_BAR_COST_BASELINE_BARS", "60"))
"""The unbounded baseline at 10^5 bars costs milliseconds a bar: fewer bars keep the run short."""


def _genome() -> Any:
    from kubetrade.resources.genome import Genome

    def ind(name: str, output: str | None = None, **params: float) -> dict[str, Any]:
        return {"indicator": name, "params": params} | ({"output": output} if output else {})

    return Genome.model_validate({
        "entry": {"combine": "all", "rules": [
            {"left": ind("ema", period=12), "op": "crossesAbove", "right": ind("ema", period=48)},
            {"left": ind("rsi", period=14), "op": "lt", "right": {"value": 70}}]},
        "exit": {"combine": "any", "rules": [
            {"left": {"price": "close"}, "op": "gt", "right": ind("bbands", "upper", period=20)},
            {"left": ind("ema", period=12), "op": "crossesBelow", "right": ind("ema", period=48)}]},
        "stopLossPct": 0.01, "trailingStopPct": 0.006})


def _per_bar_us(make: Any, candles: Any, history: int, bars: int) -> float:
    sig = make()
    sig.prime(candles.slice(0, history))
    t, o, h, lo, c, v = (candles.time.tolist(), candles.open.tolist(), candles.high.tolist(), candles.low.tolist(),
                         candles.close.tolist(), candles.volume.tolist())
    for i in range(history, history + 5):  # the first calls after priming (a window trims here)
        sig.on_bar(t[i], o[i], h[i], lo[i], c[i], v[i])
    start = history + 5
    t0 = time.process_time()
    for i in range(start, start + bars):
        sig.on_bar(t[i], o[i], h[i], lo[i], c[i], v[i])
    return (time.process_time() - t0) / bars * 1e6


def run() -> dict[str, Any]:
    from kubetrade.candles import load_csv, shared_files
    from kubetrade.engine import warmup
    from kubetrade.engine.live import LiveSignal
    from kubetrade.engine.stream import StreamSignal

    candles = load_csv(shared_files("binance-spot", "BTC_USDT-1m.csv.gz", exchange="binance", pairs="BTC/USDT",
                                    timeframe="1m", days=90)[0])
    assert len(candles) > max(HISTORIES) + BARS + 10, len(candles)
    genome = _genome()
    warmup()  # the kernels compiled before anything is timed
    kw: dict[str, Any] = {"timeframe": "1m", "fee": 0.001, "slippage": 0.0002, "capital": 10_000.0}
    sides = {
        "stream": (lambda: StreamSignal(genome, **kw), BARS),
        "window": (lambda: LiveSignal(genome, **kw), BARS),
        "baseline": (lambda: LiveSignal(genome, window=None, **kw), BASELINE_BARS),
    }
    out: dict[str, Any] = {"bars_timed": BARS, "baseline_bars_timed": BASELINE_BARS,
                           "window_bars": LiveSignal(genome, **kw).window}
    cost: dict[str, dict[int, float]] = {}
    for name, (make, bars) in sides.items():
        cost[name] = {}
        for history in HISTORIES:
            best = min(_per_bar_us(make, candles, history, bars) for _ in range(2))  # the quieter of two runs
            cost[name][history] = best
            out[f"{name}_us_per_bar_after_{history}"] = round(best, 1)
    for name in sides:
        out[f"{name}_growth_1e5_over_1e3"] = round(cost[name][100_000] / cost[name][1_000], 2)
    for name in ("stream", "window"):
        out[f"ratio_{name}_vs_baseline_at_1e5"] = round(cost["baseline"][100_000] / cost[name][100_000], 1)
    out["load_average"] = round(os.getloadavg()[0], 1)
    out["target"] = "flat within noise: growth 1e5/1e3 near 1.0 for what the runner runs"
    out["target_met"] = out["stream_growth_1e5_over_1e3"] < 1.5 and out["window_growth_1e5_over_1e3"] < 1.5
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
