"""The loop that evaluates user-defined alert conditions.

It follows what the platform already publishes on NATS: workloads' status reports
(``status.>``: a Strategy's pnl, drawdown, equity; a Goal's progress) and market data
(``md.*.*.ticker`` and candles: prices).  Each observation is checked against the enabled
rules for its (metric, namespace, target) with :func:`kubetrade.alerts.conditions.decide`;
a decision is written to the rule, to ``alert_history`` and to the outbox that the
dispatcher posts to Alertmanager (one transaction, :func:`kubetrade.alerts.history.record_rule`),
then published on ``events.alerts.<severity>`` for whoever follows alerts live.

Several API replicas may run this loop; a PostgreSQL advisory lock makes exactly one of
them the evaluator at a time (the others wait and take over if it dies), so an alert is
raised once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kubetrade.alerts import conditions, history, leader, store
from kubetrade.alerts.conditions import Observation, RuleState
from kubetrade.messaging import subjects
from kubetrade.messaging.schemas import AlertEvent

log = logging.getLogger("kubetrade.alerts")

LEADER_LOCK = leader.EVALUATOR_LOCK
RULES_REFRESH_SECONDS = 2.0


def observations(subject: str, data: bytes) -> list[Observation]:
    """What a NATS message tells the evaluator; nothing for a message it cannot read."""
    try:
        body = json.loads(data)
    except ValueError:
        return []
    if not isinstance(body, dict):
        return []
    if subject.startswith("status."):
        status = body.get("status")
        if not isinstance(status, dict):
            return []
        return conditions.from_status(str(body.get("kind")), str(body.get("namespace")), str(body.get("name")),
                                      status)
    price = body.get("last") if subject.endswith(".ticker") else body.get("close")
    if isinstance(price, int | float) and "exchange" in body and "symbol" in body:
        target = conditions.price_target(str(body["exchange"]), str(body["symbol"]))
        return [Observation("price", "*", target, float(price))]
    return []


def matching(rules: Iterable[dict[str, Any]], obs: Observation) -> list[dict[str, Any]]:
    """Rules an observation concerns; a price belongs to no namespace, so it meets rules of any."""
    return [r for r in rules if r["metric"] == obs.metric and r["target"] == obs.target
            and (obs.namespace == "*" or r["namespace"] == obs.namespace)]


class Evaluator:
    def __init__(self, pool: Any, nats: Any, dsn: str, *, deliver: bool = False,
                 limits: dict[str, int] | None = None) -> None:
        self.pool = pool
        self.nats = nats
        self.dsn = dsn
        self.deliver = deliver
        """Queue alerts for Alertmanager (an Alertmanager is configured); else only record them."""
        self.limits = limits or {}
        """Notifications per channel per hour beyond which warning and info alerts skip the channel."""
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=10_000)
        self._rules: list[dict[str, Any]] = []
        self._rules_at = 0.0

    async def run(self) -> None:
        """Wait for the leadership, then evaluate until cancelled or the lock's connection is lost."""
        await leader.lead(self.dsn, LEADER_LOCK, "alert evaluator", self._lead)

    async def _lead(self, lock: Any) -> None:
        async def enqueue(msg: Any) -> None:
            with contextlib.suppress(asyncio.QueueFull):  # overloaded: newer reports will follow
                self.queue.put_nowait((msg.subject, msg.data))

        subs = [await self.nats.subscribe(s, cb=enqueue)
                for s in (subjects.STATUS_ALL, "md.*.*.ticker", "md.*.*.candle.*")]
        try:
            while True:
                try:
                    subject, data = await asyncio.wait_for(self.queue.get(), 10.0)
                except TimeoutError:
                    await leader.alive(lock)
                    continue
                for obs in observations(subject, data):
                    await self.observe(obs)
        finally:
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    async def _current_rules(self) -> list[dict[str, Any]]:
        if time.monotonic() - self._rules_at > RULES_REFRESH_SECONDS:
            async with self.pool.connection() as conn:
                self._rules = await store.enabled_rules(conn)
            self._rules_at = time.monotonic()
        return self._rules

    async def observe(self, obs: Observation, now: datetime | None = None) -> list[dict[str, Any]]:
        """Evaluate one observation; returns the history rows it produced."""
        now = now or datetime.now(UTC)
        produced = []
        for rule in matching(await self._current_rules(), obs):
            state = RuleState(rule["operator"], rule["threshold"], rule["cooldown_seconds"], rule["firing"],
                              rule["last_fired_at"])
            decision = conditions.decide(state, obs.value, now)
            if decision is None:
                continue
            message = conditions.describe(rule["name"], rule["metric"], rule["target"], rule["operator"],
                                          rule["threshold"], obs.value, decision)
            async with self.pool.connection() as conn:
                row = await history.record_rule(conn, rule, decision, obs.value, message, now,
                                                deliver=self.deliver, limits=self.limits)
            rule["firing"] = decision == "fire"
            if decision == "fire":
                rule["last_fired_at"] = now
            event = AlertEvent(name=rule["name"], severity=rule["severity"], status=row["status"],
                               rule_id=str(rule["id"]), namespace=rule["namespace"], target=rule["target"],
                               metric=rule["metric"], value=obs.value, message=message,
                               time=int(now.timestamp() * 1000))
            await self.nats.publish(subjects.alerts(rule["severity"]), event.model_dump_json(by_alias=True).encode())
            log.info("alert", extra={"rule": str(rule["id"]), "status": row["status"], "severity": rule["severity"]})
            produced.append(row)
        return produced
