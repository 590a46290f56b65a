"""Paper trading against a backtest of the same bars: what the review's live gate compares (pure).

Per symbol the runner arms its live signal's :class:`~kubetrade.engine.live.Shadow` at the
first bar close where both it and the book hold nothing (at start; after a restart that
adopted a position, once that position is closed), with the book's equity as the shadow's
capital: from the next bar on both trade the same bars from the same money, one through
the executor, one in the backtester's kernel.  After every bar this tallies both equity
curves (all armed symbols together) for the return, Sharpe ratio and drawdown, and
:meth:`ParityCheck.report` pairs the trades: a paper trade matches a backtest trade with
the same entry bar, exit bar and side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubetrade.runner.account import ClosedTrade


@dataclass
class _Curve:
    start: float = 0.0
    prev: float = 0.0
    peak: float = 0.0
    max_dd: float = 0.0
    n: int = 0
    s1: float = 0.0
    s2: float = 0.0

    def step(self, equity: float, *, rebase: float = 0.0) -> None:
        """Record the equity after a bar; ``rebase`` adds capital joining the curve (a symbol armed)."""
        if rebase:
            self.start += rebase
            self.prev += rebase
            self.peak += rebase
        elif self.prev > 0:
            r = equity / self.prev - 1
            self.n += 1
            self.s1 += r
            self.s2 += r * r
        self.prev = equity
        self.peak = max(self.peak, equity)
        if self.peak > 0:
            self.max_dd = max(self.max_dd, 1 - equity / self.peak)

    def result(self, trades: int, bars_per_year: float) -> dict[str, Any]:
        sharpe = None
        if self.n >= 2:
            mean = self.s1 / self.n
            var = (self.s2 - self.n * mean * mean) / (self.n - 1)
            sharpe = mean / math.sqrt(var) * math.sqrt(bars_per_year) if var > 1e-18 else 0.0
        ret = self.prev / self.start - 1 if self.start > 0 else 0.0
        return {"trades": trades, "returnPct": ret, "sharpe": sharpe, "maxDrawdown": self.max_dd}


@dataclass
class ParityCheck:
    bars_per_year: float
    armed: dict[str, int] = field(default_factory=dict)
    """symbol -> open time of the first bar its shadow covers"""
    bars: int = 0
    paper: _Curve = field(default_factory=_Curve)
    backtest: _Curve = field(default_factory=_Curve)

    @property
    def since(self) -> int | None:
        return min(self.armed.values()) if self.armed else None

    def arm(self, symbol: str, first_bar: int, equity: float) -> None:
        """A symbol's shadow starts at ``first_bar`` with ``equity``, the book's own at the bar before."""
        if symbol in self.armed:
            return
        self.armed[symbol] = first_bar
        total_paper = self.paper.prev + equity
        self.paper.step(total_paper, rebase=equity)
        self.backtest.step(self.backtest.prev + equity, rebase=equity)

    def on_bar(self, paper_equity: float, backtest_equity: float) -> None:
        """Both curves after a bar (all armed symbols summed)."""
        if not self.armed:
            return
        self.bars += 1
        self.paper.step(paper_equity)
        self.backtest.step(backtest_equity)

    def report(self, paper_trades: list[ClosedTrade], backtest_trades: dict[str, list[tuple[int, int, int]]],
               ) -> dict[str, Any] | None:
        """``status.paperCheck``: both results and how many trades agree; None before anything is armed."""
        since = self.since
        if since is None:
            return None
        paper = [(t.symbol, t.entry_time, t.exit_time, t.side) for t in paper_trades
                 if t.symbol in self.armed and t.entry_time >= self.armed[t.symbol]]
        shadow = [(sym, *t) for sym, trades in backtest_trades.items() for t in trades]
        unmatched = list(shadow)
        matched = 0
        for t in paper:
            if t in unmatched:
                unmatched.remove(t)
                matched += 1
        return {
            "since": datetime.fromtimestamp(since / 1000, UTC).isoformat().replace("+00:00", "Z"),
            "bars": self.bars,
            "paper": self.paper.result(len(paper), self.bars_per_year),
            "backtest": self.backtest.result(len(shadow), self.bars_per_year),
            "matchedTrades": matched,
        }
