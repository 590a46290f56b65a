"""Each channel's recent record, for ``GET /api/v1/alerts/channels``.

For the channels Alertmanager sends itself, kubetrade knows each notification from its copy
(:func:`kubetrade.alerts.receiver.copy`) and each integration's outcome only as
Alertmanager counts it (``alertmanager_notifications_total`` and
``alertmanager_notifications_failed_total`` by ``integration`` on its ``/metrics``; the
reasons are in its log).  For SMS, which kubetrade sends, every outcome and its reason is
in ``alert_deliveries``.  ``failing`` is whether ``KubetradeAlertChannelFailing`` fires for the
channel: raised by the SMS notifier, or by the Prometheus rule over Alertmanager's counters.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kubetrade.alerts.conditions import CHANNELS

log = logging.getLogger("kubetrade.alerts")

INTEGRATION = {"email": "email", "slack": "slack", "discord": "discord", "telegram": "telegram",
               "webhook": "webhook"}


async def alertmanager_counts(urls: list[str], wait: float = 3.0) -> dict[str, tuple[int, int]] | None:
    """(notifications, failed) per integration, summed over the Alertmanagers that answered; None if none did."""
    totals: dict[str, list[int]] = {}
    answered = False
    async with httpx.AsyncClient(timeout=wait) as client:
        for url in urls:
            try:
                resp = await client.get(f"{url}/metrics")
                resp.raise_for_status()
            except httpx.HTTPError as exc:
                log.info("alertmanager metrics unavailable", extra={"error": type(exc).__name__})
                continue
            answered = True
            for family in text_string_to_metric_families(resp.text):
                index = {"alertmanager_notifications": 0, "alertmanager_notifications_failed": 1}.get(family.name)
                if index is None:
                    continue
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        counts = totals.setdefault(sample.labels.get("integration", ""), [0, 0])
                        counts[index] += int(sample.value)
    return {k: (v[0], v[1]) for k, v in totals.items()} if answered else None


async def summary(conn: Any, urls: list[str], limits: dict[str, int]) -> list[dict[str, Any]]:
    cur = await conn.execute(
        """SELECT channel, max(received_at) AS last_notified_at,
                  count(*) FILTER (WHERE received_at > now() - interval '1 hour'
                                   AND state IN ('notified', 'sent')) AS notified,
                  count(*) FILTER (WHERE received_at > now() - interval '1 hour' AND state = 'failed') AS failed
             FROM alert_deliveries GROUP BY channel""")
    seen = {r[0]: r for r in await cur.fetchall()}
    cur = await conn.execute(
        """SELECT DISTINCT ON (channel) channel, error FROM alert_deliveries
            WHERE error IS NOT NULL ORDER BY channel, updated_at DESC""")
    errors = {r[0]: r[1] for r in await cur.fetchall()}
    cur = await conn.execute(
        """SELECT DISTINCT ON (target) target, status FROM alert_history
            WHERE name = 'KubetradeAlertChannelFailing' ORDER BY target, id DESC""")
    failing = {r[0] for r in await cur.fetchall() if r[1] == "firing"}
    counts = await alertmanager_counts(urls) if urls else None
    out = []
    for channel in CHANNELS:
        row = seen.get(channel)
        am = (counts or {}).get(INTEGRATION.get(channel, ""))
        out.append({
            "channel": channel,
            "sender": "kubetrade" if channel == "sms" else "alertmanager",
            "last_notified_at": row[1] if row else None,
            "notified_last_hour": int(row[2]) if row else 0,
            "failed_last_hour": int(row[3]) if row else 0,
            "last_error": errors.get(channel),
            "failing": channel in failing,
            "limit_per_hour": limits.get(channel),
            "alertmanager_notifications": am[0] if am else None,
            "alertmanager_failed": am[1] if am else None,
        })
    return out
