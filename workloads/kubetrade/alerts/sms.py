"""The SMS notifier: the queue Alertmanager's SMS webhook fills, sent through Twilio.

Alertmanager has no SMS integration of its own; its ``kubetrade-sms`` receiver posts to the
API (:mod:`kubetrade.api.routes.alertreceiver`), which queues one message per recipient in
``alert_deliveries`` and answers at once (:func:`kubetrade.alerts.receiver.enqueue_sms`).
This loop - one leader among the API replicas - sends them:

* most severe first, then oldest (:data:`~kubetrade.alerts.conditions.SEVERITY_RANK`);
* at most ``limit_per_hour`` messages an hour, except critical ones, which always go: a
  warning or info message beyond the limit is recorded ``rate_limited`` and not sent;
* before each attempt the row is marked ``sending`` (committed): if the process dies while
  Twilio answers, or an answer is lost, the next attempt first looks the message up at
  Twilio by the marker its body ends with (:func:`kubetrade.alerts.receiver.marker`) and
  sends it only if it is not there - a restart or a retry never sends twice;
* 429 and 5xx are retried after the provider's ``Retry-After`` or an exponential backoff
  (1 s doubling to 5 min), up to ``max_attempts``; any other refusal (a wrong credential,
  a bad number) fails at once with Twilio's code and message.  A message that fails for good
  raises ``KubetradeAlertChannelFailing{channel="sms"}`` (through Alertmanager to the other
  channels); the next message sent resolves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter

from kubetrade.alerts import leader, receiver
from kubetrade.alerts.alertmanager import channel_failing, channel_recovered, raise_event
from kubetrade.alerts.history import as_row
from kubetrade.alerts.twilio import SendResult, TwilioClient

log = logging.getLogger("kubetrade.alerts.sms")

SENT = Counter("kubetrade_alert_notifications_total",
               "Notifications kubetrade sent itself (SMS), by channel and result (sent, retried, failed, "
               "rate_limited).", ["channel", "result"])
POLL_SECONDS = 1.0
JOB_COLUMNS = "id, state, severity, recipient, body, attempts, started_at, received_at"
_JOB_NAMES = [c.strip() for c in JOB_COLUMNS.split(",")]
NOT_CONFIGURED = ("SMS is not configured: set KUBETRADE_TWILIO_ACCOUNT_SID, KUBETRADE_TWILIO_AUTH_TOKEN, "
                  "KUBETRADE_SMS_FROM and KUBETRADE_SMS_TO (chart: alerting.channels.sms)")


def backoff(attempts: int) -> float:
    return float(min(300.0, 2 ** (attempts - 1)))


class SmsSender:
    def __init__(self, pool: Any, dsn: str, client: TwilioClient | None, *, max_attempts: int = 8,
                 limit_per_hour: int | None = None, deliver: bool = True) -> None:
        self.pool = pool
        self.dsn = dsn
        self.client = client
        self.max_attempts = max_attempts
        self.limit_per_hour = limit_per_hour
        self.deliver = deliver
        """Raise the failing-channel alert through Alertmanager (an Alertmanager is configured)."""
        self.wake = asyncio.Event()

    async def run(self) -> None:
        await leader.lead(self.dsn, leader.SMS_LOCK, "sms sender", self._lead)

    async def _lead(self, lock: Any) -> None:
        await lock.execute(f"LISTEN {receiver.SMS_NOTIFY}")

        async def listen() -> None:
            while True:
                async for _ in lock.notifies(timeout=10.0):
                    self.wake.set()
                await leader.alive(lock)

        listener = asyncio.create_task(listen(), name="sms-listen")
        try:
            while True:
                if listener.done():
                    listener.result()
                while await self.step():
                    pass
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)
                self.wake.clear()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener

    async def _next(self, conn: Any) -> dict[str, Any] | None:
        cur = await conn.execute(
            f"""SELECT {JOB_COLUMNS} FROM alert_deliveries
                 WHERE channel = 'sms' AND sender = 'kubetrade' AND state IN ('queued', 'sending')
                   AND next_attempt_at <= now()
                 ORDER BY priority DESC, received_at, id LIMIT 1 FOR UPDATE SKIP LOCKED""")  # noqa: S608
        row = await cur.fetchone()
        return None if row is None else as_row(row, _JOB_NAMES)

    async def _update(self, job_id: int, **fields: Any) -> None:
        sets = ", ".join(f"{k} = %s" for k in fields)
        async with self.pool.connection() as conn:
            await conn.execute(f"UPDATE alert_deliveries SET {sets}, updated_at = now() WHERE id = %s",  # noqa: S608
                               (*fields.values(), job_id))

    async def step(self) -> bool:
        """Send (or settle) the most urgent due message; False when none is due."""
        async with self.pool.connection() as conn:
            job = await self._next(conn)
            if job is None:
                return False
            if self.client is None or not job["recipient"]:
                await self._fail(conn, job, NOT_CONFIGURED)
                return True
            if self.limit_per_hour is not None and job["severity"] != "critical" and int(job["attempts"]) == 0:
                cur = await conn.execute(
                    """SELECT count(*) FROM alert_deliveries WHERE channel = 'sms' AND sender = 'kubetrade'
                        AND state = 'sent' AND sent_at > now() - interval '1 hour'""")
                sent = (await cur.fetchone())[0]
                if sent >= self.limit_per_hour:
                    await conn.execute(
                        "UPDATE alert_deliveries SET state = 'rate_limited', error = %s, updated_at = now() "
                        "WHERE id = %s",
                        (f"not sent: {sent} SMS in the last hour reach the limit of {self.limit_per_hour} "
                         "(critical alerts are always sent)", job["id"]))
                    SENT.labels("sms", "rate_limited").inc()
                    return True
            # committed before the request: a process that dies now leaves "sending", looked up at the next attempt
            await conn.execute(
                "UPDATE alert_deliveries SET state = 'sending', attempts = attempts + 1, started_at = now(), "
                "updated_at = now() WHERE id = %s", (job["id"],))
        attempts = int(job["attempts"]) + 1
        if job["state"] == "sending":
            try:
                sid = await self.client.find(job["recipient"], receiver.marker(job["id"]))
            except Exception as exc:  # cannot tell whether it went: wait rather than risk a second message
                await self._update(job["id"], next_attempt_at=datetime.now(UTC) + timedelta(seconds=backoff(attempts)),
                                   error=f"looking up an earlier attempt at Twilio failed: {type(exc).__name__}")
                return True
            if sid is not None:
                await self._sent(job, sid)
                return True
        result = await self.client.send(job["recipient"], job["body"])
        await self._settle(job, attempts, result)
        return True

    async def _settle(self, job: dict[str, Any], attempts: int, result: SendResult) -> None:
        if result.outcome == "sent":
            await self._sent(job, result.sid)
            return
        if result.outcome == "failed" or attempts >= self.max_attempts:
            why = result.reason if result.outcome == "failed" else f"gave up after {attempts} attempts: {result.reason}"
            async with self.pool.connection() as conn:
                await self._fail(conn, job, why, attempts)
            return
        delay = max(result.retry_after or 0.0, backoff(attempts))
        SENT.labels("sms", "retried").inc()
        log.info("sms retried", extra={"delivery": job["id"], "attempt": attempts, "delay": delay,
                                        "error": result.reason})
        await self._update(job["id"], state="sending" if result.ambiguous else "queued",
                           next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay), error=result.reason)

    async def _sent(self, job: dict[str, Any], sid: str | None) -> None:
        now = datetime.now(UTC)
        await self._update(job["id"], state="sent", sent_at=now, provider_id=sid, next_attempt_at=None, error=None)
        SENT.labels("sms", "sent").inc()
        log.info("sms sent", extra={"delivery": job["id"], "sid": sid})
        async with self.pool.connection() as conn:
            if await self._failing(conn):
                await raise_event(conn, channel_recovered("sms", now), deliver=self.deliver)

    async def _fail(self, conn: Any, job: dict[str, Any], reason: str, attempts: int | None = None) -> None:
        await conn.execute(
            "UPDATE alert_deliveries SET state = 'failed', error = %s, next_attempt_at = NULL, updated_at = now() "
            "WHERE id = %s", (reason[:500], job["id"]))
        SENT.labels("sms", "failed").inc()
        log.warning("sms failed", extra={"delivery": job["id"], "error": reason[:300], "attempts": attempts})
        if not await self._failing(conn):
            await raise_event(conn, channel_failing("sms", f"SMS {job['id']} was not sent: {reason}",
                                                    datetime.now(UTC)), deliver=self.deliver)

    @staticmethod
    async def _failing(conn: Any) -> bool:
        """Whether the SMS channel's failing alert is raised and not resolved."""
        cur = await conn.execute(
            """SELECT status FROM alert_history WHERE source = 'platform' AND name = 'KubetradeAlertChannelFailing'
                AND target = 'sms' ORDER BY id DESC LIMIT 1""")
        row = await cur.fetchone()
        return row is not None and (row["status"] if isinstance(row, dict) else row[0]) == "firing"


async def retry(conn: Any, delivery_id: int) -> bool:
    """Queue a failed or rate-limited SMS again (a person fixed the channel); False if there is no such SMS."""
    cur = await conn.execute(
        """UPDATE alert_deliveries SET state = 'queued', attempts = 0, next_attempt_at = now(), error = NULL,
                  updated_at = now()
            WHERE id = %s AND sender = 'kubetrade' AND state IN ('failed', 'rate_limited') RETURNING id""",
        (delivery_id,))
    found = await cur.fetchone() is not None
    if found:
        await conn.execute(f"NOTIFY {receiver.SMS_NOTIFY}")
    return found
