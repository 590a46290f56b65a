"""The one path to Alertmanager: the outbox posted to every Alertmanager, and platform events from NATS.

The dispatcher runs in the API (one leader among the replicas, :mod:`kubetrade.alerts.leader`):

* it posts what the outbox holds (:func:`kubetrade.alerts.outbox.due`: new states at once,
  woken by NOTIFY; firing alerts again every minute) to every configured Alertmanager, most
  severe first; accepted by one, the rows are done; refused or unreachable by all, they are
  retried with backoff (0.5 s doubling to 30 s) for as long as it takes - Alertmanager down
  loses nothing, and because an alert's labels never change, Alertmanager takes a re-post
  or a post from another replica as the same alert: nothing is notified twice;
* it follows ``events.alerts.>`` on JetStream (durable consumer ``kubetrade-alert-dispatcher``,
  acknowledged only once recorded) for platform events other workloads publish - the risk
  manager's breaker - and records and queues each once per key; a message that does not
  parse goes to ``dlq.<subject>`` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge

from kubetrade.alerts import history, leader, notices, outbox
from kubetrade.alerts.alertmanager import AlertmanagerClient, AlertmanagerError, PlatformEvent, raise_event
from kubetrade.messaging import codec
from kubetrade.messaging.schemas import AlertEvent
from kubetrade.messaging.streams import ensure_streams

log = logging.getLogger("kubetrade.alerts.dispatcher")

POSTS = Counter("kubetrade_alertmanager_posts_total",
                "Posts of alerts to Alertmanager by the dispatcher, by result (accepted, failed, refused).", ["result"])
OUTBOX_PENDING = Gauge("kubetrade_alert_outbox_pending",
                       "Alerts whose current state no Alertmanager has accepted yet (held by quiet hours included).")
PLATFORM_SUBJECT = "events.alerts.>"
DURABLE = "kubetrade-alert-dispatcher"
POLL_SECONDS = 1.0


def backoff(attempts: int) -> float:
    return float(min(30.0, 0.5 * 2 ** (attempts - 1)))


def platform_event(event: AlertEvent) -> PlatformEvent:
    """A platform event published on NATS, as the dispatcher records it."""
    assert event.alertname is not None and event.key is not None
    labels = dict(event.labels)
    if event.namespace and "namespace" not in labels:
        labels["namespace"] = event.namespace
    return PlatformEvent(
        alertname=event.alertname, severity=event.severity, summary=event.message or event.name, key=event.key,
        labels=labels, description=event.description, time=datetime.fromtimestamp(event.time / 1000, UTC),
        value=event.value, ttl=timedelta(seconds=event.expires_seconds) if event.expires_seconds else None,
        resolves=event.status == "resolved",
    )


class Dispatcher:
    def __init__(self, pool: Any, nats: Any, dsn: str, urls: list[str], *, timeout: float = 5.0) -> None:
        self.pool = pool
        self.nats = nats
        self.dsn = dsn
        self.client = AlertmanagerClient(urls, timeout=timeout)
        self.wake = asyncio.Event()
        self.resend = outbox.RESEND
        """How often a firing alert is posted again."""
        self._pruned = 0.0

    async def run(self) -> None:
        await leader.lead(self.dsn, leader.DISPATCHER_LOCK, "alert dispatcher", self._lead)

    async def _lead(self, lock: Any) -> None:
        await lock.execute(f"LISTEN {outbox.CHANNEL}")
        tasks = [asyncio.create_task(self._listen(lock), name="alert-outbox-listen")]
        if self.nats is not None:
            tasks.append(asyncio.create_task(self._follow_platform_events(), name="alert-platform-events"))
        try:
            while True:
                for task in tasks:
                    if task.done():
                        task.result()  # a listener that died takes the leadership down with it: start again
                await self.flush()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)
                self.wake.clear()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _listen(self, lock: Any) -> None:
        """NOTIFY wakes the flush; a silent connection is checked every 10 s (it carries the lock)."""
        while True:
            async for _ in lock.notifies(timeout=10.0):
                self.wake.set()
            await leader.alive(lock)

    async def flush(self, now: datetime | None = None) -> int:
        """Post every due row once; returns how many an Alertmanager accepted."""
        now = now or datetime.now(UTC)
        async with self.pool.connection() as conn:
            rows = await outbox.due(conn, now, resend=self.resend)
            if now.timestamp() - self._pruned > 60:
                await outbox.prune(conn, now)
                self._pruned = now.timestamp()
                OUTBOX_PENDING.set(await outbox.pending(conn))
        if not rows:
            return 0
        accepted = 0
        for batch in [rows[i:i + 100] for i in range(0, len(rows), 100)]:
            accepted += await self._post(batch, now)
        return accepted

    async def _post(self, rows: list[dict[str, Any]], now: datetime) -> int:
        body = [notices.payload(r["labels"], r["annotations"], r["starts_at"], r["ends_at"], r["resolved"], now)
                for r in rows]
        try:
            partial = await self.client.post_alerts(body)
        except AlertmanagerError as exc:
            if exc.permanent and len(rows) > 1:  # one bad alert must not hold back the others
                return sum([await self._post([r], now) for r in rows])
            POSTS.labels("refused" if exc.permanent else "failed").inc()
            log.warning("alerts not accepted by any Alertmanager",
                        extra={"alerts": len(rows), "error": str(exc)[:300], "permanent": exc.permanent})
            async with self.pool.connection() as conn:
                # a refused alert will not become acceptable by waiting: retry it rarely, the others soon
                await outbox.failed(conn, rows, str(exc), now, (lambda _: 3600.0) if exc.permanent else backoff)
                await history.set_delivery(conn, [int(r["history_id"]) for r in rows if r["history_id"] is not None
                                                  and r["posted_version"] < r["version"]], "failed", str(exc))
            return 0
        POSTS.labels("accepted").inc()
        if partial:
            log.info("an Alertmanager did not accept alerts the others did", extra={"error": "; ".join(partial)[:300]})
        async with self.pool.connection() as conn:
            first = await outbox.posted(conn, rows, now)
            await history.set_delivery(conn, first, "accepted")
        return len(rows)

    async def _follow_platform_events(self) -> None:
        js = self.nats.jetstream()
        await ensure_streams(js, ("EVENTS", "DLQ"))
        # a new consumer starts ten minutes back, not at the stream's 30 days of old news
        start = datetime.now(UTC) - timedelta(minutes=10)
        config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.BY_START_TIME,
                                opt_start_time=start, ack_wait=30, max_ack_pending=1000)
        sub = await js.pull_subscribe(PLATFORM_SUBJECT, durable=DURABLE, stream="EVENTS", config=config)
        while True:
            try:
                messages = await sub.fetch(50, timeout=1.0)
            except NatsTimeout:
                continue
            except Exception as exc:  # NATS reconnecting: the durable consumer keeps our place
                log.warning(f"platform events: fetch failed ({type(exc).__name__})", extra={"error": str(exc)[:200]})
                await asyncio.sleep(0.5)
                continue
            for msg in messages:
                await self._platform_message(msg)

    async def _platform_message(self, msg: Any) -> None:
        try:
            event = codec.decode(AlertEvent, msg.data)
        except codec.BadMessage as exc:
            log.warning("platform event dead-lettered", extra={"subject": msg.subject, "error": str(exc)[:300]})
            await codec.dead_letter(self.nats, msg.subject, msg.data, str(exc))
            await msg.ack()
            return
        if event.source != "platform":  # a rule's alert: the evaluator queued it before publishing it
            await msg.ack()
            return
        try:
            async with self.pool.connection() as conn:
                await raise_event(conn, platform_event(event), deliver=True)
        except Exception as exc:  # the database is down: JetStream redelivers it
            log.warning("platform event not recorded yet", extra={"error": type(exc).__name__})
            await msg.nak(delay=2.0)
            return
        await msg.ack()
        self.wake.set()
