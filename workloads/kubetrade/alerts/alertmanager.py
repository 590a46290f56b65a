"""Platform events - trading news no gauge carries - and the client of Alertmanager's API v2.

A promotion to live, a goal reached, a circuit breaker tripped, a notification channel
that keeps failing: each happens at a moment, with a reason.  kubetrade posts such an
event to Alertmanager (``POST /api/v2/alerts``) like Prometheus posts a firing rule, so it
takes the same routes, grouping, inhibition and silences as every other alert (the
Alertmanager config inhibits the metric alert an event explains).

:func:`raise_event` records the event in ``alert_history`` under its ``key`` and queues it
in the outbox in one transaction: raised twice (a repeated reconcile, a restarted
operator) it is recorded and sent once; Alertmanager down, it waits in the outbox and the
dispatcher (:mod:`kubetrade.alerts.dispatcher`, in the API) posts it when it can.

Configuration: ``KUBETRADE_ALERTMANAGER_URL`` (one URL, or a comma-separated list: every
replica of an Alertmanager cluster, as Prometheus is given them; unset keeps events in the
history only) and ``KUBETRADE_DATABASE_URL``.
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
from kubetrade.alerts.notices import Notice, payload
from kubetrade.observability.metrics import ALERT_EVENTS

log = logging.getLogger("kubetrade.alerts.alertmanager")

URL_ENV = "KUBETRADE_ALERTMANAGER_URL"
EVENT_TTL = timedelta(hours=1)
"""An event that is news resolves by itself after this long: it is not a lasting condition."""


def alertmanager_urls(value: str | None = None) -> list[str]:
    """The Alertmanagers to post to: ``KUBETRADE_ALERTMANAGER_URL``, comma-separated."""
    raw = os.environ.get(URL_ENV, "") if value is None else value
    return [u.strip().rstrip("/") for u in raw.split(",") if u.strip()]


@dataclass(frozen=True)
class PlatformEvent:
    alertname: str
    severity: str
    summary: str
    key: str
    """What the event is about, unique per occurrence: the history's dedupe key."""
    labels: dict[str, str] = field(default_factory=dict)
    description: str = ""
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    value: float | None = None
    ttl: timedelta | None = EVENT_TTL
    """None: a lasting state (a tripped breaker) that a later event resolves."""
    resolves: bool = False
    """This event ends the lasting state with the same labels."""

    def notice(self) -> Notice:
        labels = {"alertname": self.alertname, "severity": self.severity, **self.labels}
        return Notice(labels, {"summary": self.summary, "description": self.description}, self.severity,
                      self.time, None if self.ttl is None or self.resolves else self.time + self.ttl,
                      resolved=self.resolves)


def promoted_to_live(namespace: str, strategy: str, goal: str, reason: str, day: str | None = None) -> PlatformEvent:
    day = day or datetime.now(UTC).strftime("%Y-%m-%d")
    return PlatformEvent(
        alertname="KubetradePromotedToLive", severity="info",
        summary=f"Strategy {namespace}/{strategy} was promoted to live trading by goal {goal}",
        description=reason, key=f"KubetradePromotedToLive/{namespace}/{strategy}/{day}",
        labels={"category": "trading", "namespace": namespace, "strategy": strategy, "goal": goal},
    )


def goal_reached(namespace: str, goal: str, return_pct: float, target_pct: float, period: str) -> PlatformEvent:
    """``period`` names the target period (e.g. '2026-11'), so each period's success is news once."""
    return PlatformEvent(
        alertname="KubetradeGoalReached", severity="info",
        summary=f"Goal {namespace}/{goal} reached its target: {return_pct:.2%} (target {target_pct:.2%})",
        description=f"The strategies counted by the goal returned {return_pct:.2%} on the target capital.",
        key=f"KubetradeGoalReached/{namespace}/{goal}/{period}",
        labels={"category": "trading", "namespace": namespace, "goal": goal}, value=return_pct,
    )


def channel_failing(channel: str, reason: str, since: datetime) -> PlatformEvent:
    """A channel kubetrade sends to (SMS) gave up on a notification; resolved by its next success."""
    return PlatformEvent(
        alertname="KubetradeAlertChannelFailing", severity="warning",
        summary=f"Alert channel {channel} is failing: notifications are not arriving",
        description=reason[:1000], key=f"KubetradeAlertChannelFailing/{channel}/{since.isoformat()}",
        labels={"category": "system", "channel": channel}, time=since, ttl=None,
    )


def channel_recovered(channel: str, at: datetime) -> PlatformEvent:
    return PlatformEvent(
        alertname="KubetradeAlertChannelFailing", severity="warning",
        summary=f"Alert channel {channel} delivers again", key=f"KubetradeAlertChannelFailing/{channel}/ok/"
        f"{at.isoformat()}", labels={"category": "system", "channel": channel}, time=at, ttl=None, resolves=True,
    )


class AlertmanagerError(Exception):
    """No Alertmanager accepted a post; ``permanent`` when one refused the alerts themselves (400)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class AlertmanagerClient:
    """Posts alerts to every Alertmanager of a cluster; accepted when at least one accepts.

    Alertmanager replicas gossip their notification log, not their alerts: each must be told
    (as Prometheus tells each), and the cluster makes sure a notification goes out once.
    """

    def __init__(self, urls: str | list[str], timeout: float = 5.0, client: httpx.AsyncClient | None = None) -> None:
        self.urls = alertmanager_urls(urls) if isinstance(urls, str) else [u.rstrip("/") for u in urls]
        self.url = self.urls[0] if self.urls else ""
        self.timeout = timeout
        self._client = client

    async def post_alerts(self, alerts: list[dict[str, Any]]) -> list[str]:
        """Post the alerts (API v2 shape) to each Alertmanager; returns the errors of those that did not
        accept them, and raises :class:`AlertmanagerError` when none did."""
        errors: list[str] = []
        refused = False
        client = self._client or httpx.AsyncClient()
        try:
            for url in self.urls:
                try:
                    resp = await client.post(f"{url}/api/v2/alerts", json=alerts, timeout=self.timeout)
                except httpx.HTTPError as exc:
                    errors.append(f"{url}: {type(exc).__name__}: {exc}"[:300])
                    continue
                if resp.status_code // 100 == 2:
                    continue
                refused = refused or resp.status_code == 400
                errors.append(f"{url}: HTTP {resp.status_code}: {resp.text.strip()}"[:300])
        finally:
            if self._client is None:
                await client.aclose()
        if len(errors) == len(self.urls):
            raise AlertmanagerError("; ".join(errors) or "no Alertmanager configured", permanent=refused)
        return errors

    async def post(self, events: list[PlatformEvent]) -> None:
        """Send events straight away (no outbox); raises :class:`AlertmanagerError` when none accepted them."""
        await self.post_alerts([payload(n.labels, n.annotations, n.starts_at, n.ends_at, n.resolved)
                                for n in (e.notice() for e in events)])


async def raise_event(conn: Any, event: PlatformEvent, deliver: bool = True) -> dict[str, Any] | None:
    """Record the event and queue it for Alertmanager (``deliver``); its history row, or None if raised before."""
    row = await history.record_event(
        conn, name=event.alertname, severity=event.severity, event_key=event.key,
        namespace=event.labels.get("namespace"),
        target=event.labels.get("strategy") or event.labels.get("goal") or event.labels.get("policy")
        or event.labels.get("channel"),
        message=event.summary, labels={"alertname": event.alertname, **event.labels}, time=event.time,
        value=event.value, notice=event.notice() if deliver else None, resolves=event.resolves,
    )
    result = "duplicate" if row is None else "queued" if deliver else "recorded"
    ALERT_EVENTS.labels(event.alertname, event.severity, result).inc()
    return row


def emit_in_background(event: PlatformEvent) -> threading.Thread | None:
    """Fire-and-forget for synchronous callers (operator handlers): never blocks or raises.

    Records and queues the event through ``KUBETRADE_DATABASE_URL``; it is queued for
    Alertmanager when ``KUBETRADE_ALERTMANAGER_URL`` is set (the API's dispatcher posts it).
    Without a database the event is only logged.
    """
    dsn = os.environ.get("KUBETRADE_DATABASE_URL")
    if not dsn:
        log.info("platform event (no database to record it)", extra={"alertname": event.alertname,
                                                                     "summary": event.summary})
        return None
    deliver = bool(alertmanager_urls())

    async def run() -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await raise_event(conn, event, deliver)

    def target() -> None:
        try:
            asyncio.run(run())
        except Exception as exc:  # an alert must never take a reconcile down
            log.warning("platform event not recorded", extra={"alertname": event.alertname,
                                                              "error": type(exc).__name__})

    thread = threading.Thread(target=target, name=f"alert-{event.alertname}", daemon=True)
    thread.start()
    return thread
