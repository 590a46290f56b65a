"""Create or update the JetStream streams of :data:`kubetrade.messaging.subjects.STREAMS`.

Every process that publishes to a stream may call :func:`ensure_streams` at start: it is
idempotent, and it converges an existing stream's subjects and age limit to the declared
ones (a stream created by an older version, with other settings, is brought in line).

The age limits bound what each stream keeps on disk.  ``ORDERS`` holds submissions until
the executor has recorded them; an order expires a minute after its decision, and the
database, not the stream, is the record, so a day is ample.  Without a limit, a thousand
orders a second were ~40 GB a day kept for good.  Candles and alternative data are kept
for their sinks (which write them to the database) for 30 days, the longest a sink may be
down without a gap; tickers and public trades are a live view that nothing reads back
later, so ``MARKET_TICKS`` keeps an hour of them (at Binance's pace, 20 symbols' trades were
~15 GB a day in the one stream that kept everything).
"""

from __future__ import annotations

from typing import Any

from kubetrade.messaging.subjects import STREAMS

DUPLICATE_WINDOW_SECONDS = 2 * 3600
"""How long JetStream remembers a Nats-Msg-Id: re-sends within it are dropped as duplicates."""

DAY = 86_400.0
MAX_AGE_SECONDS: dict[str, float | None] = {
    "MARKET_DATA": 30 * DAY,  # the candle sinks read it from where they left off
    "MARKET_TICKS": 3600.0,
    "ALT_DATA": 30 * DAY,
    "ORDERS": 1 * DAY,
    "EVENTS": 30 * DAY,
    "DLQ": 30 * DAY,
}
"""How long each stream keeps a message (None: no age limit)."""


async def ensure_streams(js: Any, names: tuple[str, ...] | None = None) -> None:
    """Create the streams (all, or ``names``) or converge their subjects and age limit."""
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    for name, subjects in STREAMS.items():
        if names is not None and name not in names:
            continue
        max_age = MAX_AGE_SECONDS.get(name)
        # JetStream refuses a duplicate window longer than the stream keeps messages
        window = DUPLICATE_WINDOW_SECONDS if max_age is None else min(DUPLICATE_WINDOW_SECONDS, max_age)
        config = StreamConfig(name=name, subjects=subjects, duplicate_window=window, max_age=max_age)
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            try:
                await js.add_stream(config)
                continue
            except Exception as refused:  # a concurrent creator won: converge what it made
                try:
                    info = await js.stream_info(name)
                except NotFoundError:
                    raise refused from None  # no: the server refused the stream, and says why
        current = info.config
        if sorted(current.subjects or []) != sorted(subjects) or (current.max_age or None) != max_age:
            current.subjects = subjects
            current.max_age = max_age
            if max_age is not None and (current.duplicate_window or 0) > max_age:
                current.duplicate_window = max_age
            await js.update_stream(current)


ORDER_PATH = ("ORDERS", "EVENTS", "DLQ")
"""The streams the order path uses: the risk manager and stop watch submit to ``ORDERS``, the
executor consumes it and reports to ``EVENTS``; both dead-letter to ``DLQ``."""


async def ensure_order_streams(js: Any) -> None:
    """The order path's streams (:data:`ORDER_PATH`); the risk manager and the executor call it at start."""
    await ensure_streams(js, ORDER_PATH)
