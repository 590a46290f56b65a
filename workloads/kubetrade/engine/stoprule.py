"""The stop rule, written once: the backtest kernel compiles these functions (numba) and the
risk manager's stop watch and the runner call them as plain Python.

A position's side is +1 (long) or -1 (short).  Its fixed stop sits ``pct`` beyond the entry
against it; a trailing stop follows the best price since entry at ``pct`` and never loosens;
a price at or through the level triggers it.  The kernel adds what only a bar has (the
open's gap, the high/low, the take-profit); the stop watch sees one price at a time.

:func:`bar_fill` is where a closed bar fills a position's stop or take-profit, in the
conservative order: an open through the stop fills at the open, an open through the target
at the open, then the stop level if the bar reached it, then the target level.  The
kernel's exits, the paper venue's fill of an exit decided on a bar, and the stop watch's
paper stops all take their price from it, on the same candle.
"""

from __future__ import annotations

import math


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


NO_FILL, STOP_FILL, TARGET_FILL = 0, 1, 2


def bar_fill(side: int, stop: float, target: float, o: float, h: float, lo: float) -> tuple[int, float]:
    """(what filled, price) for a position of ``side`` whose ``stop``/``target`` levels one bar may hit.

    A level that is NaN is not there.  (NO_FILL, NaN) when the bar reached neither.
    """
    has_stop = stop == stop  # NaN is not equal to itself
    has_target = target == target
    # written out rather than calling crossed(): numba compiles this function alone, without its neighbours
    if side > 0:
        if has_stop and o <= stop:
            return STOP_FILL, o
        if has_target and o >= target:
            return TARGET_FILL, o
        if has_stop and lo <= stop:
            return STOP_FILL, stop
        if has_target and h >= target:
            return TARGET_FILL, target
    else:
        if has_stop and o >= stop:
            return STOP_FILL, o
        if has_target and o <= target:
            return TARGET_FILL, o
        if has_stop and h >= stop:
            return STOP_FILL, stop
        if has_target and lo <= target:
            return TARGET_FILL, target
    return NO_FILL, math.nan
