"""A goal's figures, computed once for everyone: which strategies count, the goal's equity, its
progress against the target path and the position-sizing multiplier its runners apply (pure).

The goal manager reports these into ``Goal.status`` and publishes the multiplier; the API's goal
summary shows the same function's answer; ``kubetrade up`` runs the same goal manager.  So a
cluster and the local stack cannot disagree about a goal.

* **Counted strategies**: those the goal's ``strategySelector`` selects (by default the ones it
  created, labelled ``kubetrade.io/goal=<goal>``), in phase Paper or Live, that have reported a PnL.
* **Equity**: the target capital grown by the counted strategies' combined return on their
  combined allocation, ``capital * (1 + sum(pnl) / sum(allocation))``: strategies given more or
  less capital than the goal's own count by their return, not by their size.
* **Progress** (:mod:`kubetrade.lifecycle.progress`) and **sizing** (:mod:`kubetrade.sizing.goal`)
  from that equity and the peak it reached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from kubetrade.lifecycle.progress import progress
from kubetrade.resources.goal import GoalSpec, LabelSelector
from kubetrade.resources.riskpolicy import RiskPolicySpec
from kubetrade.sizing.goal import goal_sizing

GOAL_LABEL = "kubetrade.io/goal"
COUNTED_PHASES = ("Paper", "Live")


def label_selector(spec: GoalSpec, goal: str) -> LabelSelector:
    """The goal's selector; without one, the strategies the goal created."""
    sel = spec.strategy_selector
    if sel is None or (not sel.match_labels and not sel.match_expressions):
        return LabelSelector(match_labels={GOAL_LABEL: goal})
    return sel


def selects(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics: every matchLabels pair and every expression hold."""
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for expr in selector.match_expressions:
        present = expr.key in labels
        if expr.operator == "In" and not (present and labels[expr.key] in expr.values):
            return False
        if expr.operator == "NotIn" and present and labels[expr.key] in expr.values:
            return False
        if expr.operator == "Exists" and not present:
            return False
        if expr.operator == "DoesNotExist" and present:
            return False
    return True


def members(spec: GoalSpec, goal: str, strategies: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Strategy objects the goal selects (whatever their phase)."""
    sel = label_selector(spec, goal)
    return [s for s in strategies if selects(sel, (s.get("metadata") or {}).get("labels") or {})]


def goal_equity(spec: GoalSpec, strategies: Iterable[dict[str, Any]]) -> tuple[float | None, int]:
    """(the goal's equity, how many strategies counted); None while none has reported a PnL."""
    allocation = pnl = 0.0
    counted = 0
    for s in strategies:
        st = s.get("status") or {}
        if st.get("phase") in COUNTED_PHASES and st.get("pnl") is not None:
            allocation += float(((s.get("spec") or {}).get("capital") or {}).get("amount") or 0.0)
            pnl += float(st["pnl"])
            counted += 1
    if not allocation:
        return None, counted
    return spec.target.capital.amount * (1 + pnl / allocation), counted


@dataclass(frozen=True)
class GoalFigures:
    equity: float
    peak_equity: float
    return_pct: float
    expected_return_pct: float
    progress_pct: float | None
    on_track: bool
    sizing_multiplier: float
    sizing_state: str
    sizing_explanation: str
    strategies: int
    """How many strategies counted."""

    def status(self) -> dict[str, Any]:
        """The ``Goal.status`` fields these figures fill (camelCase, as the resource stores them)."""
        return {
            "equity": self.equity,
            "peakEquity": self.peak_equity,
            "returnPct": self.return_pct,
            "progressPct": self.progress_pct,
            "onTrack": self.on_track,
            "sizingMultiplier": self.sizing_multiplier,
        }


def start_date(spec: GoalSpec, created: str | None, now: datetime) -> date:
    """Where the target path starts: the spec's start date, else the Goal's creation day."""
    if spec.target.start_date:
        return spec.target.start_date
    if created:
        return datetime.fromisoformat(created.replace("Z", "+00:00")).astimezone(UTC).date()
    return now.date()


def goal_figures(
    spec: GoalSpec,
    goal: dict[str, Any],
    strategies: Iterable[dict[str, Any]],
    now: datetime,
    policy: RiskPolicySpec | None = None,
    peak: float | None = None,
) -> GoalFigures | None:
    """The figures of one Goal object from the Strategy objects of its namespace; None while none counts.

    ``peak`` is the highest equity seen so far (the goal's ``status.peakEquity`` if not given)."""
    name = goal["metadata"]["name"]
    equity, counted = goal_equity(spec, members(spec, name, strategies))
    if equity is None:
        return None
    return figures_at(spec, goal, equity, counted, now, policy, peak)


def figures_at(
    spec: GoalSpec,
    goal: dict[str, Any],
    equity: float,
    counted: int,
    now: datetime,
    policy: RiskPolicySpec | None = None,
    peak: float | None = None,
) -> GoalFigures:
    """The figures of a goal standing at ``equity`` (its capital, before any strategy has reported)."""
    known = peak if peak is not None else (goal.get("status") or {}).get("peakEquity")
    top = max(equity, float(known)) if known is not None else equity
    start = start_date(spec, (goal.get("metadata") or {}).get("creationTimestamp"), now)
    p = progress(spec.target, equity, start, now)
    dd = policy.portfolio_limits.max_drawdown_pct if policy is not None else None
    s = goal_sizing(spec.target, equity, top, now, start, max_multiplier=spec.max_sizing_multiplier,
                    policy_max_drawdown=dd)
    return GoalFigures(equity, top, p.return_pct, p.expected_return_pct, p.progress_pct, p.on_track,
                       round(s.multiplier, 4), s.state, s.explanation, counted)
