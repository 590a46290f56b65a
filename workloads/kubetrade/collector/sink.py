"""NATS -> database: the durable consumer that stores candles and alternative-data points.

At-least-once in, exactly-once in the table: a batch is fetched from a durable pull
consumer, written in one transaction through the idempotent upsert, and only then
acknowledged (one ack for the batch, the consumer acks all-up-to).  If the database goes
away mid-batch nothing is acknowledged; the writer reconnects with backoff and writes the
same batch again, and JetStream redelivers anything whose ack never came.  Messages that
do not parse go to the dead-letter subject and are acknowledged, so they cannot block the
stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from kubetrade import retrying
from kubetrade.messaging import codec
from kubetrade.messaging.schemas import AltPoint, Candle
from kubetrade.storage import timescale
from kubetrade.storage.candles import upsert_messages

log = logging.getLogger("kubetrade.collector.sink")

CANDLE_FILTER = "md.*.*.candle.*"
ALT_FILTER = "alt.>"


async def upsert_points(conn: psycopg.AsyncConnection, points: Sequence[AltPoint]) -> int:
    """Idempotent write of alternative-data points (the last value for a key wins)."""
    if not points:
        return 0
    rows = {(p.source, p.provider, p.topic, p.metric, p.time): p for p in points}
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            """INSERT INTO alt_points (source, provider, topic, metric, time, value, attrs)
               VALUES (%s, %s, %s, %s, to_timestamp(%s / 1000.0), %s, %s::jsonb)
               ON CONFLICT (source, provider, topic, metric, time)
               DO UPDATE SET value = EXCLUDED.value, attrs = EXCLUDED.attrs""",
            [(p.source, p.provider, p.topic, p.metric, p.time, p.value, json.dumps(p.attrs)) for p in rows.values()],
        )
    return len(rows)


@dataclass
class Sink:
    """One durable consumer (candles or alt points) writing into PostgreSQL."""

    nc: Any
    dsn: str
    durable: str = "candle-store"
    stream: str = "MARKET_DATA"
    filter_subject: str = CANDLE_FILTER
    batch: int = 2000
    max_backoff: float = 5.0
    stored: int = 0
    dead_lettered: int = 0
    db_errors: int = 0
    _conn: psycopg.AsyncConnection | None = field(default=None, repr=False)

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            await timescale.setup(self._conn)
        return self._conn

    async def subscribe(self) -> Any:
        from nats.js.api import AckPolicy, ConsumerConfig

        js = self.nc.jetstream()
        config = ConsumerConfig(ack_policy=AckPolicy.ALL, filter_subject=self.filter_subject, ack_wait=60,
                                max_ack_pending=self.batch * 4)
        return await js.pull_subscribe(self.filter_subject, durable=self.durable, stream=self.stream, config=config)

    async def _dead_letter(self, msg: Any, reason: str) -> None:
        """Put an unparseable message in the dead-letter stream before its batch is acknowledged; while NATS
        cannot take it (reconnecting, the stream missing), retry: the batch waits, nothing is dropped."""
        from nats.errors import Error as NatsError

        def failed(exc: BaseException, wait: float) -> None:
            log.warning("dead letter not accepted, retrying", extra={"error": type(exc).__name__, "delay": wait})

        async for attempt in retrying.backoff(first=0.1, maximum=self.max_backoff, on_retry=failed,
                                              retry_on=(NatsError, TimeoutError)):
            with attempt:
                await codec.dead_letter(self.nc, msg.subject, msg.data, reason)
        self.dead_lettered += 1

    async def _write(self, messages: list[Any]) -> None:
        candles: list[Candle] = []
        points: list[AltPoint] = []
        for msg in messages:
            try:
                if self.stream == "MARKET_DATA":
                    candles.append(codec.decode(Candle, msg.data))
                else:
                    points.append(codec.decode(AltPoint, msg.data))
            except codec.BadMessage as exc:
                await self._dead_letter(msg, str(exc))
        async def store() -> None:
            conn = await self._connection()
            if candles:
                await upsert_messages(conn, candles)
            await upsert_points(conn, points)

        def failed(exc: BaseException, wait: float) -> None:
            self.db_errors += 1
            log.warning("database unavailable, retrying batch", extra={"error": type(exc).__name__, "delay": wait})

        async for attempt in retrying.backoff(first=0.1, maximum=self.max_backoff, on_retry=failed,
                                              retry_on=(psycopg.OperationalError, psycopg.InterfaceError)):
            with attempt:
                try:
                    await store()
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    if self._conn is not None:  # the next try opens a new connection
                        await self._conn.close()
                    self._conn = None
                    raise
        self.stored += len(candles) + len(points)

    async def run(self, stop: asyncio.Event, *, idle_exit: bool = False) -> None:
        """Store batches until ``stop``; with ``idle_exit``, return once the consumer is drained."""
        from nats.errors import TimeoutError as NatsTimeout

        sub = await self.subscribe()
        try:
            while not stop.is_set():
                try:
                    messages = await sub.fetch(self.batch, timeout=1.0)
                except NatsTimeout:
                    if idle_exit:
                        return
                    continue
                except Exception as exc:  # NATS reconnecting: wait, the durable consumer keeps our place
                    log.warning("fetch failed", extra={"error": type(exc).__name__})
                    await asyncio.sleep(0.5)
                    continue
                if not messages:
                    continue
                await self._write(messages)
                await _ack(messages[-1])
        finally:
            with contextlib.suppress(Exception):  # else a later drain() of the connection waits for it
                await sub.unsubscribe()
            if self._conn is not None:
                await self._conn.close()
                self._conn = None


async def _ack(msg: Any) -> None:
    """Acknowledge (all up to) ``msg``; a lost ack only means a harmless redelivery."""
    try:
        await msg.ack_sync(timeout=5)
    except Exception as exc:
        log.warning("ack failed; the batch will be redelivered and upserted again", extra={"error": type(exc).__name__})
