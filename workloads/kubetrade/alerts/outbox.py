"""The ``alert_outbox`` table: what Alertmanager must be told, kept until it has been.

Every alert kubetrade raises - a user rule firing or resolving, a platform event - is
written here in the same transaction as its history row, so nothing is sent that is not
recorded and nothing recorded is forgotten: Alertmanager down, the row waits and the
dispatcher (:mod:`kubetrade.alerts.dispatcher`) retries it with backoff until an
Alertmanager accepts it.  One row per label set (its Alertmanager fingerprint): a new
state of the same alert replaces the old one, as it does in Alertmanager.

A NOTIFY on :data:`CHANNEL` wakes the dispatcher at once; without it, it polls.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from kubetrade.alerts.notices import Notice

CHANNEL = "kubetrade_alert_outbox"
RESEND = timedelta(minutes=1)
"""A firing alert is posted again this often: an Alertmanager that restarted (it keeps no alerts
on disk) or joined the cluster learns of it, and its ``endsAt`` moves on."""
KEEP_RESOLVED = timedelta(minutes=15)
"""A resolved or expired alert is still re-posted this long, then forgotten (the history keeps it)."""

COLUMNS = ("fingerprint, labels, annotations, severity, history_id, starts_at, ends_at, resolved, hold_until, "
           "version, posted_version, posted_at, attempts, next_attempt_at, last_error")
_NAMES = [c.strip() for c in COLUMNS.split(",")]


def _row(row: Any) -> dict[str, Any]:
    return dict(row) if isinstance(row, dict) else dict(zip(_NAMES, row, strict=True))


async def put(conn: Any, notice: Notice, history_id: int | None, hold_until: datetime | None = None) -> str:
    """A new (firing) state of the alert with these labels; returns its fingerprint."""
    fp = notice.fingerprint
    await conn.execute(
        """INSERT INTO alert_outbox (fingerprint, labels, annotations, severity, history_id, starts_at, ends_at,
                                     resolved, hold_until)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (fingerprint) DO UPDATE SET
             labels = EXCLUDED.labels, annotations = EXCLUDED.annotations, severity = EXCLUDED.severity,
             history_id = EXCLUDED.history_id, starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,
             resolved = EXCLUDED.resolved, hold_until = EXCLUDED.hold_until,
             version = alert_outbox.version + 1, attempts = 0, next_attempt_at = now(), last_error = NULL,
             updated_at = now()""",
        (fp, Jsonb(notice.labels), Jsonb(notice.annotations), notice.severity, history_id, notice.starts_at,
         notice.ends_at, notice.resolved, hold_until),
    )
    await conn.execute(f"NOTIFY {CHANNEL}")
    return fp


async def resolve(conn: Any, fp: str, at: datetime, history_id: int | None) -> str:
    """Mark the alert resolved.  Returns what became of it:

    ``posted`` (Alertmanager will be told), ``suppressed`` (it never left: held by quiet hours,
    so its end is not news either) or ``unknown`` (no such alert waits).
    """
    cur = await conn.execute("SELECT posted_version, hold_until FROM alert_outbox WHERE fingerprint = %s FOR UPDATE",
                             (fp,))
    row = await cur.fetchone()
    if row is None:
        return "unknown"
    posted_version, hold_until = (row["posted_version"], row["hold_until"]) if isinstance(row, dict) else row
    if posted_version == 0 and hold_until is not None and hold_until > at:
        await conn.execute("DELETE FROM alert_outbox WHERE fingerprint = %s", (fp,))
        return "suppressed"
    await conn.execute(
        """UPDATE alert_outbox SET resolved = true, ends_at = %s, history_id = %s, hold_until = NULL,
                  version = version + 1, attempts = 0, next_attempt_at = now(), last_error = NULL, updated_at = now()
            WHERE fingerprint = %s""",
        (at, history_id, fp),
    )
    await conn.execute(f"NOTIFY {CHANNEL}")
    return "posted"


async def due(conn: Any, now: datetime, limit: int = 200, resend: timedelta = RESEND) -> list[dict[str, Any]]:
    """Rows to post now, most urgent first: changed since last accepted, or due for their re-post."""
    cur = await conn.execute(
        f"""SELECT {COLUMNS} FROM alert_outbox
             WHERE next_attempt_at <= %(now)s
               AND (hold_until IS NULL OR hold_until <= %(now)s)
               AND (posted_version < version
                    OR (posted_at < %(resend)s
                        AND (NOT resolved AND (ends_at IS NULL OR ends_at > %(now)s)
                             OR coalesce(ends_at, %(now)s) > %(keep)s)))
             ORDER BY CASE severity WHEN 'critical' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END DESC, updated_at
             LIMIT %(limit)s""",  # noqa: S608 - fixed column names
        {"now": now, "resend": now - resend, "keep": now - KEEP_RESOLVED, "limit": limit},
    )
    return [_row(r) for r in await cur.fetchall()]


async def posted(conn: Any, rows: list[dict[str, Any]], now: datetime) -> list[int]:
    """Alertmanager accepted these rows as read; returns the history ids handed over for the first time."""
    first = []
    for row in rows:
        cur = await conn.execute(
            """UPDATE alert_outbox SET posted_version = %s, posted_at = %s, attempts = 0, last_error = NULL
                WHERE fingerprint = %s AND version = %s RETURNING history_id""",
            (row["version"], now, row["fingerprint"], row["version"]),
        )
        got = await cur.fetchone()
        if got is not None and row["posted_version"] < row["version"] and row["history_id"] is not None:
            first.append(int(row["history_id"]))
    return first


async def failed(conn: Any, rows: list[dict[str, Any]], error: str, now: datetime,
                 backoff: Any) -> None:
    """No Alertmanager accepted these rows: try again after ``backoff(attempts)`` seconds."""
    for row in rows:
        attempts = int(row["attempts"]) + 1
        await conn.execute(
            """UPDATE alert_outbox SET attempts = %s, next_attempt_at = %s, last_error = %s
                WHERE fingerprint = %s AND version = %s""",
            (attempts, now + timedelta(seconds=backoff(attempts)), error[:500], row["fingerprint"], row["version"]),
        )


async def prune(conn: Any, now: datetime) -> int:
    """Forget alerts that ended and were posted more than :data:`KEEP_RESOLVED` ago."""
    cur = await conn.execute(
        """DELETE FROM alert_outbox
            WHERE posted_version = version AND (resolved OR ends_at IS NOT NULL) AND ends_at < %s""",
        (now - KEEP_RESOLVED,),
    )
    return int(cur.rowcount or 0)


async def pending(conn: Any) -> int:
    """Rows no Alertmanager has accepted in their current state (a gauge; held rows included)."""
    cur = await conn.execute("SELECT count(*) FROM alert_outbox WHERE posted_version < version")
    row = await cur.fetchone()
    return int(row["count"] if isinstance(row, dict) else row[0])
