"""Publishing samples to NATS JetStream with de-duplication by message id.

Every message carries ``Nats-Msg-Id`` = its schema's ``msg_id()``, so JetStream drops a
re-publish inside the stream's duplicate window (a collector restart, a retried publish
whose ack was lost).  Beyond that window the database upsert is idempotent too, so a replay
of old data never double-counts anywhere.

A publish that fails (NATS restarting) is retried with backoff until it is acknowledged:
the collector does not move its resume point past a sample until the stream has it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from nats.js.errors import NotFoundError

from kubetrade import retrying
from kubetrade.messaging import codec, streams, subjects
from kubetrade.messaging.schemas import AltPoint, Candle, PublicTrade, Ticker
from kubetrade.observability import tracecontext as tracing
from kubetrade.storage.candles import SeriesKey

log = logging.getLogger("kubetrade.collector.publish")

MARKET_STREAMS = ("MARKET_DATA", "MARKET_TICKS", "ALT_DATA")
"""The streams a collector writes, and the only ones its NATS identity may manage."""


DEAD_LETTERS = "DLQ"
"""Where the collector's candle sink puts a message it cannot parse (``dlq.<subject>``)."""


async def ensure_streams(js: Any) -> None:
    """The market data streams (one definition: :mod:`kubetrade.messaging.streams`), with their
    two-hour duplicate window - long enough to cover a collector restart with backfill; older
    repeats are absorbed by the idempotent database upsert - and the dead-letter stream its sink
    writes to: without it a bad message had nowhere to go on a NATS no order-path process had
    used yet, and the sink stopped on it."""
    await streams.ensure_streams(js, (*MARKET_STREAMS, DEAD_LETTERS))


def subject_of(message: Candle | Ticker | PublicTrade | AltPoint) -> str:
    if isinstance(message, Candle):
        return subjects.candle(message.exchange, message.symbol, message.timeframe)
    if isinstance(message, Ticker):
        return subjects.ticker(message.exchange, message.symbol)
    if isinstance(message, PublicTrade):
        return subjects.trades(message.exchange, message.symbol)
    return subjects.alt(message.source, message.provider, message.topic)


class Publisher:
    """JetStream publisher that retries until acknowledged and counts duplicates it caused."""

    def __init__(self, js: Any, *, max_backoff: float = 5.0, timeout: float = 5.0) -> None:
        self.js = js
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.published = 0
        self.duplicates = 0
        self.retries = 0

    async def publish(self, message: Candle | Ticker | PublicTrade | AltPoint) -> None:
        subject = subject_of(message)
        data = codec.encode(message)
        with tracing.producer_span("md.publish", subject):  # the trace of this sample starts here
            headers = tracing.inject({"Nats-Msg-Id": message.msg_id()})
        def failed(exc: BaseException, wait: float) -> None:  # NoRespondersError, TimeoutError, ConnectionClosed...
            self.retries += 1
            log.warning("publish failed, retrying", extra={"subject": subject, "error": type(exc).__name__,
                                                           "delay": wait})

        ack = await retrying.call(lambda: self.js.publish(subject, data, headers=headers, timeout=self.timeout),
                                  first=0.05, maximum=self.max_backoff, on_retry=failed)
        if ack.duplicate:
            self.duplicates += 1
        else:
            self.published += 1

    async def publish_all(self, messages: Sequence[Candle | Ticker | PublicTrade | AltPoint]) -> None:
        for m in messages:
            await self.publish(m)


def stream_resume(js: Any) -> Any:
    """A resume function reading the newest candle of a series from the MARKET_DATA stream.

    The stream is what consumers see, so resuming from it neither skips nor repeats what
    they got; the database may lag behind it and is only a fallback.
    """
    async def resume(key: SeriesKey) -> int | None:
        try:
            msg = await js.get_last_msg("MARKET_DATA", subjects.candle(key.exchange, key.symbol, key.timeframe))
        except NotFoundError:
            return None
        return codec.decode(Candle, msg.data).time

    return resume
