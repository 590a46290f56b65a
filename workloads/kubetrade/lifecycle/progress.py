"""Goal progress: where the counted strategies stand against the target path.

The target compounds: a goal of ``r`` per period expects ``(1 + r) ** (t / period) - 1`` after
time ``t``.  *Progress* is the achieved return over that expected return; the goal is *on
track* when the achieved return is at least ``(1 - tolerance)`` of the expected one (or the
expected return is not yet positive).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from kubetrade.resources.goal import PERIOD_DAYS, Target


@dataclass(frozen=True)
class Progress:
    equity: float
    return_pct: float
    expected_return_pct: float
    progress_pct: float | None
    on_track: bool


def expected_return(target: Target, start: date, now: datetime) -> float:
    elapsed_days = max(0.0, (now.date() - start).days + now.hour / 24)
    return float((1 + target.return_pct) ** (elapsed_days / PERIOD_DAYS[target.period]) - 1)


def progress(target: Target, equity: float, start: date, now: datetime) -> Progress:
    capital = target.capital.amount
    achieved = equity / capital - 1
    expected = expected_return(target, start, now)
    ratio = achieved / expected if expected > 0 else None
    on_track = expected <= 0 or achieved >= expected * (1 - target.tolerance_pct)
    return Progress(equity, achieved, expected, ratio, on_track)
