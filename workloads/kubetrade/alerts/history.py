"""The write side of ``alert_history``: every alert raised or resolved, and its hand-over to Alertmanager.

Three sources write here, each in one transaction with the alert's row in the outbox
(:mod:`kubetrade.alerts.outbox`), so an alert is recorded exactly when it is queued for
Alertmanager:

* a user rule firing or resolving (:func:`record_rule`, called by the evaluator);
* a platform event (:func:`record_event`: a promotion, a goal reached, a breaker trip, a
  failing channel), recorded once per ``event_key`` - raised twice, it is sent once;
* an alert Alertmanager reports that kubetrade did not raise, i.e. a Prometheus rule's
  (:func:`record_reported`, from the record webhook).

``delivery`` is the hand-over to Alertmanager (none, pending, accepted, failed, held,
suppressed); what each channel was sent is in ``alert_deliveries``.  The API lists both
(``GET /api/v1/alerts/history``, :mod:`kubetrade.alerts.store`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from kubetrade.alerts import outbox
from kubetrade.alerts.conditions import parse_quiet_hours, rate_limited
from kubetrade.alerts.notices import Notice, rule_labels

HISTORY_COLUMNS = ("id, time, source, rule_id, name, severity, status, namespace, target, value, message, labels, "
                   "fingerprint, starts_at, delivery, delivered_at, delivery_error")
_NAMES = [c.strip() for c in HISTORY_COLUMNS.split(",")]
SENT_STATES = ("notified", "queued", "sending", "sent")


def as_row(row: Any, names: list[str] = _NAMES) -> dict[str, Any]:
    return dict(row) if isinstance(row, dict) else dict(zip(names, row, strict=True))


async def _insert(conn: Any, *, time: datetime, source: str, name: str, severity: str, status: str,
                  namespace: str | None, target: str | None, value: float | None, message: str,
                  labels: dict[str, Any], fingerprint: str | None, starts_at: datetime | None, delivery: str,
                  rule_id: Any = None, event_key: str | None = None) -> dict[str, Any] | None:
    cur = await conn.execute(
        f"""INSERT INTO alert_history (time, source, rule_id, name, severity, status, namespace, target, value,
                                       message, labels, fingerprint, starts_at, delivery, event_key)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT DO NOTHING
            RETURNING {HISTORY_COLUMNS}""",  # noqa: S608 - fixed column names
        (time, source, rule_id, name, severity, status, namespace, target, value, message, Jsonb(labels),
         fingerprint, starts_at, delivery, event_key),
    )
    row = await cur.fetchone()
    return None if row is None else as_row(row)


async def sent_last_hour(conn: Any) -> dict[str, int]:
    """Notifications per channel in the last hour (sent, or on their way): what rate limits count."""
    cur = await conn.execute(
        """SELECT channel, count(*) FROM alert_deliveries
            WHERE received_at > now() - interval '1 hour' AND state = ANY(%s) GROUP BY channel""",
        (list(SENT_STATES),),
    )
    return {r[0] if not isinstance(r, dict) else r["channel"]: int(r[1] if not isinstance(r, dict) else r["count"])
            for r in await cur.fetchall()}


async def record_rule(conn: Any, rule: dict[str, Any], decision: str, value: float, message: str, now: datetime,
                      *, deliver: bool, limits: dict[str, int] | None = None) -> dict[str, Any]:
    """A rule fired or resolved: its new state, the history row and the outbox, in one transaction.

    On firing, the alert's labels are decided once: the rule's channels less those over their
    hourly limit (:func:`kubetrade.alerts.conditions.rate_limited`); within the rule's quiet hours
    the alert waits in the outbox until they end.  ``deliver`` False (no Alertmanager configured)
    records only.
    """
    async with conn.transaction():
        await conn.execute(
            """UPDATE alert_rules SET firing = %s, last_value = %s,
                      last_fired_at = CASE WHEN %s THEN %s ELSE last_fired_at END WHERE id = %s""",
            (decision == "fire", value, decision == "fire", now, rule["id"]),
        )
        base = {"metric": rule["metric"], "operator": rule["operator"], "threshold": rule["threshold"]}
        annotations = {"summary": message, "description": f"value {value:g}"}
        if decision == "fire":
            wanted = list(rule.get("channels") or [])
            kept, dropped = rate_limited(wanted, rule["severity"], await sent_last_hour(conn), limits or {})
            labels = rule_labels(rule, kept)
            notice = Notice(labels, annotations, rule["severity"], now)
            quiet = parse_quiet_hours(rule.get("quiet_hours"))
            hold = quiet.until(now) if quiet else None
            delivery = "none" if not deliver else "held" if hold else "pending"
            row = await _insert(conn, time=now, source="rule", rule_id=rule["id"], name=rule["name"],
                                severity=rule["severity"], status="firing", namespace=rule["namespace"],
                                target=rule["target"], value=value, message=message,
                                labels={**base, **labels, **({"rate_limited": dropped} if dropped else {})},
                                fingerprint=notice.fingerprint, starts_at=now, delivery=delivery)
            assert row is not None  # a new start time: no transition of this alert exists yet
            if deliver:
                await outbox.put(conn, notice, row["id"], hold_until=hold)
            return row
        cur = await conn.execute(
            """SELECT fingerprint, starts_at, labels FROM alert_history
                WHERE rule_id = %s AND status = 'firing' ORDER BY id DESC LIMIT 1""",
            (rule["id"],),
        )
        last = await cur.fetchone()
        fp, started, labels = (None, None, {}) if last is None else (
            (last["fingerprint"], last["starts_at"], last["labels"]) if isinstance(last, dict) else last)
        row = await _insert(conn, time=now, source="rule", rule_id=rule["id"], name=rule["name"],
                            severity=rule["severity"], status="resolved", namespace=rule["namespace"],
                            target=rule["target"], value=value, message=message, labels=labels or base,
                            fingerprint=fp, starts_at=started, delivery="none" if not deliver else "pending")
        assert row is not None
        if deliver and fp is not None:
            outcome = await outbox.resolve(conn, fp, now, row["id"])
            if outcome == "suppressed":  # fired and resolved within quiet hours: neither is sent
                await conn.execute(
                    "UPDATE alert_history SET delivery = 'suppressed' WHERE fingerprint = %s AND starts_at = %s",
                    (fp, started))
                row["delivery"] = "suppressed"
            elif outcome == "unknown":
                await set_delivery(conn, [row["id"]], "none")
                row["delivery"] = "none"
        return row


async def record_event(conn: Any, *, name: str, severity: str, event_key: str, namespace: str | None,
                       target: str | None, message: str, labels: dict[str, str], time: datetime,
                       value: float | None = None, notice: Notice | None = None,
                       resolves: bool = False) -> dict[str, Any] | None:
    """A platform event: recorded (and queued when ``notice``) once per ``event_key``; None if seen before.

    ``resolves`` marks the end of a lasting event (a breaker closed): the alert with the same
    labels is resolved rather than raised.
    """
    async with conn.transaction():
        started = None if notice is None else notice.starts_at
        if resolves and notice is not None:
            cur = await conn.execute(
                """SELECT starts_at FROM alert_history WHERE fingerprint = %s AND status = 'firing'
                    ORDER BY id DESC LIMIT 1""", (notice.fingerprint,))
            last = await cur.fetchone()
            started = None if last is None else (last["starts_at"] if isinstance(last, dict) else last[0])
        row = await _insert(conn, time=time, source="platform", name=name, severity=severity,
                            status="resolved" if resolves else "firing", namespace=namespace, target=target,
                            value=value, message=message, labels=labels, event_key=event_key,
                            fingerprint=notice.fingerprint if notice else None, starts_at=started,
                            delivery="pending" if notice else "none")
        if row is None or notice is None:
            return row
        if not resolves:
            await outbox.put(conn, notice, row["id"])
        elif await outbox.resolve(conn, notice.fingerprint, time, row["id"]) != "posted":
            await set_delivery(conn, [row["id"]], "none")
            row["delivery"] = "none"
        return row


async def record_reported(conn: Any, alerts: list[dict[str, Any]]) -> int:
    """Alerts Alertmanager reports (the record webhook): a transition not in the history yet is
    added, as ``prometheus`` unless the history knows the alert from another source; returns how many."""
    added = 0
    for a in alerts:
        labels = a["labels"]
        status = a["status"]
        started = a["startsAt"]
        cur = await conn.execute(
            "SELECT source, rule_id FROM alert_history WHERE fingerprint = %s ORDER BY id DESC LIMIT 1",
            (a["fingerprint"],))
        known = await cur.fetchone()
        source, rule_id = ("prometheus", None) if known is None else (
            (known["source"], known["rule_id"]) if isinstance(known, dict) else known)
        target = next((labels[k] for k in ("channel", "strategy", "goal", "collector", "policy", "target", "instance")
                       if k in labels), None)
        row = await _insert(conn, time=a["endsAt"] if status == "resolved" else started, source=source,
                            rule_id=rule_id, name=labels.get("alertname", ""), severity=labels.get("severity", "none"),
                            status=status, namespace=labels.get("namespace"), target=target, value=None,
                            message=a.get("annotations", {}).get("summary", ""), labels=labels,
                            fingerprint=a["fingerprint"], starts_at=started, delivery="accepted")
        added += row is not None
    return added


async def set_delivery(conn: Any, ids: list[int], delivery: str, error: str | None = None) -> None:
    """The hand-over state of history rows (``accepted`` stamps ``delivered_at``)."""
    if not ids:
        return
    await conn.execute(
        """UPDATE alert_history SET delivery = %s,
                  delivered_at = CASE WHEN %s = 'accepted' THEN coalesce(delivered_at, now()) ELSE delivered_at END,
                  delivery_error = %s
            WHERE id = ANY(%s)""",
        (delivery, delivery, (error or None) and error[:500], ids),
    )


async def undelivered(conn: Any, limit: int = 100) -> list[dict[str, Any]]:
    """History rows not yet accepted by an Alertmanager (pending, failed, held), oldest first."""
    cur = await conn.execute(
        f"""SELECT {HISTORY_COLUMNS} FROM alert_history
             WHERE delivery IN ('pending', 'failed', 'held') ORDER BY id LIMIT %s""",  # noqa: S608
        (limit,),
    )
    return [as_row(r) for r in await cur.fetchall()]
