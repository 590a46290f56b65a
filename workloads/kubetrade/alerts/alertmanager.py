"""Trading events that are not metrics, sent to Alertmanager's API and kept in the alert history.

A promotion to live or a goal reached happens once, at a moment, with a reason that no
gauge carries; Prometheus rules cannot say it well.  The platform posts such an event to
Alertmanager (``POST /api/v2/alerts``) like Prometheus posts a firing rule, so it takes the
same routes, grouping, inhibition and silences as every other alert (the Alertmanager
config inhibits the metric alert an event explains).  Each event is first recorded in
``alert_history`` under its fingerprint (:mod:`kubetrade.alerts.history`): raised twice,
it is sent once; Alertmanager down, the row says ``failed``.

Configuration: ``KUBETRADE_ALERTMANAGER_URL`` (e.g. http://alertmanager.monitoring:9093;
unset keeps events in the history only) and ``KUBETRADE_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from kubetrade.alerts import history
from kubetrade.observability.metrics import ALERT_EVENTS

log = logging.getLogger("kubetrade.alerts.alertmanager")

URL_ENV = "KUBETRADE_ALERTMANAGER_URL"
EVENT_TTL = timedelta(hours=1)
"""An event resolves by itself after this long: it is news, not a lasting condition."""


@dataclass(frozen=True)
class PlatformEvent:
    alertname: str
    severity: str
    summary: str
    fingerprint: str
    """What the event is about, unique per occurrence: the history's dedupe key."""
    labels: dict[str, str] = field(default_factory=dict)
    description: str = ""
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    value: float | None = None

    def payload(self) -> dict[str, Any]:
        """One alert in the shape of Alertmanager's API v2."""
        return {
            "labels": {"alertname": self.alertname, "severity": self.severity, **self.labels},
            "annotations": {"summary": self.summary, "description": self.description},
            "startsAt": self.time.isoformat(),
            "endsAt": (self.time + EVENT_TTL).isoformat(),
            "generatorURL": "",
        }


def promoted_to_live(namespace: str, strategy: str, goal: str, reason: str, day: str | None = None) -> PlatformEvent:
    day = day or datetime.now(UTC).strftime("%Y-%m-%d")
    return PlatformEvent(
        alertname="KubetradePromotedToLive", severity="info",
        summary=f"Strategy {namespace}/{strategy} was promoted to live trading by goal {goal}",
        description=reason, fingerprint=f"KubetradePromotedToLive/{namespace}/{strategy}/{day}",
        labels={"category": "trading", "namespace": namespace, "strategy": strategy, "goal": goal},
    )


def goal_reached(namespace: str, goal: str, return_pct: float, target_pct: float, period: str) -> PlatformEvent:
    """``period`` names the target period (e.g. '2026-11'), so each period's success is news once."""
    return PlatformEvent(
        alertname="KubetradeGoalReached", severity="info",
        summary=f"Goal {namespace}/{goal} reached its target: {return_pct:.2%} (target {target_pct:.2%})",
        description=f"The strategies counted by the goal returned {return_pct:.2%} on the target capital.",
        fingerprint=f"KubetradeGoalReached/{namespace}/{goal}/{period}",
        labels={"category": "trading", "namespace": namespace, "goal": goal}, value=return_pct,
    )


class AlertmanagerClient:
    def __init__(self, url: str, timeout: float = 5.0, client: httpx.AsyncClient | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._client = client

    async def post(self, events: list[PlatformEvent]) -> None:
        """Send events; raises httpx.HTTPError when Alertmanager does not accept them."""
        body = [e.payload() for e in events]
        if self._client is not None:
            resp = await self._client.post(f"{self.url}/api/v2/alerts", json=body, timeout=self.timeout)
        else:
            async with httpx.AsyncClient() as client:
                resp = await client.post(f"{self.url}/api/v2/alerts", json=body, timeout=self.timeout)
        resp.raise_for_status()


async def raise_event(conn: Any, event: PlatformEvent, client: AlertmanagerClient | None) -> dict[str, Any] | None:
    """Record the event and send it; returns its history row, or None if it was raised before."""
    row = await history.record_event(
        conn, name=event.alertname, severity=event.severity, fingerprint=event.fingerprint,
        namespace=event.labels.get("namespace"),
        target=event.labels.get("strategy") or event.labels.get("goal"),
        message=event.summary, labels={"alertname": event.alertname, **event.labels}, time=event.time,
        value=event.value,
    )
    if row is None:
        ALERT_EVENTS.labels(event.alertname, event.severity, "duplicate").inc()
        return None
    if client is None:
        await conn.execute("UPDATE alert_history SET delivery = 'none' WHERE id = %s", (row["id"],))
        ALERT_EVENTS.labels(event.alertname, event.severity, "recorded").inc()
        return row
    try:
        await client.post([event])
    except httpx.HTTPError as exc:
        await history.mark_delivery(conn, row["id"], False, f"{type(exc).__name__}: {exc}")
        ALERT_EVENTS.labels(event.alertname, event.severity, "failed").inc()
        log.warning("alert not delivered", extra={"alertname": event.alertname, "error": type(exc).__name__})
    else:
        await history.mark_delivery(conn, row["id"], True)
        ALERT_EVENTS.labels(event.alertname, event.severity, "delivered").inc()
    return row


def emit_in_background(event: PlatformEvent) -> threading.Thread | None:
    """Fire-and-forget for synchronous callers (operator handlers): never blocks or raises.

    Uses ``KUBETRADE_DATABASE_URL`` and ``KUBETRADE_ALERTMANAGER_URL``; without a database
    the event is only logged.
    """
    dsn = os.environ.get("KUBETRADE_DATABASE_URL")
    if not dsn:
        log.info("platform event (no database to record it)", extra={"alertname": event.alertname,
                                                                     "summary": event.summary})
        return None
    url = os.environ.get(URL_ENV)

    async def run() -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await raise_event(conn, event, AlertmanagerClient(url) if url else None)

    def target() -> None:
        try:
            asyncio.run(run())
        except Exception as exc:  # an alert must never take a reconcile down
            log.warning("platform event not recorded", extra={"alertname": event.alertname,
                                                              "error": type(exc).__name__})

    thread = threading.Thread(target=target, name=f"alert-{event.alertname}", daemon=True)
    thread.start()
    return thread
