"""The exchange collector: closed OHLCV candles, tickers and trades from any ccxt exchange.

Per (symbol, timeframe) the collector keeps a cursor, the open time of the next candle it
wants.  On start the cursor is where the stream (or the database) left off, else
``backfillDays`` ago; every cycle it asks the exchange for closed candles from the cursor
on, in pages, until it has caught up - the same loop is the backfill on start, the catch-up
after an outage and the live polling.  A cursor only moves past a candle once JetStream
has acknowledged it, so nothing is lost; message ids make repeats harmless.

With ``websocket`` and an exchange that ccxt.pro streams, the stream only wakes the
loop early when a candle closes; the candle itself is still read over REST, so stream
quirks cannot put a half-finished candle into the store.

Candles are checked before they are published (:func:`clean_rows`): rows are sorted and
de-duplicated, the still-open candle is held back, and a malformed row stops the batch
there so that it is asked for again next cycle (after :data:`MAX_STRIKES` bad answers for the
same candle it is skipped and the skip is counted as an error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubetrade import retrying
from kubetrade.candles import timeframe_ms
from kubetrade.collector.health import Health, wall_ms
from kubetrade.collector.publish import Publisher
from kubetrade.messaging.schemas import Candle, PublicTrade, Ticker
from kubetrade.storage.candles import SeriesKey

log = logging.getLogger("kubetrade.collector.exchange")

PAGE = 1000
MAX_STRIKES = 3
Resume = Callable[[SeriesKey], Awaitable[int | None]]
"""Open time (ms) of the newest candle already delivered for a series, or None."""


@dataclass
class Cleaned:
    candles: list[Candle]
    next_cursor: int
    problem: str | None = None
    """Why the batch stopped early (a malformed row), or None."""


def _row_problem(row: Sequence[Any], tf_ms: int) -> str | None:
    if not isinstance(row, (list, tuple)) or len(row) < 6:
        return f"row has {len(row) if isinstance(row, (list, tuple)) else 'no'} fields, expected 6"
    t, o, h, low, c, v = row[:6]
    if not isinstance(t, int) or t % tf_ms:
        return f"open time {t!r} is not a multiple of the timeframe"
    values = (o, h, low, c, v)
    if any(not isinstance(x, (int, float)) or not math.isfinite(x) for x in values):
        return f"non-numeric or non-finite value in {list(values)!r}"
    if min(o, h, low, c) <= 0 or v < 0:
        return "non-positive price or negative volume"
    if low > min(o, c) or h < max(o, c):
        return f"high/low {h}/{low} do not bracket open/close {o}/{c}"
    return None


def clean_rows(rows: Sequence[Any], key: SeriesKey, cursor: int, now_ms: int,
               skip: Callable[[int], bool] = lambda t: False, grace_ms: int = 0) -> Cleaned:
    """Closed, valid candles at or after ``cursor`` from raw ccxt OHLCV rows (pure function).

    ``skip(t)`` says a known-bad candle at ``t`` may be passed over; a candle counts as closed
    ``grace_ms`` after its end, a margin for the clocks of exchange and collector to disagree.
    """
    tf = timeframe_ms(key.timeframe)
    by_time: dict[int, Sequence[Any]] = {}
    problem: str | None = None
    stop_at: int | None = None
    for row in rows:
        t = row[0] if isinstance(row, (list, tuple)) and row else None
        why = _row_problem(row, tf)
        if why is not None:
            if isinstance(t, int) and t >= cursor and not skip(t):
                if stop_at is None or t < stop_at:
                    stop_at, problem = t, f"candle {t}: {why}"
            elif not isinstance(t, int):
                problem = problem or f"unreadable row: {why}"
            continue
        assert isinstance(t, int)  # checked by _row_problem
        if t >= cursor and t + tf + grace_ms <= now_ms:
            by_time[t] = row  # a repeated time keeps the last row the exchange sent
    out: list[Candle] = []
    next_cursor = cursor
    for t in sorted(by_time):
        if stop_at is not None and t > stop_at:
            break
        o, h, low, c, v = (float(x) for x in by_time[t][1:6])
        out.append(Candle(exchange=key.exchange, symbol=key.symbol, timeframe=key.timeframe,
                          time=t, open=o, high=h, low=low, close=c, volume=v))
        next_cursor = t + tf
    if stop_at is not None and skip(stop_at):
        next_cursor = max(next_cursor, stop_at + tf)
    return Cleaned(out, next_cursor, problem)


@dataclass
class ExchangeCollector:
    client: Any
    """An async ccxt exchange (``ccxt.async_support.<id>`` or ``ccxt.pro.<id>``)."""
    exchange_id: str
    symbols: list[str]
    timeframes: list[str]
    publisher: Publisher
    health: Health
    clock: Callable[[], int] = wall_ms
    resume: Resume | None = None
    backfill_days: int = 7
    interval_seconds: float = 60.0
    websocket: bool = False
    tickers: bool = True
    trades: bool = True
    max_backoff: float = 60.0
    close_grace_ms: int = 0
    """Wait this long after a candle's end before taking it as closed (see :func:`exchange_clock`)."""
    cursors: dict[SeriesKey, int] = field(default_factory=dict)
    _strikes: dict[tuple[SeriesKey, int], int] = field(default_factory=dict)
    _last_trade: dict[str, int] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def keys(self) -> list[SeriesKey]:
        return [SeriesKey(self.exchange_id, s, tf) for s in self.symbols for tf in self.timeframes]

    async def start_cursor(self, key: SeriesKey) -> int:
        tf = timeframe_ms(key.timeframe)
        last = await self.resume(key) if self.resume is not None else None
        if last is not None:
            return last + tf
        since = self.clock() - self.backfill_days * 86_400_000
        return since - since % tf

    async def collect_series(self, key: SeriesKey) -> int:
        """Publish every closed candle from the cursor on; returns how many were published."""
        if key not in self.cursors:
            self.cursors[key] = await self.start_cursor(key)
        tf = timeframe_ms(key.timeframe)
        published = 0
        while True:
            cursor = self.cursors[key]
            now = self.clock()
            if cursor + tf + self.close_grace_ms > now:
                return published
            rows = await self.client.fetch_ohlcv(key.symbol, key.timeframe, since=cursor, limit=PAGE)
            cleaned = clean_rows(rows, key, cursor, now, skip=lambda t: self._strikes.get((key, t), 0) >= MAX_STRIKES,
                                 grace_ms=self.close_grace_ms)
            for candle in cleaned.candles:
                await self.publisher.publish(candle)
                self.cursors[key] = candle.time + tf
                self.health.sample(candle.time, end_ms=candle.time + tf)
                published += 1
            self.cursors[key] = max(self.cursors[key], cleaned.next_cursor)
            if cleaned.problem is not None:
                self.health.error(f"{key.symbol} {key.timeframe}: {cleaned.problem}")
                bad = self.cursors[key]
                self._strikes[(key, bad)] = self._strikes.get((key, bad), 0) + 1
                return published
            if not cleaned.candles or len(rows) < PAGE:
                return published  # caught up: only the open candle, or the end of the history

    async def collect_ticker(self, symbol: str) -> None:
        t = await self.client.fetch_ticker(symbol)
        if t.get("last") and t.get("timestamp"):
            await self.publisher.publish(Ticker(
                exchange=self.exchange_id, symbol=symbol, time=int(t["timestamp"]), last=float(t["last"]),
                bid=t.get("bid") or None, ask=t.get("ask") or None, base_volume=t.get("baseVolume")))

    async def collect_trades(self, symbol: str) -> None:
        since = self._last_trade.get(symbol)
        trades = await self.client.fetch_trades(symbol, since=since, limit=PAGE)
        for tr in sorted(trades, key=lambda x: (x["timestamp"], str(x["id"]))):
            if not tr.get("price") or not tr.get("amount") or (since is not None and tr["timestamp"] < since):
                continue  # prints at exactly ``since`` come again: JetStream drops them by id
            await self.publisher.publish(PublicTrade(
                exchange=self.exchange_id, symbol=symbol, id=str(tr["id"]), time=int(tr["timestamp"]),
                price=float(tr["price"]), amount=float(tr["amount"]), side=tr.get("side")))
            self._last_trade[symbol] = int(tr["timestamp"])

    async def cycle(self) -> int:
        """One pass over every series (and tickers/trades); errors propagate to :meth:`run`."""
        n = 0
        for key in self.keys():
            n += await self.collect_series(key)
        for symbol in self.symbols:
            if self.tickers:
                await self.collect_ticker(symbol)
            if self.trades:
                await self.collect_trades(symbol)
        self.health.lag_seconds()
        return n

    def retry_after(self, exc: BaseException | None = None) -> float | None:
        """The exchange's Retry-After (seconds) when ``exc`` is a rate limit (429/418), else None.

        ccxt keeps the headers of the last response; only a DDoSProtection error makes them the
        rate-limit answer's (any other error's headers say nothing about waiting).
        """
        from ccxt.base.errors import DDoSProtection

        if exc is not None and not isinstance(exc, DDoSProtection):
            return None
        return retrying.retry_after_header(getattr(self.client, "last_response_headers", None))

    async def run(self, stop: asyncio.Event) -> None:
        """Collect until ``stop`` is set; every failure is retried with backoff from the cursor.

        A rate limit (429 / 418) waits at least as long as the exchange's Retry-After says;
        any other ccxt error, a publish timeout or a bug in a parser is counted and retried too:
        nothing here is worth dying for.
        """
        from ccxt.base.errors import BaseError  # not `import ccxt`: that loads every exchange

        def failed(exc: BaseException, wait: float) -> None:
            self.health.error(exc)
            if not isinstance(exc, BaseError):
                log.exception("unexpected collector error", exc_info=exc)

        self.health.set_phase("Running")
        watchers = [asyncio.create_task(self._watch(k, stop)) for k in self.keys()] if self._can_watch() else []
        try:
            while not stop.is_set():
                try:
                    await retrying.call(self.cycle, first=1.0, maximum=self.max_backoff, stop=stop,
                                        retry_after=self.retry_after, on_retry=failed)
                except retrying.Stopped:
                    break
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(first_set(stop, self._wake), timeout=self.interval_seconds)
        finally:
            for w in watchers:
                w.cancel()
            self.health.set_phase("Suspended" if stop.is_set() else "Failed")

    def _can_watch(self) -> bool:
        return bool(self.websocket and getattr(self.client, "has", {}).get("watchOHLCV"))

    async def _watch(self, key: SeriesKey, stop: asyncio.Event) -> None:
        """Wake the loop when the stream shows a candle newer than the cursor's (it has closed)."""

        async def one_event() -> None:
            rows = await self.client.watch_ohlcv(key.symbol, key.timeframe)
            cursor = self.cursors.get(key)
            if rows and cursor is not None and rows[-1][0] > cursor:
                self._wake.set()

        def unavailable(exc: BaseException, wait: float) -> None:  # stream down: polling carries on
            log.info("websocket unavailable, polling", extra={"error": type(exc).__name__, "delay": wait})

        while not stop.is_set():
            try:
                await retrying.call(one_event, first=1.0, maximum=self.max_backoff, stop=stop, on_retry=unavailable)
            except retrying.Stopped:
                return


async def exchange_clock(client: Any) -> Callable[[], int]:
    """The exchange's time as the collector's clock: local time corrected by ccxt's measured offset.

    Deciding "closed" by the exchange's clock rather than ours keeps a fast local clock from
    taking a candle in progress for a finished one.  Falls back to local time if the exchange
    has no time endpoint or does not answer.
    """
    offset = 0
    if getattr(client, "has", {}).get("fetchTime"):
        try:
            server = int(await client.fetch_time())
            offset = server - wall_ms()
        except Exception as exc:
            log.warning("exchange time unavailable, using local time", extra={"error": type(exc).__name__})
    return lambda: wall_ms() + offset


async def first_set(*events: asyncio.Event) -> None:
    """Return as soon as any of the events is set."""
    tasks = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
