"""Pure decisions of the alert evaluator: no I/O, tested as plain functions."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

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


# --- where an alert goes, and when it may not -------------------------------------------------

Channel = Literal["email", "sms", "telegram", "discord", "slack", "webhook"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "telegram", "discord", "slack", "webhook")
SEVERITY_RANK: dict[str, int] = {"info": 1, "warning": 2, "critical": 3}
"""The priority of an alert: critical before warning before info, in every queue."""


@dataclass(frozen=True)
class QuietHours:
    """A daily span in a time zone when a rule's alerts wait; ``start`` after ``end`` spans midnight."""

    start: time
    end: time
    timezone: str = "UTC"

    def until(self, now: datetime) -> datetime | None:
        """When the quiet span that holds ``now`` ends (UTC), or None if ``now`` is not quiet."""
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        t = local.timetz().replace(tzinfo=None)
        if self.start < self.end:
            quiet = self.start <= t < self.end
            end_day = local.date()
        else:
            quiet = t >= self.start or t < self.end
            end_day = local.date() + timedelta(days=1) if t >= self.start else local.date()
        if not quiet:
            return None
        return datetime.combine(end_day, self.end, tzinfo=zone).astimezone(UTC)


def parse_quiet_hours(value: dict[str, Any] | None) -> QuietHours | None:
    """The stored form (``{"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}``)."""
    if not value:
        return None
    return QuietHours(time.fromisoformat(value["start"]), time.fromisoformat(value["end"]),
                      value.get("timezone") or "UTC")


def rate_limited(channels: Iterable[str], severity: str, sent_last_hour: dict[str, int],
                 limits: dict[str, int]) -> tuple[list[str], list[str]]:
    """(kept, dropped): a channel that sent its hourly limit takes no more warning or info alerts.

    A critical alert is never dropped: the limit keeps a channel from being flooded with
    news, not from the one message that matters.
    """
    kept, dropped = [], []
    for channel in channels:
        limit = limits.get(channel)
        if severity != "critical" and limit is not None and sent_last_hour.get(channel, 0) >= limit:
            dropped.append(channel)
        else:
            kept.append(channel)
    return kept, dropped
