"""Integer codes shared by the genome compiler, the numba kernels and the live signal.

Kept in a module without numba so that validating a genome (the admission webhook, the
operator, the API) and running one live (:mod:`kubetrade.engine.stream`) do not load the
JIT compiler, which is most of the engine's memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# rule table columns
LEFT, OP, RIGHT = 0, 1, 2
# comparison codes (index in kubetrade.resources.genome.Comparison order)
GT, LT, GE, LE, XABOVE, XBELOW = 0, 1, 2, 3, 4, 5
# rule sets
ENTRY, EXIT, SHORT_ENTRY, SHORT_EXIT = 0, 1, 2, 3
# risk columns
STOP_LOSS, TAKE_PROFIT, TRAILING, POSITION = 0, 1, 2, 3
# directions
LONG, SHORT, BOTH = 0, 1, 2
# state vector of one strategy (the kernel's ``state`` argument, the live signal's ``state``)
(S_SIDE, S_QTY, S_CASH, S_ENTRY_PX, S_EXTREME, S_ENTRY_BAR, S_CASH_BEFORE,
 S_LAST_REASON, S_LAST_EXIT_PX, S_LAST_OPENED, S_LAST_ENTRY_PX, S_LAST_STOP, S_LAST_TARGET) = range(13)
STATE_SIZE = 13
# exit reasons
NO_EXIT, EXIT_SIGNAL, EXIT_STOP_LOSS, EXIT_TRAILING, EXIT_TAKE_PROFIT, EXIT_REVERSE = range(6)
EXIT_REASONS = ("", "signal", "stop-loss", "trailing-stop", "take-profit", "reverse")


def new_state_list(init_cash: float) -> list[float]:
    """A flat strategy holding ``init_cash`` (the kernel's ``new_state`` as a list)."""
    state = [0.0] * STATE_SIZE
    state[S_CASH] = init_cash
    state[S_ENTRY_BAR] = -1.0
    state[S_LAST_EXIT_PX] = math.nan
    state[S_LAST_ENTRY_PX] = math.nan
    state[S_LAST_STOP] = math.nan
    state[S_LAST_TARGET] = math.nan
    return state


@dataclass(frozen=True)
class Signal:
    """What the strategy did on the close of one bar; the runner turns it into orders."""

    bar: int
    exit_reason: str
    """"" (none), signal, stop-loss, trailing-stop, take-profit or reverse."""
    exit_price: float
    opened: int
    """+1 opened long, -1 opened short, 0 nothing opened."""
    entry_price: float
    position: int
    """Position after the bar: +1 long, -1 short, 0 flat."""
    exit_stop: float = math.nan
    """A stop exit's stop level on this bar (NaN if it had none), as the kernel filled it."""
    exit_target: float = math.nan
    """A stop exit's take-profit level on this bar (NaN if it had none)."""


def signal_of(state: Any, bar: int) -> Signal:
    """The Signal a state vector says about the bar it was just stepped over."""
    return Signal(bar, EXIT_REASONS[int(state[S_LAST_REASON])], float(state[S_LAST_EXIT_PX]),
                  int(state[S_LAST_OPENED]), float(state[S_LAST_ENTRY_PX]), int(state[S_SIDE]),
                  float(state[S_LAST_STOP]), float(state[S_LAST_TARGET]))


@dataclass
class Shadow:
    """The backtest of the bars since it was armed: equity and closed trades (bar open times)."""

    state: Any
    """Its own state vector (never touched by fills, risk cuts or an adopted position)."""
    since: int = -1
    """Open time of its first bar (-1 until one is stepped)."""
    bars: int = 0
    equity: float = 0.0
    trades: list[tuple[int, int, int]] = field(default_factory=list)
    """(entry bar time, exit bar time, side) of every closed trade."""
    entry_time: int = -1
    """Open time of the bar its open position was entered on."""

    def step(self, time: int, close: float, closed_side: int) -> None:
        """Account for one bar the state was stepped over; ``closed_side`` of a trade it closed, else 0."""
        if self.since < 0:
            self.since = time
        self.bars += 1
        if closed_side:
            self.trades.append((self.entry_time, time, closed_side))
        if int(self.state[S_LAST_OPENED]):
            self.entry_time = time
        self.equity = float(self.state[S_CASH] + self.state[S_SIDE] * self.state[S_QTY] * close)
