"""The streaming live signal (plain Python, no numba) against the kernels, on real candles.

Every indicator value it carries forward equals the numba kernel's over the whole history,
exactly; every decision equals the kernel-stepping LiveSignal's and the backtest's, bar for bar,
for the hand-written strategies and for random genomes of the evolution's generator; and after
30 days of 1m bars (43,000) its state is still the full history's, though it holds no history.
"""

from __future__ import annotations

import math
import random
import sys
import tracemalloc

import numpy as np
import pytest

from kubetrade.candles import Candles
from kubetrade.engine import genes, indicators
from kubetrade.engine.compile import build_features, compile_genomes
from kubetrade.engine.live import LiveSignal
from kubetrade.engine.runs import Costs, backtest
from kubetrade.engine.stream import StreamSignal, feature_rows, streamable

from .strategies import LONG_GENOMES, PERP_GENOMES, g, ind, rule

PARAMS = [
    ("sma", {"period": 2}), ("sma", {"period": 50}), ("ema", {"period": 2}), ("ema", {"period": 200}),
    ("rsi", {"period": 2}), ("rsi", {"period": 14}), ("macd", {}), ("macd", {"fast": 3, "slow": 4, "signal": 2}),
    ("bbands", {"period": 20, "nbdev_up": 2.5, "nbdev_down": 1.5}), ("bbands", {"period": 2}),
    ("atr", {"period": 1}), ("atr", {"period": 14}), ("stoch", {}), ("stoch", {"fastk": 1, "slowk": 1, "slowd": 1}),
    ("stoch", {"fastk": 30, "slowk": 5, "slowd": 2}), ("obv", {}), ("vwap", {"period": 1}), ("vwap", {"period": 60}),
]


def _same(a: object, b: object) -> bool:
    return np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True)


@pytest.mark.parametrize(("name", "params"), PARAMS, ids=[f"{n}{p}" for n, p in PARAMS])
def test_every_indicator_streams_to_the_kernels_values_exactly(btc_1m: Candles, name: str, params: dict) -> None:
    c = btc_1m.slice(0, 5000)
    spec = indicators.get(name)
    genome = g({"entry": {"rules": [rule(ind(name, out, **params), "gt", {"value": 0.0}) for out in spec.outputs]}})
    plan, _ = compile_genomes([genome], market="spot")
    assert streamable(plan)
    kernel = build_features(plan, c)
    streamed = feature_rows(plan, c)
    for row, key in enumerate(plan.keys):
        assert _same(streamed[row], kernel[row]), f"{key}: first difference at bar " \
            f"{int(np.argmax(~np.isclose(streamed[row], kernel[row], equal_nan=True, rtol=0, atol=0)))}"
    assert np.isfinite(kernel).any(axis=1).all()  # each output has values here, not only warm-up NaNs


def _replay(sig: object, c: Candles, start: int = 0) -> list[tuple[object, ...]]:
    out = []
    for i in range(start, len(c)):
        s = sig.on_bar(int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i])  # type: ignore[attr-defined]
        out.append((s.bar, s.exit_reason, s.exit_price, s.opened, s.entry_price, s.position, s.exit_stop,
                    s.exit_target))
    return out


def _equal(a: list[tuple[object, ...]], b: list[tuple[object, ...]]) -> bool:
    return len(a) == len(b) and all(
        x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
        for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))


CASES = [(gn, "spot") for gn in LONG_GENOMES] + [(gn, "perpetual") for gn in PERP_GENOMES]


@pytest.mark.parametrize(("genome", "market"), CASES, ids=[f"{m}{i}" for i, (_, m) in enumerate(CASES)])
def test_decisions_equal_the_kernel_live_signal_bar_for_bar(btc_1m: Candles, genome: object, market: str) -> None:
    c = btc_1m.slice(0, 3000)
    kw = {"market": market, "fee": 0.001, "slippage": 0.0002, "capital": 10_000.0}
    stream = _replay(StreamSignal(genome, **kw), c)  # type: ignore[arg-type]
    kernel = _replay(LiveSignal(genome, **kw), c)  # type: ignore[arg-type]
    assert _equal(stream, kernel)
    assert sum(1 for s in stream if s[3]) >= 2  # it traded: the comparison covers entries and exits


def test_random_genomes_of_the_evolution_decide_alike(btc_1m: Candles) -> None:
    c = btc_1m.slice(5000, 7000)
    r = random.Random(22)
    traded = 0
    for n in range(40):
        both = n % 2 == 1
        genome = genes.to_genome(genes.repair(genes.random_spec(r, both_sides=both)))
        market = "perpetual" if both else "spot"
        kw = {"market": market, "fee": 0.0005, "slippage": 0.0001, "capital": 1000.0}
        stream = _replay(StreamSignal(genome, **kw), c)  # type: ignore[arg-type]
        assert _equal(stream, _replay(LiveSignal(genome, **kw), c)), genome.model_dump_json()  # type: ignore[arg-type]
        traded += any(s[3] for s in stream)
    assert traded >= 20


@pytest.mark.parametrize("genome", [LONG_GENOMES[0], LONG_GENOMES[3], PERP_GENOMES[2]])
def test_a_month_of_bars_holds_no_history_and_decides_as_the_full_backtest(btc_1m_full: Candles, genome) -> None:
    """The trimmed state (a few numbers per indicator) makes the full history's decisions: 43,000 bars."""
    c = btc_1m_full
    assert len(c) > 40_000
    market = "perpetual" if genome in PERP_GENOMES else "spot"
    costs = Costs(fee=0.001, slippage=0.0002, init_cash=10_000)
    expected = backtest(genome, c, costs, market=market).trades
    sig = StreamSignal(genome, market=market, fee=costs.fee, slippage=costs.slippage, capital=costs.init_cash)
    entries, exits = [], []
    for i in range(len(c)):
        s = sig.on_bar(int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i])
        if s.exit_reason:
            exits.append((i, s.exit_reason, s.exit_price))
        if s.opened:
            entries.append((i, s.opened, s.entry_price))
    assert len(expected) >= 10
    assert [(t.entry_bar, t.side, t.entry_price) for t in expected] == entries[: len(expected)]
    assert [(t.exit_bar, t.reason, t.exit_price) for t in expected] == exits
    # what it holds does not grow with the bars: over the last 23,000 bars, what stream.py allocated and
    # still holds moves by less than 32 kB (Python's free lists of tuples and floats), where holding the
    # bars would be 23,000 x 6 floats, over 3 MB
    again = StreamSignal(genome, market=market, fee=costs.fee, slippage=costs.slippage, capital=costs.init_cash)
    held_at: list[int] = []
    tracemalloc.start()
    for i in range(len(c)):
        again.on_bar(int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i])
        if i in (20_000, len(c) - 1):
            snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*kubetrade/engine/stream.py")])
            held_at.append(sum(stat.size for stat in snap.statistics("filename")))
    tracemalloc.stop()
    assert held_at[1] - held_at[0] < 32_000, held_at


def test_primed_then_live_equals_the_kernel_primed_then_live(btc_1m: Candles) -> None:
    c = btc_1m.slice(0, 4000)
    for genome in (LONG_GENOMES[1], LONG_GENOMES[2]):
        a = StreamSignal(genome, timeframe="1m", capital=10_000)
        b = LiveSignal(genome, timeframe="1m", capital=10_000)
        a.prime(c.slice(0, 2500))
        b.prime(c.slice(0, 2500))
        assert _equal(_replay(a, c, 2500), _replay(b, c, 2500))


def test_an_indicator_without_a_streaming_form_is_named(btc_1m: Candles) -> None:
    spec = indicators.IndicatorSpec("double_close", ("close",), (), ("value",), lambda close: (close * 2,),
                                    lambda p: 0)
    indicators.register(spec, replace=True)
    try:
        genome = g({"entry": {"rules": [rule(ind("double_close"), "gt", {"price": "close"})]}})
        plan, _ = compile_genomes([genome])
        assert not streamable(plan)
        with pytest.raises(ValueError, match="streaming form"):
            StreamSignal(genome)
    finally:
        indicators.REGISTRY.pop("double_close", None)


def test_the_runner_of_a_streamable_genome_loads_neither_numba_nor_numpy() -> None:
    """What a runner pod imports to run an EMA-cross Strategy: the memory the footprint benchmark measures."""
    import subprocess

    code = ("import sys; sys.modules.setdefault('aiohttp', None)\n"
            "import kubetrade.cli, kubetrade.runner.runner as r, kubetrade.storage.history\n"
            "from kubetrade.engine.templates import ema_cross\n"
            "sig = r.live_signal(ema_cross(5, 20), timeframe='1m')\n"
            "sig.on_bar(0, 1.0, 1.0, 1.0, 1.0, 1.0)\n"
            "heavy = {m.split('.')[0] for m in sys.modules} & {'numba', 'numpy', 'llvmlite'}\n"
            "print(type(sig).__name__, sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["StreamSignal", "[]"]


@pytest.mark.parametrize(("genome", "market"), [(LONG_GENOMES[1], "spot"), (PERP_GENOMES[2], "perpetual")])
def test_the_streamed_shadow_is_the_kernel_shadow(btc_1m: Candles, genome: object, market: str) -> None:
    c = btc_1m.slice(0, 2400)
    sides = [cls(genome, market=market, fee=0.001, slippage=0.0002, capital=1.0)  # type: ignore[arg-type]
             for cls in (StreamSignal, LiveSignal)]
    for s in sides:
        s.prime(c.slice(0, 300))
        for i in range(300, len(c)):
            s.on_bar(int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i])
            if i == 899:
                s.arm_shadow(5_000.0)
    a, b = (s.shadow for s in sides)
    assert a is not None and b is not None and len(a.trades) >= 3
    assert (a.since, a.bars, a.trades, a.equity) == (b.since, b.bars, b.trades, b.equity)
