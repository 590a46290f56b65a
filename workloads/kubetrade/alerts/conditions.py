"""Pure decisions of the alert evaluator: no I/O, tested as plain functions."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

Metric = Literal["pnl", "drawdown", "equity", "price", "goal_progress"]
Operator = Literal[">", ">=", "<", "<="]
Severity = Literal["info", "warning", "critical"]

COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}


@dataclass(frozen=True)
class Observation:
    """A value the platform saw: ``target`` is a Strategy or Goal name, or ``exchange:symbol`` for a price."""

    metric: Metric
    namespace: str
    target: str
    value: float


@dataclass(frozen=True)
class RuleState:
    """What the evaluator needs of a rule to decide."""

    operator: Operator
    threshold: float
    cooldown_seconds: int
    firing: bool
    last_fired_at: datetime | None


Decision = Literal["fire", "resolve"] | None


def decide(rule: RuleState, value: float, now: datetime) -> Decision:
    """Fire when the condition starts to hold (not again within the cooldown); resolve when it stops.

    A condition that keeps holding fires once, not on every report: an alert is news.
    """
    holds = COMPARE[rule.operator](value, rule.threshold)
    if holds and not rule.firing:
        cooled = rule.last_fired_at is None or now - rule.last_fired_at >= timedelta(seconds=rule.cooldown_seconds)
        return "fire" if cooled else None
    if not holds and rule.firing:
        return "resolve"
    return None


_STRATEGY_FIELDS: dict[str, Metric] = {"pnl": "pnl", "drawdown": "drawdown", "equity": "equity"}
_GOAL_FIELDS: dict[str, Metric] = {"progressPct": "goal_progress", "progress_pct": "goal_progress"}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def from_status(kind: str, namespace: str, name: str, status: dict[str, Any]) -> list[Observation]:
    """Observations in a workload's status report (``status.<kind>.<namespace>.<name>``)."""
    fields = _STRATEGY_FIELDS if kind == "Strategy" else _GOAL_FIELDS if kind == "Goal" else {}
    out = []
    for field, metric in fields.items():
        value = _number(status.get(field))
        if value is not None:
            out.append(Observation(metric, namespace, name, value))
    return out


def price_target(exchange: str, symbol: str) -> str:
    return f"{exchange}:{symbol}"


def describe(name: str, metric: str, target: str, op: str, threshold: float, value: float, decision: str) -> str:
    verb = "crossed" if decision == "fire" else "is back from"
    return f"{name}: {metric} of {target} {verb} {op} {threshold:g} (now {value:g})"
