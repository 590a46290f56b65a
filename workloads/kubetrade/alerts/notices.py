"""An alert as Alertmanager's API v2 takes it, and its identity there (pure).

Alertmanager identifies an alert by its label set alone: the same labels posted again
(a retry, a second API replica, a restart, the periodic re-post) are the same alert, and
its notifications are not repeated.  So the labels of an alert kubetrade raises are
decided once, when it starts, kept in the outbox (:mod:`kubetrade.alerts.outbox`) and
never recomputed: nothing in them depends on a pod, a process or a clock.

:func:`fingerprint` is Alertmanager's own (prometheus/common ``LabelSet.Fingerprint``:
FNV-1a 64 over the sorted names and values, each followed by the byte 0xff), so the
history can find an alert Alertmanager reports back by its fingerprint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

_OFFSET = 14695981039346656037
_PRIME = 1099511628211
_MASK = (1 << 64) - 1
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

FIRING_TTL = timedelta(hours=1)
"""``endsAt`` of a firing alert: an hour after each post.  The dispatcher re-posts every minute,
so the alert stays active while kubetrade runs; if kubetrade were gone for an hour, Alertmanager
would resolve it by itself, as it does a Prometheus alert whose Prometheus is gone."""


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set, as it prints it (16 hex digits)."""
    h = _OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * _PRIME) & _MASK
            h = ((h ^ 0xFF) * _PRIME) & _MASK
    return f"{h:016x}"


def channels_label(channels: Iterable[str]) -> str:
    """The ``channels`` label: the chosen channels, sorted, comma-separated (routes match on it)."""
    return ",".join(sorted(set(channels)))


@dataclass(frozen=True)
class Notice:
    """An alert kubetrade tells Alertmanager about."""

    labels: dict[str, str]
    annotations: dict[str, str]
    severity: str
    starts_at: datetime
    ends_at: datetime | None = None
    """None while it fires until resolved; set for an event that expires, or when resolved."""
    resolved: bool = False

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)


def payload(labels: Mapping[str, str], annotations: Mapping[str, str], starts_at: datetime,
            ends_at: datetime | None, resolved: bool, now: datetime | None = None) -> dict[str, Any]:
    """One alert of ``POST /api/v2/alerts``: a firing alert ends :data:`FIRING_TTL` after now, a
    resolved one when it was resolved, an expiring event when it expires."""
    now = now or datetime.now(UTC)
    if resolved:
        end = ends_at or now
    elif ends_at is not None:
        end = ends_at
    else:
        end = now + FIRING_TTL
    return {
        "labels": dict(labels),
        "annotations": dict(annotations),
        "startsAt": starts_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "endsAt": max(end, starts_at).astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "generatorURL": "",
    }


def rule_labels(rule: Mapping[str, Any], channels: Iterable[str]) -> dict[str, str]:
    """The label set of a user rule's alert: the rule's identity and its routing, nothing else."""
    labels = {
        "alertname": "KubetradeUserAlert",
        "category": "user",
        "rule_id": str(rule["id"]),
        "rule": str(rule["name"]),
        "namespace": str(rule["namespace"]),
        "metric": str(rule["metric"]),
        "target": str(rule["target"]),
        "severity": str(rule["severity"]),
    }
    chosen = list(channels)
    if rule.get("channels"):
        # the rule named its channels: route by them; "none" when every one is rate-limited now
        labels["channels"] = channels_label(chosen) or "none"
    return labels
