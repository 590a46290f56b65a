"""The live signal in plain Python: each indicator carried forward one bar at a time, no numba.

:class:`kubetrade.engine.live.LiveSignal` recomputes every feature over the history it holds
and steps the numba kernel, so a runner pod carried numba and LLVM (about 90 MB of its
150 MB) and each bar cost more than the one before.  :class:`StreamSignal` keeps, per
indicator, the running state its kernel in :mod:`kubetrade.engine.kernels` keeps in its loop
(a running sum, the previous EMA, Wilder's averages, the last ``period`` values), updated with
the same floating-point operations in the same order, so after any number of bars each value
is the kernel's over the whole history, bit for bit, in memory bounded by the longest period
and at a cost per bar that does not grow.  The decision of a bar is
:func:`kubetrade.engine.backtest.simulate`'s loop body for one bar, written out again here in
Python (stops through the shared :mod:`kubetrade.engine.stoprule`).

Being a second copy, it is held to the kernel by tests, not by construction:
``tests/engine/test_stream_parity.py`` compares every indicator value and every decision with
the kernel's on real candles, for the strategies of the tests and for random genomes of the
evolution's generator, and ``tests/engine/test_live_parity.py`` runs both live signals.  A
change to the kernel's bar logic must be made here too, and those tests say so if it is not.

An indicator without a streaming form here (one registered at run time, e.g. the ONNX
``prediction``) cannot run this way: :func:`streamable` says so and the runner uses the
kernel's :class:`~kubetrade.engine.live.LiveSignal` with a bounded window instead.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kubetrade.engine import codes as bt
from kubetrade.engine import indicators, stoprule
from kubetrade.engine.codes import Shadow, Signal, signal_of
from kubetrade.engine.compile import FeaturePlan, Market, SeriesKey, compile_tables
from kubetrade.resources.genome import Genome
from kubetrade.timeframes import Bars, CandleError, timeframe_ms

if TYPE_CHECKING:
    from kubetrade.candles import Candles

NAN = math.nan
_ZERO = 1e-8  # kernels._ZERO: TA-Lib's TA_IS_ZERO


class _Sma:
    """kernels.sma, one value at a time; NaN inputs before the first number are skipped as the kernel does."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.window: deque[float] = deque()
        self.total = 0.0

    def __call__(self, x: float) -> float:
        if not self.window and math.isnan(x) and self.total == 0.0:
            return NAN
        self.window.append(x)
        self.total += x
        if len(self.window) < self.period:
            return NAN
        out = self.total / self.period
        self.total -= self.window.popleft()
        return out


class _Ema:
    """kernels.ema: seeded with the mean of the first ``period`` values, then ``(x - prev) * k + prev``."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.k = 2.0 / (period + 1)
        self.seed: list[float] = []
        self.prev = NAN

    def __call__(self, x: float) -> float:
        if not math.isnan(self.prev):
            self.prev = (x - self.prev) * self.k + self.prev
            return self.prev
        if not self.seed and math.isnan(x):
            return NAN
        self.seed.append(x)
        if len(self.seed) < self.period:
            return NAN
        total = 0.0
        for v in self.seed:
            total += v
        self.prev = total / self.period
        self.seed = []
        return self.prev


class _Rsi:
    def __init__(self, period: int) -> None:
        self.period = period
        self.n = 0
        self.last = NAN
        self.gain = 0.0
        self.loss = 0.0

    def __call__(self, x: float) -> float:
        n, p = self.n, self.period
        self.n += 1
        last, self.last = self.last, x
        if n == 0:
            return NAN
        d = x - last
        if n <= p:
            if d < 0:
                self.loss -= d
            else:
                self.gain += d
            if n < p:
                return NAN
            self.gain /= p
            self.loss /= p
        else:
            self.gain *= p - 1
            self.loss *= p - 1
            if d < 0:
                self.loss -= d
            else:
                self.gain += d
            self.gain /= p
            self.loss /= p
        t = self.gain + self.loss
        return 100.0 * (self.gain / t) if abs(t) >= _ZERO else 0.0


class _Macd:
    """kernels.macd: both EMAs seeded on the slow one's seed bar, the signal EMA over their difference."""

    def __init__(self, fast: int, slow: int, signal: int) -> None:
        self.fast, self.slow = fast, slow
        self.kf, self.ks = 2.0 / (fast + 1), 2.0 / (slow + 1)
        self.recent: deque[float] = deque(maxlen=slow)
        self.f = self.s = NAN
        self.signal = _Ema(signal)

    @staticmethod
    def _mean(values: Sequence[float]) -> float:
        total = 0.0
        for v in values:
            total += v
        return total / len(values)

    def __call__(self, x: float) -> tuple[float, float, float]:
        if math.isnan(self.s):
            self.recent.append(x)
            if len(self.recent) < self.slow:
                return NAN, NAN, NAN
            self.s = self._mean(self.recent)
            self.f = self._mean(list(self.recent)[self.slow - self.fast:])
            self.recent.clear()
        else:
            self.f = (x - self.f) * self.kf + self.f
            self.s = (x - self.s) * self.ks + self.s
        raw = self.f - self.s
        sg = self.signal(raw)
        if math.isnan(sg):
            return NAN, NAN, NAN
        return raw, sg, raw - sg


class _Bbands:
    def __init__(self, period: int, up: float, down: float) -> None:
        self.period, self.up, self.down = period, up, down
        self.mid = _Sma(period)
        self.window: deque[float] = deque(maxlen=period)

    def __call__(self, x: float) -> tuple[float, float, float]:
        self.window.append(x)
        m = self.mid(x)
        if math.isnan(m):
            return NAN, NAN, NAN
        acc = 0.0
        for v in self.window:
            d = v - m
            acc += d * d
        sd = math.sqrt(acc / self.period)
        return m, m + self.up * sd, m - self.down * sd  # the registry's order: middle, upper, lower


class _Atr:
    def __init__(self, period: int) -> None:
        self.period = period
        self.n = 0
        self.pc = NAN
        self.prev = 0.0

    def __call__(self, h: float, lo: float, c: float) -> float:
        n, p = self.n, self.period
        self.n += 1
        pc, self.pc = self.pc, c
        if n == 0:
            return NAN
        tr = max(h - lo, abs(h - pc), abs(lo - pc))
        if p == 1:
            return tr
        if n < p:
            self.prev += tr
            return NAN
        if n == p:
            self.prev += tr
            self.prev /= p
            return self.prev
        self.prev = (self.prev * (p - 1) + tr) / p
        return self.prev


class _Stoch:
    def __init__(self, fastk: int, slowk: int, slowd: int) -> None:
        self.fastk = fastk
        self.highs: deque[float] = deque(maxlen=fastk)
        self.lows: deque[float] = deque(maxlen=fastk)
        self.k, self.d = _Sma(slowk), _Sma(slowd)
        self.start = fastk - 1 + slowk - 1 + slowd - 1
        self.n = 0

    def __call__(self, h: float, lo: float, c: float) -> tuple[float, float]:
        i = self.n
        self.n += 1
        self.highs.append(h)
        self.lows.append(lo)
        fast = NAN
        if i >= self.fastk - 1:
            hh, ll = h, lo
            for j in range(self.fastk - 1):
                hh = max(hh, self.highs[j])
                ll = min(ll, self.lows[j])
            diff = (hh - ll) / 100.0
            fast = (c - ll) / diff if diff != 0.0 else 0.0
        k = self.k(fast)
        d = self.d(k)
        return (k, d) if i >= self.start else (NAN, NAN)


class _Obv:
    def __init__(self) -> None:
        self.acc = NAN
        self.last = NAN

    def __call__(self, c: float, v: float) -> float:
        if math.isnan(self.acc):
            self.acc = v
        elif c > self.last:
            self.acc += v
        elif c < self.last:
            self.acc -= v
        self.last = c
        return self.acc


class _Vwap:
    def __init__(self, period: int) -> None:
        self.period = period
        self.bars: deque[tuple[float, float]] = deque()
        self.pv = self.vol = 0.0
        self.nonzero = 0

    def __call__(self, h: float, lo: float, c: float, v: float) -> float:
        tpv = (h + lo + c) / 3.0 * v
        self.pv += tpv
        self.vol += v
        self.nonzero += v > 0
        self.bars.append((tpv, v))
        if len(self.bars) > self.period:
            old_pv, old_v = self.bars.popleft()
            self.pv -= old_pv
            self.vol -= old_v
            self.nonzero -= old_v > 0
        if len(self.bars) >= self.period and self.nonzero > 0:
            return self.pv / self.vol
        return NAN


_Fn = Callable[..., Any]
STREAMS: dict[str, Callable[..., _Fn]] = {
    "sma": lambda period: _Sma(period),
    "ema": lambda period: _Ema(period),
    "rsi": lambda period: _Rsi(period),
    "macd": lambda fast, slow, signal: _Macd(fast, slow, signal),
    "bbands": lambda period, up, down: _Bbands(period, up, down),
    "atr": lambda period: _Atr(period),
    "stoch": lambda fastk, slowk, slowd: _Stoch(fastk, slowk, slowd),
    "obv": lambda: _Obv(),
    "vwap": lambda period: _Vwap(period),
}
"""Registry name -> factory of its streaming form, called with the parameters in declared order."""

_PRICES = {"open": 0, "high": 1, "low": 2, "close": 3, "volume": 4}


def genome_streams(genome: Genome, market: Market = "spot") -> bool:
    """Whether a runner streams this genome here (plain Python, no numba in its process): it compiles and
    every series has a streaming form.  False for a genome that does not compile without its model."""
    try:
        plan = compile_tables([genome], market=market)[0]
    except ValueError:  # GenomeError, IndicatorError: an indicator registered at run time (a model's)
        return False
    return streamable(plan)


def streamable(plan: FeaturePlan) -> bool:
    """Whether every series of the plan has a streaming form here (else: the kernel's LiveSignal)."""
    for kind, name, _, _ in plan.keys:
        if kind == "indicator" and name not in STREAMS:
            return False
        if kind not in ("indicator", "price"):
            return False
    return True


class _Features:
    """Every series of a plan, advanced one bar at a time: ``step`` returns the plan's row values."""

    def __init__(self, plan: FeaturePlan) -> None:
        self.keys = plan.keys
        self.updates: list[Callable[[float, float, float, float, float], Sequence[float]]] = []
        self.where: list[tuple[int, int]] = []
        """For each plan row: (which update, which of its outputs)."""
        made: dict[tuple[str, tuple[float, ...]], int] = {}
        for kind, name, values, output in plan.keys:
            if kind == "price":
                col = _PRICES[name]
                self.where.append((len(self.updates), 0))
                self.updates.append(lambda *bar, col=col: (bar[col],))
                continue
            spec = indicators.get(name)
            if (name, values) not in made:
                args = [int(v) if p.integer else v for p, v in zip(spec.params, values, strict=True)]
                made[(name, values)] = len(self.updates)
                self.updates.append(_adapter(spec.inputs, len(spec.outputs), STREAMS[name](*args)))
            self.where.append((made[(name, values)], spec.outputs.index(output)))

    def step(self, o: float, h: float, lo: float, c: float, v: float) -> list[float]:
        outs = [u(o, h, lo, c, v) for u in self.updates]
        return [outs[u][k] for u, k in self.where]


def _adapter(inputs: tuple[str, ...], n_out: int, fn: _Fn) -> Callable[[float, float, float, float, float],
                                                                        Sequence[float]]:
    cols = [_PRICES[i] for i in inputs]
    if n_out == 1:
        return lambda *bar: (fn(*(bar[c] for c in cols)),)
    return lambda *bar: fn(*(bar[c] for c in cols))


def _stop_exit(side: int, entry: float, extreme: float, o: float, h: float, lo: float, sl: float, tp: float,
               ts: float) -> tuple[int, float, float, float]:
    """backtest._stop_exit: (reason, raw fill price, stop level, target level); filled by stoprule.bar_fill."""
    extreme = stoprule.best_price(side, extreme, o)
    stop = NAN
    reason = bt.NO_EXIT
    if sl > 0:
        stop = stoprule.fixed_level(side, entry, sl)
        reason = bt.EXIT_STOP_LOSS
    if ts > 0:
        trailed = stoprule.trailed_level(side, stop if sl > 0 else (-math.inf if side > 0 else math.inf), extreme, ts)
        if trailed != stop:
            stop = trailed
            reason = bt.EXIT_TRAILING
    target = stoprule.fixed_level(-side, entry, tp) if tp > 0 else NAN
    kind, raw = stoprule.bar_fill(side, stop, target, o, h, lo)
    if kind == stoprule.STOP_FILL:
        return reason, raw, stop, target
    if kind == stoprule.TARGET_FILL:
        return bt.EXIT_TAKE_PROFIT, raw, stop, target
    return bt.NO_EXIT, NAN, stop, target


class StreamSignal:
    """Decisions of one genome on a growing series of closed candles, in constant memory and time per bar.

    The same interface as :class:`kubetrade.engine.live.LiveSignal` (``prime``, ``on_bar``,
    ``position``, ``state`` indexed by the ``S_*`` codes).
    """

    def __init__(self, genome: Genome, *, market: Market = "spot", timeframe: str = "", fee: float = 0.0,
                 slippage: float = 0.0, capital: float = 1.0) -> None:
        self.plan, (tables,) = compile_tables([genome], market=market)
        if not streamable(self.plan):
            raise ValueError("this genome uses an indicator without a streaming form; use LiveSignal")
        self.fee, self.slippage = fee, slippage
        self.bar_ms = timeframe_ms(timeframe) if timeframe else 0
        self.state = bt.new_state_list(capital)
        self.features = _Features(self.plan)
        self.rules, self.consts, self.nrules = tables.rules, tables.consts, tables.nrules
        self.combine, self.risk, self.direction = tables.combine, tables.risk, tables.direction
        self.bars = 0
        """Bars seen (primed and live): the next bar's index, as the kernel numbers bars."""
        self.last_time: int | None = None
        self._prev: list[float] = []
        self.shadow: Shadow | None = None

    @property
    def position(self) -> int:
        return int(self.state[bt.S_SIDE])

    def prime(self, history: Candles | Bars) -> None:
        """Carry the indicators through history without trading it (a fresh runner starts flat)."""
        if self.bars:
            raise RuntimeError("prime() must come before the first on_bar()")
        cols = [[float(x) for x in history.open], [float(x) for x in history.high], [float(x) for x in history.low],
                [float(x) for x in history.close], [float(x) for x in history.volume]]
        for i in range(len(history)):
            self._prev = self.features.step(cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i])
        self.bars = len(history)
        if len(history):
            self.last_time = int(history.time[-1])
        if not self.bar_ms and len(history) > 1:
            self.bar_ms = history.bar_ms

    def arm_shadow(self, capital: float) -> Shadow:
        """Start a backtest of the bars from the next one on, flat, with ``capital`` (see LiveSignal)."""
        self.shadow = Shadow(bt.new_state_list(capital), equity=capital)
        return self.shadow

    def _check(self, time: int, o: float, h: float, lo: float, c: float, v: float) -> None:
        from datetime import UTC, datetime

        def when() -> str:
            return f"bar at {datetime.fromtimestamp(int(time) / 1000, UTC).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z"

        if not all(math.isfinite(x) for x in (o, h, lo, c, v)) or min(o, h, lo, c) <= 0 or v < 0:
            raise CandleError(f"{when()}: prices must be positive and finite, volume non-negative: "
                              f"{o}, {h}, {lo}, {c}, {v}")
        if lo > min(o, c) or h < max(o, c):
            raise CandleError(f"{when()}: low {lo} / high {h} do not bracket open {o} / close {c}")
        if self.last_time is not None:
            step = time - self.last_time
            if step <= 0:
                raise CandleError(f"{when()}: not after the previous bar (duplicate or out of order)")
            if self.bar_ms and step != self.bar_ms:
                raise CandleError(f"{when()}: {step // self.bar_ms - 1} bar(s) missing before it (gap)")
            self.bar_ms = self.bar_ms or step

    def on_bar(self, time: int, open: float, high: float, low: float, close: float, volume: float) -> Signal:
        """Feed one closed candle; get what the strategy does at its close."""
        o, h, lo, c, v = float(open), float(high), float(low), float(close), float(volume)
        self._check(time, o, h, lo, c, v)
        now = self.features.step(o, h, lo, c, v)
        i = self.bars
        self._decide(self.state, now, self._prev, i, o, h, lo, c)
        sh = self.shadow
        if sh is not None:
            side = int(sh.state[bt.S_SIDE])
            self._decide(sh.state, now, self._prev, i, o, h, lo, c)
            sh.step(int(time), c, side if sh.state[bt.S_LAST_REASON] else 0)
        self._prev = now
        self.bars += 1
        self.last_time = int(time)
        return signal_of(self.state, i)

    def _rule_set(self, k: int, now: list[float], prev: list[float], i: int) -> bool:
        """kernel: whether rule set ``k`` fires on this bar (all / any of its rules)."""
        any_ = self.combine[k] != 0
        for r in range(self.nrules[k]):
            left, op, right = self.rules[k][r]
            ca, cb = self.consts[k][r]
            a = ca if left < 0 else now[left]
            b = cb if right < 0 else now[right]
            ok = False
            if not (math.isnan(a) or math.isnan(b)):
                if op == bt.GT:
                    ok = a > b
                elif op == bt.LT:
                    ok = a < b
                elif op == bt.GE:
                    ok = a >= b
                elif op == bt.LE:
                    ok = a <= b
                elif i > 0:
                    a0 = ca if left < 0 else prev[left]
                    b0 = cb if right < 0 else prev[right]
                    if not (math.isnan(a0) or math.isnan(b0)):
                        ok = (a > b and a0 <= b0) if op == bt.XABOVE else (a < b and a0 >= b0)
            if ok == any_:
                return bool(any_)
        return not any_

    def _decide(self, st: list[float], now: list[float], prev: list[float], i: int, o: float, h: float, lo: float,
                c: float) -> None:
        """backtest.simulate's loop body for bar ``i`` over the state ``st``; only the state it leaves matters live."""
        side = int(st[bt.S_SIDE])
        qty, cash, entry_px, extreme = st[bt.S_QTY], st[bt.S_CASH], st[bt.S_ENTRY_PX], st[bt.S_EXTREME]
        entry_bar, cash_before = int(st[bt.S_ENTRY_BAR]), st[bt.S_CASH_BEFORE]
        sl, tp, ts, pct = self.risk
        fee, slip, direction = self.fee, self.slippage, self.direction
        reason, exit_px, opened, new_entry_px = bt.NO_EXIT, NAN, 0, NAN
        last_stop = last_target = NAN
        stopped = False
        # 1. stops inside the bar, for a position opened on an earlier bar
        if side != 0 and (sl > 0 or tp > 0 or ts > 0) and i > entry_bar:
            reason, raw, stop_level, target_level = _stop_exit(side, entry_px, extreme, o, h, lo, sl, tp, ts)
            if reason != bt.NO_EXIT:
                stopped = True
                last_stop, last_target = stop_level, target_level
                exit_px = raw * (1.0 - slip) if side > 0 else raw * (1.0 + slip)
            elif side > 0:
                extreme = max(extreme, h)
            else:
                extreme = min(extreme, lo)
        # 2. rules on the close
        want = 0
        if not stopped:
            if side == 0:
                k0 = bt.ENTRY if direction != bt.SHORT else -1
                k1 = bt.SHORT_ENTRY if direction != bt.LONG else -1
            elif side > 0:
                k0 = bt.SHORT_ENTRY if direction == bt.BOTH else -1
                k1 = bt.EXIT
            else:
                k0 = bt.ENTRY if direction == bt.BOTH else -1
                k1 = bt.SHORT_EXIT
            hit0 = k0 >= 0 and self.nrules[k0] > 0 and self._rule_set(k0, now, prev, i)
            skip1 = k1 < 0 or (side != 0 and hit0) or self.nrules[k1] == 0
            hit1 = not skip1 and self._rule_set(k1, now, prev, i)
            if side == 0:
                if hit0 and not hit1:
                    want = 1
                elif hit1 and not hit0:
                    want = -1
            elif hit0:
                reason = bt.EXIT_REVERSE
                want = -side
            elif hit1:
                reason = bt.EXIT_SIGNAL
            if reason != bt.NO_EXIT:
                exit_px = c * (1.0 - slip) if side > 0 else c * (1.0 + slip)
        # 3. fills: close first, then open at the same close
        if reason != bt.NO_EXIT:
            if side > 0:
                cash += qty * exit_px * (1.0 - fee)
            else:
                cash -= qty * exit_px * (1.0 + fee)
            side = 0
            qty = 0.0
        if want != 0 and cash > 0:
            fill = c * (1.0 + slip) if want > 0 else c * (1.0 - slip)
            qty = (cash * pct / (1.0 + fee)) / fill
            cash_before = cash
            if want > 0:
                cash -= qty * fill * (1.0 + fee)
            else:
                cash += qty * fill * (1.0 - fee)
            side = want
            entry_px = fill
            extreme = c
            entry_bar = i
            opened = want
            new_entry_px = fill
        st[bt.S_SIDE], st[bt.S_QTY], st[bt.S_CASH] = float(side), qty, cash
        st[bt.S_ENTRY_PX], st[bt.S_EXTREME], st[bt.S_ENTRY_BAR] = entry_px, extreme, float(entry_bar)
        st[bt.S_CASH_BEFORE], st[bt.S_LAST_REASON] = cash_before, float(reason)
        st[bt.S_LAST_EXIT_PX], st[bt.S_LAST_OPENED], st[bt.S_LAST_ENTRY_PX] = exit_px, float(opened), new_entry_px
        st[bt.S_LAST_STOP], st[bt.S_LAST_TARGET] = last_stop, last_target


def feature_rows(plan: FeaturePlan, candles: Candles) -> list[list[float]]:
    """Every plan row over ``candles`` computed by streaming (for tests against build_features)."""
    f = _Features(plan)
    rows = [f.step(float(o), float(h), float(lo), float(c), float(v)) for o, h, lo, c, v in
            zip(candles.open, candles.high, candles.low, candles.close, candles.volume, strict=True)]
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in plan.keys]


__all__ = ["STREAMS", "SeriesKey", "StreamSignal", "feature_rows", "streamable"]
