"""The stop rule, written once: the backtest kernel compiles these functions (numba) and the
risk manager's stop watch and the runner call them as plain Python.

A position's side is +1 (long) or -1 (short).  Its fixed stop sits ``pct`` beyond the entry
against it; a trailing stop follows the best price since entry at ``pct`` and never loosens;
a price at or through the level triggers it.  The kernel adds what only a bar has (the
open's gap, the high/low, the take-profit); the stop watch sees one price at a time.
"""

from __future__ import annotations


def fixed_level(side: int, entry: float, pct: float) -> float:
    """The stop ``pct`` (a fraction) beyond ``entry``, against the position."""
    return entry * (1.0 - pct) if side > 0 else entry * (1.0 + pct)


def best_price(side: int, best: float, price: float) -> float:
    """The best price since entry after ``price``: the highest for a long, the lowest for a short."""
    return max(best, price) if side > 0 else min(best, price)


def trailed_level(side: int, level: float, best: float, pct: float) -> float:
    """``level`` tightened by a trailing stop ``pct`` behind ``best``; it never loosens."""
    return max(level, best * (1.0 - pct)) if side > 0 else min(level, best * (1.0 + pct))


def crossed(side: int, price: float, level: float) -> bool:
    """Whether ``price`` is at or through the stop ``level``."""
    return price <= level if side > 0 else price >= level
