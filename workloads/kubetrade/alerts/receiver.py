"""What Alertmanager's webhooks tell kubetrade: every alert it handles, and each channel it notified.

Alertmanager posts its webhook payload (version 4: ``receiver``, ``status``, ``groupKey``,
``alerts`` with ``fingerprint``, ``startsAt``, ``endsAt``; see the webhook_config section of
https://prometheus.io/docs/alerting/latest/configuration/) to three kinds of kubetrade
endpoints (``kubetrade.api.routes.alertreceiver``):

* the record route (every alert, ``continue: true`` at the top of the routing tree):
  :func:`record` adds what the history does not know yet - a Prometheus rule's alert;
* a copy beside each channel's own integration in the channel's receiver: :func:`copy`
  keeps which channel was notified of which alerts, and when (Alertmanager's e-mail, Slack,
  Discord, Telegram and webhook integrations send the message themselves);
* the SMS receiver: :func:`enqueue_sms` queues one message per recipient for the SMS
  notifier (:mod:`kubetrade.alerts.sms`), which sends it through Twilio.

A notification Alertmanager sends again - a retry after a lost answer, or the second
replica of a cluster that did not hear of the first's in time - carries the same group,
status and alerts: :func:`dedupe_key` is the same and, within :data:`DEDUPE_WINDOW`, it is
recorded and sent once.  A repeat after the route's repeat interval (an hour or more) is a
new notification, as Alertmanager means it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kubetrade.alerts import history
from kubetrade.alerts.conditions import SEVERITY_RANK

SMS_NOTIFY = "kubetrade_sms"
DEDUPE_WINDOW = timedelta(minutes=10)
"""Shorter than any route's repeat interval, longer than Alertmanager's retries and its peers' wait."""
SMS_MAX_CHARS = 320
"""Two SMS segments of GSM-7 text."""


class ReportedAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    fingerprint: Annotated[str, Field(pattern=r"^[0-9a-f]{1,16}$")]


class Notification(BaseModel):
    """Alertmanager's webhook payload (version 4)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    alerts: Annotated[list[ReportedAlert], Field(min_length=1, max_length=1000)]

    @property
    def severity(self) -> str:
        """The most severe alert's severity."""
        return max((a.labels.get("severity", "info") for a in self.alerts),
                   key=lambda s: SEVERITY_RANK.get(s, 0))


def dedupe_key(note: Notification) -> str:
    """Equal for Alertmanager's retries and its replicas' copies of one notification."""
    parts = [note.receiver, note.groupKey, note.status]
    for a in sorted(note.alerts, key=lambda a: a.fingerprint):
        end = a.endsAt.isoformat() if a.status == "resolved" and a.endsAt else ""
        parts.append(f"{a.fingerprint}|{a.status}|{a.startsAt.isoformat()}|{end}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


async def _seen(conn: Any, channel: str, key: str, window: timedelta) -> bool:
    """Whether this notification was recorded for the channel within the window (serialised per key)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{channel}:{key}",))
    cur = await conn.execute(
        """SELECT 1 FROM alert_deliveries WHERE dedupe_key = %s AND channel = %s
            AND received_at > now() - %s::interval LIMIT 1""",
        (key, channel, f"{int(window.total_seconds())} seconds"),
    )
    return await cur.fetchone() is not None


async def _insert(conn: Any, note: Notification, channel: str, sender: str, key: str, state: str,
                  recipient: str | None = None, body: str | None = None, sent: bool = False) -> int:
    cur = await conn.execute(
        """INSERT INTO alert_deliveries (channel, sender, receiver, dedupe_key, group_key, status, severity, priority,
                                         state, recipient, body, next_attempt_at, sent_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN NULL ELSE now() END,
                   CASE WHEN %s THEN now() END)
           RETURNING id""",
        (channel, sender, note.receiver[:200], key, note.groupKey[:1000], note.status, note.severity,
         SEVERITY_RANK.get(note.severity, 0), state, recipient, body, sent, sent),
    )
    row = await cur.fetchone()
    delivery_id = int(row["id"] if isinstance(row, dict) else row[0])
    for a in note.alerts:
        await conn.execute(
            """INSERT INTO alert_delivery_alerts (delivery_id, fingerprint, status, starts_at, alertname)
               VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
            (delivery_id, a.fingerprint, a.status, a.startsAt, a.labels.get("alertname", "")[:200]),
        )
    return delivery_id


async def record(conn: Any, note: Notification) -> int:
    """The record route: transitions the history does not know yet; returns how many were added."""
    async with conn.transaction():
        return await history.record_reported(conn, [
            {"status": a.status, "labels": a.labels, "annotations": a.annotations, "startsAt": a.startsAt,
             "endsAt": a.endsAt, "fingerprint": a.fingerprint} for a in note.alerts])


async def copy(conn: Any, channel: str, note: Notification, window: timedelta = DEDUPE_WINDOW) -> int | None:
    """Alertmanager notified ``channel`` of these alerts; the delivery's id, or None for a repeat within the window."""
    key = dedupe_key(note)
    async with conn.transaction():
        if await _seen(conn, channel, key, window):
            return None
        return await _insert(conn, note, channel, "alertmanager", key, "notified", sent=True)


def sms_body(note: Notification) -> str:
    """One short text for the notification: status, the first alerts' summaries, how many more."""
    head = f"[{note.status.upper()}" + (f":{len(note.alerts)}" if len(note.alerts) > 1 else "") + "] "
    lines = []
    for a in note.alerts[:3]:
        summary = a.annotations.get("summary") or a.labels.get("alertname", "alert")
        lines.append(f"{a.labels.get('severity', '')} {summary}".strip())
    more = len(note.alerts) - 3 + note.truncatedAlerts
    if more > 0:
        lines.append(f"+{more} more")
    return (head + "\n".join(lines))[:SMS_MAX_CHARS - 16]


def marker(delivery_id: int) -> str:
    """The end of every SMS body: finds the message at Twilio again after a lost answer."""
    return f" (kt {delivery_id})"


async def enqueue_sms(conn: Any, note: Notification, recipients: list[str],
                      window: timedelta = DEDUPE_WINDOW) -> list[int]:
    """Queue one SMS per recipient for the notifier; [] for a repeat within the window."""
    key = dedupe_key(note)
    text = sms_body(note)
    ids = []
    async with conn.transaction():
        if await _seen(conn, "sms", key, window):
            return []
        for to in recipients:
            delivery_id = await _insert(conn, note, "sms", "kubetrade", key, "queued", recipient=to)
            await conn.execute("UPDATE alert_deliveries SET body = %s WHERE id = %s",
                               (text + marker(delivery_id), delivery_id))
            ids.append(delivery_id)
        await conn.execute(f"NOTIFY {SMS_NOTIFY}")
    return ids


def masked(number: str | None) -> str | None:
    """A phone number as the API shows it: country code and last two digits."""
    if not number:
        return number
    return number[:3] + "…" + number[-2:] if len(number) > 6 else "…"
