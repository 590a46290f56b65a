"""The ``alert_rules`` table, and the reads of ``alert_history`` and ``alert_deliveries`` the API lists."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from kubetrade.alerts import history as history_log
from kubetrade.alerts.history import HISTORY_COLUMNS, as_row

RULE_COLUMNS = ("id, name, namespace, metric, target, operator, threshold, severity, cooldown_seconds, enabled, "
                "channels, quiet_hours, firing, last_value, last_fired_at, created_at, updated_at")
_RULE_NAMES = [c.strip() for c in RULE_COLUMNS.split(",")]
_HISTORY_NAMES = [c.strip() for c in HISTORY_COLUMNS.split(",")]
EDITABLE = ("name", "namespace", "metric", "target", "operator", "threshold", "severity", "cooldown_seconds",
            "enabled", "channels", "quiet_hours")
DELIVERY_COLUMNS = ("id, channel, sender, receiver, status, severity, state, recipient, attempts, next_attempt_at, "
                    "sent_at, provider_id, error, received_at, updated_at")
_DELIVERY_NAMES = [c.strip() for c in DELIVERY_COLUMNS.split(",")]


def _rule(row: Any) -> dict[str, Any]:
    out = as_row(row, _RULE_NAMES)
    out["channels"] = list(out.get("channels") or [])
    return out


def _values(fields: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(Jsonb(fields[c]) if c == "quiet_hours" and fields[c] is not None else fields[c] for c in EDITABLE)


async def create(conn: Any, fields: dict[str, Any]) -> dict[str, Any]:
    cols = ", ".join(("id", *EDITABLE))
    cur = await conn.execute(
        f"INSERT INTO alert_rules ({cols}) VALUES ({', '.join(['%s'] * (len(EDITABLE) + 1))}) "  # noqa: S608
        f"RETURNING {RULE_COLUMNS}",
        (uuid.uuid4(), *_values(fields)),
    )
    return _rule(await cur.fetchone())


async def _resolve_if_firing(conn: Any, rule_id: uuid.UUID, why: str, deliver: bool) -> None:
    """A firing rule that is replaced or deleted: its alert ends now (Alertmanager is told)."""
    rule = await get(conn, rule_id, lock=True)
    if rule is None or not rule["firing"]:
        return
    value = rule["last_value"] if rule["last_value"] is not None else rule["threshold"]
    await history_log.record_rule(conn, rule, "resolve", value, f"{rule['name']}: {why}", datetime.now(UTC),
                              deliver=deliver)


async def replace(conn: Any, rule_id: uuid.UUID, fields: dict[str, Any], deliver: bool = False
                  ) -> dict[str, Any] | None:
    """Replace a rule's definition; a changed condition starts afresh (its alert, if firing, resolves)."""
    sets = ", ".join(f"{c} = %s" for c in EDITABLE)
    async with conn.transaction():
        await _resolve_if_firing(conn, rule_id, "the rule was replaced", deliver)
        cur = await conn.execute(
            f"UPDATE alert_rules SET {sets}, firing = false, last_value = NULL, updated_at = now() "  # noqa: S608
            f"WHERE id = %s RETURNING {RULE_COLUMNS}",
            (*_values(fields), rule_id),
        )
        row = await cur.fetchone()
    return None if row is None else _rule(row)


async def get(conn: Any, rule_id: uuid.UUID, lock: bool = False) -> dict[str, Any] | None:
    cur = await conn.execute(f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = %s"  # noqa: S608
                             + (" FOR UPDATE" if lock else ""), (rule_id,))
    row = await cur.fetchone()
    return None if row is None else _rule(row)


async def delete(conn: Any, rule_id: uuid.UUID, deliver: bool = False) -> bool:
    async with conn.transaction():
        await _resolve_if_firing(conn, rule_id, "the rule was deleted", deliver)
        cur = await conn.execute("DELETE FROM alert_rules WHERE id = %s", (rule_id,))
    return bool(cur.rowcount)


async def listing(conn: Any, filters: dict[str, Any], limit: int, after: uuid.UUID | None) -> list[dict[str, Any]]:
    where = " AND ".join(f"(%({k})s::{t} IS NULL OR {k} = %({k})s::{t})"
                         for k, t in (("namespace", "text"), ("metric", "text"), ("target", "text"),
                                      ("severity", "text"), ("enabled", "boolean"), ("firing", "boolean")))
    cur = await conn.execute(
        f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE {where} "  # noqa: S608 - fixed column names
        "AND (%(after)s::uuid IS NULL OR id > %(after)s::uuid) ORDER BY id LIMIT %(limit)s",
        {**{k: filters.get(k) for k in ("namespace", "metric", "target", "severity", "enabled", "firing")},
         "after": after, "limit": limit},
    )
    return [_rule(r) for r in await cur.fetchall()]


async def enabled_rules(conn: Any) -> list[dict[str, Any]]:
    cur = await conn.execute(f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE enabled")  # noqa: S608
    return [_rule(r) for r in await cur.fetchall()]


async def history_rows(conn: Any, filters: dict[str, Any], limit: int, before: int | None) -> list[dict[str, Any]]:
    """Newest first; ``before`` is the id of the last row of the previous page."""
    cur = await conn.execute(
        f"""SELECT {HISTORY_COLUMNS} FROM alert_history h
             WHERE (%(severity)s::text IS NULL OR severity = %(severity)s)
               AND (%(source)s::text IS NULL OR source = %(source)s)
               AND (%(status)s::text IS NULL OR status = %(status)s)
               AND (%(rule_id)s::uuid IS NULL OR rule_id = %(rule_id)s::uuid)
               AND (%(since)s::timestamptz IS NULL OR time >= %(since)s)
               AND (%(until)s::timestamptz IS NULL OR time < %(until)s)
               AND (%(before)s::bigint IS NULL OR id < %(before)s)
               AND (%(channel)s::text IS NULL OR EXISTS (
                    SELECT 1 FROM alert_delivery_alerts a JOIN alert_deliveries d ON d.id = a.delivery_id
                     WHERE a.fingerprint = h.fingerprint AND a.starts_at = h.starts_at AND a.status = h.status
                       AND d.channel = %(channel)s))
             ORDER BY id DESC LIMIT %(limit)s""",  # noqa: S608 - fixed column names
        {**{k: filters.get(k) for k in ("severity", "source", "status", "rule_id", "since", "until", "channel")},
         "before": before, "limit": limit},
    )
    return [as_row(r, _HISTORY_NAMES) for r in await cur.fetchall()]


async def history(conn: Any, filters: dict[str, Any], limit: int, before: int | None) -> list[dict[str, Any]]:
    """History rows, each with the deliveries of its transition (``deliveries``, oldest first)."""
    rows = await history_rows(conn, filters, limit, before)
    keyed = [(r["fingerprint"], r["starts_at"], r["status"]) for r in rows if r["fingerprint"] is not None]
    found: dict[tuple[Any, Any, Any], list[dict[str, Any]]] = {}
    if keyed:
        cur = await conn.execute(
            f"""SELECT a.fingerprint, a.starts_at, a.status, {', '.join('d.' + c for c in _DELIVERY_NAMES)}
                  FROM alert_delivery_alerts a JOIN alert_deliveries d ON d.id = a.delivery_id
                 WHERE (a.fingerprint, a.starts_at, a.status) IN (SELECT * FROM unnest(%s::text[], %s::timestamptz[],
                                                                                      %s::text[]))
                 ORDER BY d.id""",  # noqa: S608 - fixed column names
            ([k[0] for k in keyed], [k[1] for k in keyed], [k[2] for k in keyed]),
        )
        for r in await cur.fetchall():
            r = as_row(r, ["fingerprint", "starts_at", "status_", *_DELIVERY_NAMES])
            found.setdefault((r.pop("fingerprint"), r.pop("starts_at"), r.pop("status_")), []).append(r)
    for r in rows:
        r["deliveries"] = found.get((r["fingerprint"], r["starts_at"], r["status"]), [])
    return rows


async def deliveries(conn: Any, filters: dict[str, Any], limit: int, before: int | None) -> list[dict[str, Any]]:
    """Notifications sent or queued, newest first, each with the alerts it carried."""
    cur = await conn.execute(
        f"""SELECT {DELIVERY_COLUMNS} FROM alert_deliveries
             WHERE (%(channel)s::text IS NULL OR channel = %(channel)s)
               AND (%(state)s::text IS NULL OR state = %(state)s)
               AND (%(before)s::bigint IS NULL OR id < %(before)s)
             ORDER BY id DESC LIMIT %(limit)s""",  # noqa: S608 - fixed column names
        {"channel": filters.get("channel"), "state": filters.get("state"), "before": before, "limit": limit},
    )
    rows = [as_row(r, _DELIVERY_NAMES) for r in await cur.fetchall()]
    if rows:
        cur = await conn.execute(
            """SELECT delivery_id, fingerprint, status, starts_at, alertname FROM alert_delivery_alerts
                WHERE delivery_id = ANY(%s) ORDER BY delivery_id, alertname""", ([r["id"] for r in rows],))
        alerts: dict[int, list[dict[str, Any]]] = {}
        for a in await cur.fetchall():
            a = as_row(a, ["delivery_id", "fingerprint", "status", "starts_at", "alertname"])
            alerts.setdefault(a.pop("delivery_id"), []).append(a)
        for r in rows:
            r["alerts"] = alerts.get(r["id"], [])
    return rows
