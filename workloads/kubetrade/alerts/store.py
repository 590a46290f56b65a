"""The ``alert_rules`` and ``alert_history`` tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

RULE_COLUMNS = ("id, name, namespace, metric, target, operator, threshold, severity, cooldown_seconds, enabled, "
                "firing, last_value, last_fired_at, created_at, updated_at")
_RULE_NAMES = [c.strip() for c in RULE_COLUMNS.split(",")]
HISTORY_COLUMNS = "id, time, source, rule_id, name, severity, status, namespace, target, value, message, labels"
_HISTORY_NAMES = [c.strip() for c in HISTORY_COLUMNS.split(",")]
EDITABLE = ("name", "namespace", "metric", "target", "operator", "threshold", "severity", "cooldown_seconds",
            "enabled")


def _rule(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(_RULE_NAMES, row, strict=True))


async def create(conn: Any, fields: dict[str, Any]) -> dict[str, Any]:
    cols = ", ".join(("id", *EDITABLE))
    cur = await conn.execute(
        f"INSERT INTO alert_rules ({cols}) VALUES ({', '.join(['%s'] * (len(EDITABLE) + 1))}) "  # noqa: S608
        f"RETURNING {RULE_COLUMNS}",
        (uuid.uuid4(), *(fields[c] for c in EDITABLE)),
    )
    return _rule(await cur.fetchone())


async def replace(conn: Any, rule_id: uuid.UUID, fields: dict[str, Any]) -> dict[str, Any] | None:
    """Replace a rule's definition; a changed condition starts afresh (not firing)."""
    sets = ", ".join(f"{c} = %s" for c in EDITABLE)
    cur = await conn.execute(
        f"UPDATE alert_rules SET {sets}, firing = false, last_value = NULL, updated_at = now() "  # noqa: S608
        f"WHERE id = %s RETURNING {RULE_COLUMNS}",
        (*(fields[c] for c in EDITABLE), rule_id),
    )
    row = await cur.fetchone()
    return None if row is None else _rule(row)


async def get(conn: Any, rule_id: uuid.UUID) -> dict[str, Any] | None:
    cur = await conn.execute(f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = %s", (rule_id,))  # noqa: S608
    row = await cur.fetchone()
    return None if row is None else _rule(row)


async def delete(conn: Any, rule_id: uuid.UUID) -> bool:
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


async def record(conn: Any, rule: dict[str, Any], decision: str, value: float, message: str, now: datetime
                 ) -> dict[str, Any]:
    """Remember the rule's new state and append to the history, in one transaction."""
    async with conn.transaction():
        await conn.execute(
            """UPDATE alert_rules SET firing = %s, last_value = %s,
                      last_fired_at = CASE WHEN %s THEN %s ELSE last_fired_at END WHERE id = %s""",
            (decision == "fire", value, decision == "fire", now, rule["id"]),
        )
        cur = await conn.execute(
            f"""INSERT INTO alert_history (time, source, rule_id, name, severity, status, namespace, target, value,
                                           message, labels)
                VALUES (%s, 'rule', %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {HISTORY_COLUMNS}""",  # noqa: S608
            (now, rule["id"], rule["name"], rule["severity"], "firing" if decision == "fire" else "resolved",
             rule["namespace"], rule["target"], value, message,
             Jsonb({"metric": rule["metric"], "operator": rule["operator"], "threshold": rule["threshold"]})),
        )
        return dict(zip(_HISTORY_NAMES, await cur.fetchone(), strict=True))


async def history(conn: Any, filters: dict[str, Any], limit: int, before: int | None) -> list[dict[str, Any]]:
    """Newest first; ``before`` is the id of the last row of the previous page."""
    cur = await conn.execute(
        f"""SELECT {HISTORY_COLUMNS} FROM alert_history
             WHERE (%(severity)s::text IS NULL OR severity = %(severity)s)
               AND (%(source)s::text IS NULL OR source = %(source)s)
               AND (%(status)s::text IS NULL OR status = %(status)s)
               AND (%(rule_id)s::uuid IS NULL OR rule_id = %(rule_id)s::uuid)
               AND (%(since)s::timestamptz IS NULL OR time >= %(since)s)
               AND (%(until)s::timestamptz IS NULL OR time < %(until)s)
               AND (%(before)s::bigint IS NULL OR id < %(before)s)
             ORDER BY id DESC LIMIT %(limit)s""",  # noqa: S608 - fixed column names
        {**{k: filters.get(k) for k in ("severity", "source", "status", "rule_id", "since", "until")},
         "before": before, "limit": limit},
    )
    return [dict(zip(_HISTORY_NAMES, r, strict=True)) for r in await cur.fetchall()]
