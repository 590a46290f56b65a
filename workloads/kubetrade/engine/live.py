"""The live signal function: one genome, fed closed candles one at a time.

It compiles the genome with the same compiler as the backtester, recomputes the features
with the same :func:`~kubetrade.engine.compile.build_features` over the candles it holds,
and advances the same :func:`~kubetrade.engine.backtest.simulate` by exactly the newest
bar, carrying the position state between calls.  Its decisions are therefore the
backtest's over the same candles, bar for bar (``tests/engine/test_live_parity.py``).

Indicators with memory (EMA, RSI, ATR, ...) depend on where their history starts, so
parity holds for the same first candle; a runner primes it with ``Strategy.spec.warmupBars``
of history, long enough for those values to converge.

A :class:`Shadow` (``arm_shadow``) is a backtest of the bars that follow, run beside the
live decisions on the very same features: it starts flat with the capital given and its
state is never touched by what the exchange did (fills, risk cuts, a restart's adopted
position), so the runner can report what the backtester would have made of its paper
period and the review can compare the two (``status.paperCheck``).

It holds a bounded window of bars, not the whole history: ``window`` bars (by default twenty
times the genome's longest look-back, at least 1,000), trimmed to that once it reaches twice
as many, so a bar costs the same after a month as after an hour.  An indicator with finite
memory (SMA, Bollinger Bands, stochastics, VWAP, a model over a window) has the same values
over the window as over the full history; one with infinite memory (EMA, RSI, ATR, MACD)
restarts from the window's first bar, where the weight left of the bars before is about e^-20
(Wilder's smoothing (1 - 1 / n) ** (20 n), an EMA's less), so the decisions are the full history's
(``tests/engine/test_live_parity.py`` on real candles).  Bar numbers (``Signal.bar``, the
state's entry bar) stay counted from the first bar fed.

The runner uses :class:`kubetrade.engine.stream.StreamSignal` instead whenever every
operand of the genome has a streaming form (all of the built-in indicators and prices): the
same decisions without numba in the pod; this class stays for the rest (the ONNX
``prediction``, alternative data) and as the kernel's reference.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kubetrade.candles import CandleError, Candles, from_arrays, timeframe_ms
from kubetrade.engine import backtest as bt
from kubetrade.engine import codes
from kubetrade.engine.altdata import AltData
from kubetrade.engine.codes import Shadow, Signal
from kubetrade.engine.compile import Market, build_features, compile_genomes
from kubetrade.resources.genome import Genome
from kubetrade.timeframes import Bars

MIN_WINDOW = 1000
WINDOW_LOOKBACKS = 20


class LiveSignal:
    """Decisions of one genome on a growing series of closed candles."""

    def __init__(self, genome: Genome, *, market: Market = "spot", timeframe: str = "", fee: float = 0.0,
                 slippage: float = 0.0, capital: float = 1.0, alt: AltData | None = None,
                 window: int | None = -1) -> None:
        self.plan, self.program = compile_genomes([genome], market=market)
        self.window = max(MIN_WINDOW, WINDOW_LOOKBACKS * (self.plan.warmup + 1)) if window == -1 else window
        """Bars kept (None: all of them, the unbounded history)."""
        self.offset = 0
        """Bars trimmed off the front so far: bar ``i`` of the window is bar ``offset + i`` of the series."""
        self.alt = alt
        """The alternative-data series the genome uses, as received so far (the runner keeps it current)."""
        self.timeframe = timeframe
        if not timeframe and any(k[0] == "alt" for k in self.plan.keys):
            raise ValueError("a genome with alternative-data operands needs the timeframe: a value counts from the "
                             "close of the bar it was known by")
        self.fee, self.slippage = fee, slippage
        self.bar_ms = timeframe_ms(timeframe) if timeframe else 0
        self.state = bt.new_state(capital)
        self._cols: list[list[float]] = [[] for _ in range(6)]
        self._acc = np.zeros(bt.ACC_SIZE)
        self._no_eq = np.empty(0)
        self._no_trades = np.empty((0, bt.TRADE_SIZE))
        self._no_segs = np.empty(0, dtype=np.int64)
        self._no_seg_out = np.empty((0, bt.SEG_SIZE))
        self._shadow_trade = np.empty((1, bt.TRADE_SIZE))
        self.shadow: Shadow | None = None
        self._simulate: Any = bt.simulate  # a numba dispatcher: its signature is the kernel's

    @property
    def position(self) -> int:
        """+1 long, -1 short, 0 flat, as the strategy sees it after the last bar."""
        return int(self.state[codes.S_SIDE])

    def prime(self, history: Candles | Bars) -> None:
        """Load history without trading it (a fresh runner starts flat, whatever the past bars said)."""
        if self._cols[0]:
            raise RuntimeError("prime() must come before the first on_bar()")
        for col, name in zip(self._cols, ("time", "open", "high", "low", "close", "volume"), strict=True):
            col.extend(float(v) for v in getattr(history, name))
        if not self.bar_ms and len(history) > 1:
            self.bar_ms = history.bar_ms

    @property
    def held(self) -> int:
        """Bars in the window now."""
        return len(self._cols[0])

    def _trim(self, drop: int) -> None:
        """Forget the oldest ``drop`` bars; the entry bars in the states move with the window."""
        for col in self._cols:
            del col[:drop]
        self.offset += drop
        self.state[codes.S_ENTRY_BAR] -= drop
        if self.shadow is not None:
            self.shadow.state[codes.S_ENTRY_BAR] -= drop

    def arm_shadow(self, capital: float) -> Shadow:
        """Start a backtest of the bars from the next one on, flat, with ``capital``."""
        self.shadow = Shadow(bt.new_state(capital), equity=capital)
        return self.shadow

    def _check(self, time: int, o: float, h: float, lo: float, c: float, v: float) -> None:
        when = f"bar at {np.datetime64(int(time), 'ms')}Z"
        if not all(math.isfinite(x) for x in (o, h, lo, c, v)) or min(o, h, lo, c) <= 0 or v < 0:
            raise CandleError(f"{when}: prices must be positive and finite, volume non-negative: "
                              f"{o}, {h}, {lo}, {c}, {v}")
        if lo > min(o, c) or h < max(o, c):
            raise CandleError(f"{when}: low {lo} / high {h} do not bracket open {o} / close {c}")
        if self._cols[0]:
            step = time - int(self._cols[0][-1])
            if step <= 0:
                raise CandleError(f"{when}: not after the previous bar (duplicate or out of order)")
            if self.bar_ms and step != self.bar_ms:
                raise CandleError(f"{when}: {step // self.bar_ms - 1} bar(s) missing before it (gap)")
            self.bar_ms = self.bar_ms or step

    def on_bar(self, time: int, open: float, high: float, low: float, close: float, volume: float) -> Signal:
        """Feed one closed candle; get what the strategy does at its close."""
        self._check(time, open, high, low, close, volume)
        for col, v in zip(self._cols, (time, open, high, low, close, volume), strict=True):
            col.append(v)
        if self.window is not None and len(self._cols[0]) >= 2 * self.window:
            self._trim(len(self._cols[0]) - self.window)
        candles = from_arrays(*self._cols, timeframe=self.timeframe, check=False)
        F = build_features(self.plan, candles, alt=self.alt)
        i = len(candles) - 1
        self._simulate(F, candles.open, candles.high, candles.low, candles.close, *self.program.take(0),
                       self.fee, self.slippage, self.state, i, i + 1, self._acc, self._no_eq, self._no_trades,
                       self._no_segs, self._no_seg_out)
        sh = self.shadow
        if sh is not None:
            n = self._simulate(F, candles.open, candles.high, candles.low, candles.close, *self.program.take(0),
                               self.fee, self.slippage, sh.state, i, i + 1, self._acc, self._no_eq,
                               self._shadow_trade, self._no_segs, self._no_seg_out)
            sh.step(int(time), close, int(self._shadow_trade[0][bt.T_SIDE]) if n else 0)
        return codes.signal_of(self.state, self.offset + i)
