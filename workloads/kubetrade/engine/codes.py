"""Integer codes shared by the genome compiler, the numba kernels and the live signal.

Kept in a module without numba so that validating a genome (the admission webhook, the
operator, the API) and running one live (:mod:`kubetrade.engine.stream`) do not load the
JIT compiler, which is most of the engine's memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
 S_LAST_REASON, S_LAST_EXIT_PX, S_LAST_OPENED, S_LAST_ENTRY_PX) = range(11)
STATE_SIZE = 11
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
