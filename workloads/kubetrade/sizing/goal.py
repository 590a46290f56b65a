"""Goal-oriented position sizing: how much harder (or softer) to push, given a Goal.

The formula (every term is returned by :func:`goal_sizing` so a person can check it):

1. **Where the goal wants to be.**  The target compounds: ``r`` per period on the goal's
   capital ``C``.  With a deadline ``D`` the target equity is ``C (1 + r) ** (T / P)`` where
   ``T`` is the whole span start -> deadline and ``P`` the period, and the time left is
   ``tau = D - now``.  Without a deadline the horizon is one period ahead on the target path:
   target ``C (1 + r) ** ((elapsed + P) / P)`` and ``tau = P``.
2. **Pace needed.**  From equity ``E`` the growth rate per period still needed is
   ``g = (target / E) ** (P / tau) - 1`` and the *pace ratio* is ``rho = g / r``: 1 means
   "exactly on the target path", 2 "twice the target's pace is needed", 0 "already there".
3. **Urgency multiplier** ``u = clip(rho, floor, cap)`` with ``cap`` the Goal's
   ``maxSizingMultiplier`` and ``floor`` = :data:`FLOOR`.
4. **Edge cases, on purpose conservative.**
   *Goal met* (``E >= target``): ``u = floor`` - protect what was won.
   *Unreachable* (``rho > UNREACHABLE_PACE * cap``, or the deadline has passed without the
   target): ``u = 1`` - a lost target is never chased with more risk than the plan.
5. **Drawdown brake** ``b = clip(1 - dd / maxDD, 0, 1)`` with ``dd = 1 - E / peak`` and
   ``maxDD`` the smaller of the Goal's and the RiskPolicy's drawdown limit: sizing falls
   linearly to zero as the drawdown approaches the limit.
6. **Multiplier** ``m = u * b``.

The multiplier scales a strategy's own ``positionPct``; :func:`position_fraction` then caps
the result by fractional Kelly (when win rate and payoff are known) and by the RiskPolicy
(``maxPositionPct``, and ``maxRiskPerTradePct / stop distance``), which always wins.  The
risk manager enforces the same policy caps again on every order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from kubetrade.resources.goal import PERIOD_DAYS, Target
from kubetrade.resources.riskpolicy import RiskPolicySpec

FLOOR = 0.25
"""Smallest multiplier: a goal that is met (or far ahead) still trades, at a quarter size."""
UNREACHABLE_PACE = 3.0
"""A pace ratio above this many times the cap marks the goal unreachable."""
KELLY_FRACTION = 0.5
"""Half Kelly: the growth-optimal fraction is too volatile with estimated edges."""


@dataclass(frozen=True)
class GoalSizing:
    multiplier: float
    state: str
    """ahead, at-pace, behind, met, unreachable or expired (the pace needed, not the goal's onTrack)."""
    target_equity: float
    required_pace: float
    """rho: the growth rate per period still needed, as a multiple of the target rate."""
    urgency: float
    drawdown: float
    drawdown_brake: float
    days_left: float
    explanation: str


def _start_datetime(start: date) -> datetime:
    return datetime.combine(start, time(), tzinfo=UTC)


def goal_sizing(
    target: Target,
    equity: float,
    peak_equity: float,
    now: datetime,
    start: date,
    *,
    max_multiplier: float = 1.5,
    policy_max_drawdown: float | None = None,
) -> GoalSizing:
    """The sizing multiplier for a goal's strategies, and every term of the formula."""
    if equity <= 0:
        return GoalSizing(0.0, "unreachable", 0.0, math.inf, 0.0, 1.0, 0.0, 0.0, "no equity left")
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    period = PERIOD_DAYS[target.period]
    capital, r = target.capital.amount, target.return_pct
    elapsed = max(0.0, (now - _start_datetime(start)).total_seconds() / 86_400)
    # compounding in log space: a long horizon or a large target must not overflow a float
    if target.deadline is not None:
        span = max(0.0, (_start_datetime(target.deadline) - _start_datetime(start)).total_seconds() / 86_400)
        log_target = math.log(capital) + span / period * math.log1p(r)
        days_left = (_start_datetime(target.deadline) - now).total_seconds() / 86_400
    else:
        log_target = math.log(capital) + (elapsed + period) / period * math.log1p(r)
        days_left = period
    target_equity = math.exp(log_target) if log_target < 700 else math.inf
    peak = max(peak_equity, equity)
    drawdown = 1 - equity / peak if peak > 0 else 0.0
    limit = min(target.max_drawdown_pct, policy_max_drawdown or 1.0)
    brake = min(1.0, max(0.0, 1 - drawdown / limit))

    if math.log(equity) >= log_target:
        pace, urgency, state = 0.0, FLOOR, "met"
    elif days_left <= 0:
        pace, urgency, state = math.inf, 1.0, "expired"
    else:
        growth = (log_target - math.log(equity)) * period / days_left  # log growth per period still needed
        pace = math.expm1(growth) / r if growth < 700 else math.inf
        if pace > UNREACHABLE_PACE * max_multiplier:
            urgency, state = 1.0, "unreachable"
        else:
            urgency = min(max_multiplier, max(FLOOR, pace))
            state = "behind" if pace > 1.05 else "ahead" if pace < 0.95 else "at-pace"
    multiplier = urgency * brake
    explanation = (
        f"{state}: equity {equity:,.2f} vs target {target_equity:,.2f} with {max(days_left, 0):.1f} days left "
        f"-> pace {pace:.2f}x the target rate -> urgency {urgency:.2f}; drawdown {drawdown:.2%} of limit "
        f"{limit:.2%} -> brake {brake:.2f}; multiplier {multiplier:.3f}"
    )
    return GoalSizing(multiplier, state, target_equity, pace, urgency, drawdown, brake, days_left, explanation)


def kelly_fraction(win_rate: float, payoff_ratio: float) -> float:
    """Growth-optimal bet fraction ``p - (1 - p) / b`` (0 when there is no edge)."""
    if payoff_ratio <= 0 or not 0 <= win_rate <= 1:
        raise ValueError(f"win rate {win_rate} must be in [0, 1] and payoff ratio {payoff_ratio} positive")
    return max(0.0, win_rate - (1 - win_rate) / payoff_ratio)


@dataclass(frozen=True)
class PositionFraction:
    fraction: float
    """Fraction of the strategy's capital the position may use."""
    binding: str
    """Which term set it: goal, kelly, maxPositionPct or maxRiskPerTradePct."""
    terms: dict[str, float]


def position_fraction(
    base_fraction: float,
    multiplier: float,
    policy: RiskPolicySpec,
    *,
    stop_distance: float | None = None,
    win_rate: float | None = None,
    payoff_ratio: float | None = None,
) -> PositionFraction:
    """``base * multiplier``, capped by half Kelly (if the edge is known) and always by the policy."""
    terms = {"goal": base_fraction * multiplier}
    if win_rate is not None and payoff_ratio is not None:
        terms["kelly"] = KELLY_FRACTION * kelly_fraction(win_rate, payoff_ratio)
    sl = policy.strategy_limits
    terms["maxPositionPct"] = sl.max_position_pct
    stop = stop_distance if stop_distance else policy.stop_loss.default_stop_pct
    terms["maxRiskPerTradePct"] = sl.max_risk_per_trade_pct / stop
    binding = min(terms, key=lambda k: terms[k])
    return PositionFraction(max(0.0, terms[binding]), binding, terms)
