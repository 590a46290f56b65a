"""The runner's own books: fills in, position, cash, PnL, Sharpe and drawdown out (pure).

The executor's ledger is the record; this is the strategy's view of it, rebuilt from the
same fills (each counted once, by trade id), so the runner can size its next order and
report its performance without a database round trip per bar.  A fill moves the position
and the cash by :mod:`kubetrade.ledger.accounting`, the executor's own arithmetic (and the
backtester's: a buy pays ``qty * price + fee``, a sell receives ``qty * price - fee``); what
this adds is the round trips (closed trades) and the equity curve's Sharpe and drawdown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kubetrade.ledger import accounting


@dataclass(frozen=True)
class ClosedTrade:
    symbol: str
    side: int
    quantity: float
    entry_price: float
    exit_price: float
    entry_time: int
    exit_time: int
    pnl: float
    """Net of both fees, like the backtester's trade PnL."""


@dataclass
class Position:
    quantity: float = 0.0
    """Signed: + long, - short."""
    average_price: float = 0.0
    cash_before: float = 0.0
    entry_time: int = 0


@dataclass
class Book:
    capital: float
    cash: float = math.nan
    positions: dict[str, Position] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    trades: list[ClosedTrade] = field(default_factory=list)
    fees: float = 0.0
    seen: set[str] = field(default_factory=set)
    peak: float = 0.0
    max_drawdown: float = 0.0
    _prev_equity: float = 0.0
    _n: int = 0
    _sum: float = 0.0
    _sum2: float = 0.0

    def __post_init__(self) -> None:
        if math.isnan(self.cash):
            self.cash = self.capital
        self.peak = self._prev_equity = self.equity

    def position(self, symbol: str) -> float:
        p = self.positions.get(symbol)
        return p.quantity if p else 0.0

    def apply_fill(self, trade_id: str, symbol: str, side: str, quantity: float, price: float, fee: float,
                   time: int) -> bool:
        """Book one fill; a trade id seen before changes nothing (events may be redelivered)."""
        if trade_id in self.seen:
            return False
        self.seen.add(trade_id)
        p = self.positions.setdefault(symbol, Position())
        if p.quantity == 0:
            p.cash_before, p.entry_time = self.cash, time
        before = accounting.Position(p.quantity, p.average_price)
        after, _ = accounting.apply_fill(before, side, quantity, price, fee)
        self.cash = accounting.cash_after_fill(self.cash, side, quantity, price, fee)
        self.fees += fee
        if before.quantity != 0 and (after.quantity == 0 or (after.quantity > 0) != (before.quantity > 0)):
            # a round trip ends: its PnL is the cash it returned over the cash it started from
            pnl = self.cash + after.quantity * price - p.cash_before
            self.trades.append(ClosedTrade(symbol, 1 if before.quantity > 0 else -1, abs(before.quantity),
                                           before.average_price, price, p.entry_time, time, pnl))
            if after.quantity != 0:  # reversed through zero: the remainder opens a new position
                p.cash_before, p.entry_time = self.cash + after.quantity * price, time
        p.quantity, p.average_price = after.quantity, after.average_price
        self.marks[symbol] = price
        return True

    def mark(self, symbol: str, price: float) -> None:
        self.marks[symbol] = price

    @property
    def equity(self) -> float:
        return self.cash + sum(p.quantity * self.marks.get(s, p.average_price) for s, p in self.positions.items())

    @property
    def pnl(self) -> float:
        return self.equity - self.capital

    @property
    def open_positions(self) -> int:
        return sum(1 for p in self.positions.values() if p.quantity != 0)

    @property
    def drawdown(self) -> float:
        return 1 - self.equity / self.peak if self.peak > 0 else 0.0

    def close_bar(self) -> None:
        """Record the equity at a bar's close for the Sharpe ratio and the drawdown."""
        eq = self.equity
        if self._prev_equity > 0:
            r = eq / self._prev_equity - 1
            self._n += 1
            self._sum += r
            self._sum2 += r * r
        self._prev_equity = eq
        self.peak = max(self.peak, eq)
        self.max_drawdown = max(self.max_drawdown, self.drawdown)

    def sharpe(self, bars_per_year: float) -> float | None:
        if self._n < 2:
            return None
        mean = self._sum / self._n
        var = (self._sum2 - self._n * mean * mean) / (self._n - 1)
        return mean / math.sqrt(var) * math.sqrt(bars_per_year) if var > 1e-18 else 0.0
