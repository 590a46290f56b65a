"""Goal-oriented sizing: the documented formula and its edge cases (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from kubetrade.lifecycle.goalfigures import figures_at
from kubetrade.resources.goal import GoalSpec, Target
from kubetrade.resources.riskpolicy import RiskPolicySpec
from kubetrade.sizing.goal import FLOOR, goal_sizing, kelly_fraction, position_fraction

START = date(2026, 1, 1)


def target(**kw) -> Target:
    base = {"capital": {"amount": 10_000}, "returnPct": 0.08, "period": "month", "deadline": "2026-07-01",
            "maxDrawdownPct": 0.15}
    return Target.model_validate(base | kw)


def at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


def test_on_the_target_path_the_multiplier_is_one() -> None:
    t = target()
    # equity exactly on the compounding path after 3 of 6 months: the rest needs exactly the target pace
    path = 10_000 * 1.08 ** ((at(2026, 4, 1) - at(2026, 1, 1)).days / (365.25 / 12))
    s = goal_sizing(t, path, path, at(2026, 4, 1), START)
    assert s.state == "at-pace"
    assert s.multiplier == pytest.approx(1.0, abs=1e-9)


def test_behind_pushes_harder_but_never_beyond_the_goal_cap() -> None:
    t = target()
    behind = goal_sizing(t, 10_000, 10_000, at(2026, 4, 1), START, max_multiplier=1.5)
    assert behind.state == "behind" and 1.0 < behind.urgency <= 1.5
    far = goal_sizing(t, 10_000, 10_000, at(2026, 5, 1), START, max_multiplier=1.5)  # pace ~3.2
    assert far.urgency == 1.5 and far.multiplier == 1.5


def test_ahead_backs_off() -> None:
    s = goal_sizing(target(), 14_000, 14_000, at(2026, 3, 1), START)
    assert s.state == "ahead" and FLOOR <= s.multiplier < 1.0


def test_goal_met_protects_gains_at_the_floor() -> None:
    s = goal_sizing(target(), 20_000, 20_000, at(2026, 3, 1), START)
    assert s.state == "met" and s.multiplier == FLOOR


def test_unreachable_goal_is_not_chased_with_more_risk() -> None:
    s = goal_sizing(target(), 5_000, 5_000, at(2026, 6, 25), START, max_multiplier=1.5)
    assert s.state == "unreachable" and s.multiplier == 1.0
    expired = goal_sizing(target(), 9_000, 9_000, at(2026, 8, 1), START)
    assert expired.state == "expired" and expired.multiplier == 1.0


def test_drawdown_near_the_limit_brakes_to_zero() -> None:
    t = target()
    half = goal_sizing(t, 10_000 * (1 - 0.075), 10_000, at(2026, 4, 1), START)
    assert half.drawdown_brake == pytest.approx(0.5)
    at_limit = goal_sizing(t, 8_500, 10_000, at(2026, 4, 1), START)
    assert at_limit.multiplier == 0.0
    # the policy's tighter limit wins over the goal's
    tighter = goal_sizing(t, 9_500, 10_000, at(2026, 4, 1), START, policy_max_drawdown=0.10)
    assert tighter.drawdown_brake == pytest.approx(0.5)


def test_without_deadline_the_horizon_is_one_period() -> None:
    t = target(deadline=None)
    s = goal_sizing(t, 10_000, 10_000, at(2026, 1, 1), START)
    assert s.required_pace == pytest.approx(1.0, rel=1e-6) and s.days_left == pytest.approx(365.25 / 12)


def test_the_goal_figures_read_the_goal_spec() -> None:
    spec = GoalSpec.model_validate({
        "target": {"capital": {"amount": 10_000}, "returnPct": 0.08, "deadline": "2026-07-01",
                   "startDate": START.isoformat()},
        "riskPolicyRef": {"name": "default"}, "evolution": {"symbols": ["BTC/USDT"]}, "maxSizingMultiplier": 1.2})
    goal = {"metadata": {"name": "g", "namespace": "default"}, "spec": spec.to_k8s()}
    m = figures_at(spec, goal, 10_000, 1, at(2026, 5, 1), RiskPolicySpec()).sizing_multiplier
    assert m == 1.2


def test_position_fraction_is_always_capped_by_the_policy() -> None:
    policy = RiskPolicySpec()  # 20 % position, 5 % risk per trade, 2 % default stop
    f = position_fraction(0.5, 1.5, policy)
    assert f.binding == "maxPositionPct" and f.fraction == 0.20
    wide_stop = position_fraction(0.5, 1.0, policy, stop_distance=0.5)
    assert wide_stop.binding == "maxRiskPerTradePct" and wide_stop.fraction == pytest.approx(0.10)
    kelly = position_fraction(0.5, 1.0, policy, win_rate=0.52, payoff_ratio=1.0)
    assert kelly.binding == "kelly" and kelly.fraction == pytest.approx(0.02)
    assert kelly_fraction(0.4, 1.0) == 0.0
