"""A plain-Python backtester written straight from the execution model in :mod:`kubetrade.engine.backtest`.

It shares nothing with the kernel but the genome: operands are computed with the
references in :mod:`kubetrade_testbed.reference.indicators`, rules are read from the pydantic model,
and the bar loop is spelled out with objects.  Tests hold the kernel to it trade for trade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kubetrade.candles import Candles
from kubetrade.resources.genome import Genome, Operand, Rule, RuleSet
from kubetrade_testbed.reference import indicators as ref


@dataclass
class RefTrade:
    entry_bar: int
    exit_bar: int
    side: int
    entry_price: float
    exit_price: float
    pnl: float
    reason: str


def _series(op: Operand, c: Candles) -> list[float] | float:
    if op.value is not None:
        return op.value
    if op.price is not None:
        return [float(v) for v in c.field(op.price)]
    p = op.params
    _o, h, lo, cl, v = (list(map(float, c.field(f))) for f in ("open", "high", "low", "close", "volume"))
    name = op.indicator
    if name == "sma":
        return ref.sma(cl, int(p.get("period", 20)))
    if name == "ema":
        return ref.ema(cl, int(p.get("period", 20)))
    if name == "rsi":
        return ref.rsi(cl, int(p.get("period", 14)))
    if name == "macd":
        m = ref.macd(cl, int(p.get("fast", 12)), int(p.get("slow", 26)), int(p.get("signal", 9)))
        return m[("macd", "signal", "hist").index(op.output or "macd")]
    if name == "bbands":
        b = ref.bbands(cl, int(p.get("period", 20)), p.get("nbdev_up", 2.0), p.get("nbdev_down", 2.0))
        return b[("middle", "upper", "lower").index(op.output or "middle")]
    if name == "atr":
        return ref.atr(h, lo, cl, int(p.get("period", 14)))
    if name == "stoch":
        s = ref.stoch(h, lo, cl, int(p.get("fastk", 14)), int(p.get("slowk", 3)), int(p.get("slowd", 3)))
        return s[("k", "d").index(op.output or "k")]
    if name == "obv":
        return ref.obv(cl, v)
    if name == "vwap":
        return ref.vwap(h, lo, cl, v, int(p.get("period", 60)))
    raise ValueError(f"reference has no indicator {name}")


class _Rules:
    def __init__(self, rs: RuleSet | None, c: Candles) -> None:
        self.rs = rs
        self.sides = [(_series(r.left, c), r, _series(r.right, c)) for r in rs.rules] if rs else []

    @staticmethod
    def _at(x: list[float] | float, i: int) -> float:
        return x if isinstance(x, float) else x[i]

    def _rule(self, a: list[float] | float, rule: Rule, b: list[float] | float, i: int) -> bool:
        x, y = self._at(a, i), self._at(b, i)
        if math.isnan(x) or math.isnan(y):
            return False
        if rule.op in ("gt", "lt", "ge", "le"):
            return {"gt": x > y, "lt": x < y, "ge": x >= y, "le": x <= y}[rule.op]
        if i == 0:
            return False
        x0, y0 = self._at(a, i - 1), self._at(b, i - 1)
        if math.isnan(x0) or math.isnan(y0):
            return False
        return (x > y and x0 <= y0) if rule.op == "crossesAbove" else (x < y and x0 >= y0)

    def hit(self, i: int) -> bool:
        if not self.rs:
            return False
        results = [self._rule(a, r, b, i) for a, r, b in self.sides]
        return all(results) if self.rs.combine == "all" else any(results)


def run(g: Genome, c: Candles, fee: float, slip: float, cash: float = 10_000.0) -> tuple[list[RefTrade], list[float]]:
    """Trades and the per-bar equity of one genome over all bars of ``c``."""
    entry, exit_ = _Rules(g.entry, c), _Rules(g.exit, c)
    s_entry, s_exit = _Rules(g.short_entry, c), _Rules(g.short_exit, c)
    sl, tp, ts = g.stop_loss_pct or 0.0, g.take_profit_pct or 0.0, g.trailing_stop_pct or 0.0
    side, qty, entry_px, best, entry_bar, cash_before = 0, 0.0, 0.0, 0.0, -1, cash
    trades: list[RefTrade] = []
    equity: list[float] = []

    def close(i: int, raw: float, reason: str) -> None:
        nonlocal cash, side, qty
        px = raw * (1 - slip) if side > 0 else raw * (1 + slip)
        cash += qty * px * (1 - fee) if side > 0 else -qty * px * (1 + fee)
        trades.append(RefTrade(entry_bar, i, side, entry_px, px, cash - cash_before, reason))
        side, qty = 0, 0.0

    def open_(i: int, want: int) -> None:
        nonlocal cash, side, qty, entry_px, best, entry_bar, cash_before
        if cash <= 0:
            return
        px = c.close[i] * (1 + slip) if want > 0 else c.close[i] * (1 - slip)
        qty = cash * g.position_pct / (1 + fee) / px
        cash_before = cash
        cash += -qty * px * (1 + fee) if want > 0 else qty * px * (1 - fee)
        side, entry_px, best, entry_bar = want, px, float(c.close[i]), i

    for i in range(len(c)):
        o, h, lo, cl = (float(c.open[i]), float(c.high[i]), float(c.low[i]), float(c.close[i]))
        stopped = False
        if side != 0 and i > entry_bar and (sl or tp or ts):
            best = max(best, o) if side > 0 else min(best, o)
            # the stop-loss level, replaced by the trailing level only where that is strictly tighter
            stop, why = (entry_px * (1 - side * sl), "stop-loss") if sl else (None, "")
            if ts:
                trail = best * (1 - side * ts)
                if stop is None or (trail > stop if side > 0 else trail < stop):
                    stop, why = trail, "trailing-stop"
            target = entry_px * (1 + side * tp) if tp else None

            def beyond(p: float, lvl: float) -> bool:
                return p <= lvl if side > 0 else p >= lvl

            def reach(p: float, lvl: float) -> bool:
                return p >= lvl if side > 0 else p <= lvl

            worst, best_px = (lo, h) if side > 0 else (h, lo)
            if stop is not None and beyond(o, stop):
                close(i, o, why)
            elif target is not None and reach(o, target):
                close(i, o, "take-profit")
            elif stop is not None and beyond(worst, stop):
                close(i, stop, why)
            elif target is not None and reach(best_px, target):
                close(i, target, "take-profit")
            else:
                best = max(best, h) if side > 0 else min(best, lo)
            stopped = side == 0
        if not stopped:
            if side == 0:
                go_long = g.direction != "short" and entry.hit(i)
                go_short = g.direction != "long" and s_entry.hit(i)
                if go_long != go_short:
                    open_(i, 1 if go_long else -1)
            else:
                opposite = (s_entry if side > 0 else entry) if g.direction == "both" else None
                if opposite is not None and opposite.hit(i):
                    was = side
                    close(i, cl, "reverse")
                    open_(i, -was)
                elif (exit_ if side > 0 else s_exit).hit(i):
                    close(i, cl, "signal")
        equity.append(cash + side * qty * cl)
    return trades, equity
