"""Platform events in the alert history: record once, then track their delivery.

The API lists the table (``GET /api/v1/alerts/history``, :func:`kubetrade.alerts.store.history`);
this module is the write side for events the platform raises itself (a promotion to live,
a goal reached).  Recording happens *before* sending, with the event's fingerprint as a
unique key, so a repeated event is neither recorded nor sent twice, and an Alertmanager
outage leaves a row marked ``failed`` that says what did not go out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from kubetrade.alerts.store import HISTORY_COLUMNS

_NAMES = [c.strip() for c in HISTORY_COLUMNS.split(",")]


async def record_event(conn: Any, *, name: str, severity: str, fingerprint: str, namespace: str | None,
                       target: str | None, message: str, labels: dict[str, str], time: datetime,
                       value: float | None = None) -> dict[str, Any] | None:
    """Insert a platform event (delivery 'pending'); None if one with this fingerprint exists."""
    cur = await conn.execute(
        f"""INSERT INTO alert_history (time, source, name, severity, status, namespace, target, value, message,
                                       labels, fingerprint, delivery)
            VALUES (%s, 'platform', %s, %s, 'firing', %s, %s, %s, %s, %s, %s, 'pending')
            ON CONFLICT (fingerprint) WHERE source = 'platform' AND fingerprint IS NOT NULL DO NOTHING
            RETURNING {HISTORY_COLUMNS}""",  # noqa: S608 - fixed column names
        (time, name, severity, namespace, target, value, message, Jsonb(labels), fingerprint),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return dict(row) if isinstance(row, dict) else dict(zip(_NAMES, row, strict=True))


async def mark_delivery(conn: Any, history_id: int, delivered: bool, error: str | None = None) -> None:
    await conn.execute(
        """UPDATE alert_history SET delivery = %s, delivered_at = CASE WHEN %s THEN now() END, delivery_error = %s
            WHERE id = %s""",
        ("delivered" if delivered else "failed", delivered, (error or None) and error[:500], history_id),
    )


async def undelivered(conn: Any, limit: int = 100) -> list[dict[str, Any]]:
    """Platform events whose sending failed or never finished, oldest first (for a retry)."""
    cur = await conn.execute(
        f"""SELECT {HISTORY_COLUMNS}, fingerprint FROM alert_history
             WHERE source = 'platform' AND delivery IN ('pending', 'failed') ORDER BY id LIMIT %s""",  # noqa: S608
        (limit,),
    )
    rows = await cur.fetchall()
    return [dict(r) if isinstance(r, dict) else dict(zip([*_NAMES, "fingerprint"], r, strict=True)) for r in rows]
