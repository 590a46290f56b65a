"""A read-through cache of stored candles, encoded once, kept true by the store's own notifications.

``GET /api/v1/historical`` spent most of its time turning the same rows into the same JSON
on every request (a thousand candles: about 4 ms of ``json.dumps`` and dict building out of
7 ms).  A closed candle does not change once it is stored, unless a writer stores it again
(a correction, a backfill); so each process keeps, per series, one contiguous run of stored
candles with each candle already encoded as its JSON object, and a page is a slice of that
run joined with commas.

What keeps it true: every write to ``candles`` goes through :mod:`kubetrade.storage.candles`,
which sends ``NOTIFY kubetrade_candles`` with the series and the first and last time it wrote,
*inside the writing transaction*, so PostgreSQL delivers it when (and only if) the write
commits, to every API replica.  The cache drops what it holds from that first time on (the
candles before it are untouched by the write).  A read that started before a notification and
ends after it is not kept (a generation count per series), because its snapshot may predate
the write.  While the listening connection is down the cache holds nothing and keeps nothing:
every request reads the database, exactly as without a cache; on reconnect it starts empty,
since notifications sent meanwhile are lost.

What it does not do: share one cache across replicas (each replica warms its own, a few
database reads per series), or cache roll-ups (timeframes that are not stored are read and
encoded per request, as before); series are evicted least recently used beyond ``max_rows``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter

log = logging.getLogger("kubetrade.api.candlecache")

CHANNEL = "kubetrade_candles"
"""The PostgreSQL notification channel :mod:`kubetrade.storage.candles` writes to."""

LOOKUPS = Counter("kubetrade_api_candle_cache_total", "Candle page reads by the API's cache, by outcome.",
                  ["outcome"])

Series = tuple[str, str, str]
"""(exchange, symbol, timeframe)."""


def encode_row(row: Sequence[Any]) -> bytes:
    """One candle as the API's JSON object (the same text ``json.dumps`` makes of it)."""
    return (f'{{"time":{int(row[0])},"open":{float(row[1])!r},"high":{float(row[2])!r},"low":{float(row[3])!r},'
            f'"close":{float(row[4])!r},"volume":{float(row[5])!r}}}').encode()


def parse_note(payload: str) -> tuple[Series, int, int] | None:
    """``exchange|symbol|timeframe|first_ms|last_ms`` -> ((exchange, symbol, timeframe), first, last)."""
    parts = payload.split("|")
    if len(parts) != 5:
        return None
    try:
        return (parts[0], parts[1], parts[2]), int(parts[3]), int(parts[4])
    except ValueError:
        return None


@dataclass
class _Run:
    """Every stored candle of a series with ``lo <= time < hi``, in time order, encoded."""

    lo: int
    hi: int
    times: list[int] = field(default_factory=list)
    rows: list[bytes] = field(default_factory=list)
    changes: int = 0
    """Counts every change to the run: a page built from it is good while this stays the same."""


@dataclass(frozen=True)
class Hit:
    rows: list[bytes]
    more: bool
    """True when candles beyond ``rows`` exist in the range asked for (``rows`` is a full page)."""
    last_time: int


class CandleCache:
    """Per process: one run of candles per series, filled by reads, cut by the store's notifications."""

    def __init__(self, max_rows: int = 500_000, max_pages: int = 64) -> None:
        self.max_rows = max_rows
        self.max_pages = max_pages
        self.listening = False
        """Only while notifications arrive is anything kept or served."""
        self._runs: OrderedDict[Series, _Run] = OrderedDict()
        self._gen: dict[Series, int] = {}
        self._rows = 0
        self._pages: OrderedDict[tuple[Series, int, int, int], tuple[_Run, int, bytes, str]] = OrderedDict()
        """The last pages built, by (series, start, end, limit): valid while their run is unchanged."""

    # --- reads ---------------------------------------------------------------------------

    def generation(self, series: Series) -> int:
        return self._gen.get(series, 0)

    def built(self, series: Series, start: int, end: int, limit: int) -> tuple[bytes, str] | None:
        """A page built before from this cache (body, ETag), if nothing it came from has changed since."""
        memo = self._pages.get((series, start, end, limit)) if self.listening else None
        if memo is None:
            return None
        run, changes, body, etag = memo
        if self._runs.get(series) is not run or run.changes != changes:
            del self._pages[(series, start, end, limit)]
            return None
        LOOKUPS.labels("page").inc()
        return body, etag

    def keep_built(self, series: Series, start: int, end: int, limit: int, body: bytes, etag: str) -> None:
        """Remember a page built from :meth:`get`'s rows (call right after it, before any await)."""
        run = self._runs.get(series)
        if run is None or not self.listening:
            return
        self._pages[(series, start, end, limit)] = (run, run.changes, body, etag)
        self._pages.move_to_end((series, start, end, limit))
        while len(self._pages) > self.max_pages:
            self._pages.popitem(last=False)

    def get(self, series: Series, start: int, end: int, limit: int) -> Hit | None:
        """The page [start, end) of at most ``limit`` candles, if the cache knows all of it."""
        run = self._runs.get(series) if self.listening else None
        if run is None or not run.lo <= start < run.hi:
            LOOKUPS.labels("miss").inc()
            return None
        i = bisect.bisect_left(run.times, start)
        j = bisect.bisect_left(run.times, end)
        if j - i > limit:  # a full page and at least one candle after it
            rows, more = run.rows[i:i + limit], True
        elif end <= run.hi:  # all of [start, end) is known
            rows, more = run.rows[i:j], False
        else:
            LOOKUPS.labels("miss").inc()
            return None
        self._runs.move_to_end(series)
        LOOKUPS.labels("hit").inc()
        return Hit(rows, more, run.times[i + len(rows) - 1] if rows else -1)

    # --- fills ---------------------------------------------------------------------------

    def put(self, series: Series, generation: int, start: int, end: int, limit: int, rows: Sequence[Sequence[Any]],
            encoded: list[bytes]) -> None:
        """Keep a page read from the database at ``generation``: ``rows`` (up to ``limit + 1``) of [start, end),
        ``encoded`` each of them.

        A full read (``limit + 1`` rows) proves every candle in [start, last row]; a short one,
        every candle in [start, end).
        """
        if not self.listening or generation != self.generation(series) or not rows or len(encoded) != len(rows):
            return
        times = [int(r[0]) for r in rows]
        hi = times[-1] + 1 if len(rows) > limit else end
        run = self._runs.get(series)
        if run is not None and start <= run.hi and hi >= run.lo:  # overlaps or touches the run: join them
            before = bisect.bisect_left(run.times, start)
            after = bisect.bisect_left(run.times, hi)
            self._rows -= after - before  # what it read replaces what the run held in [start, hi)
            run.times[before:after] = times
            run.rows[before:after] = encoded
            run.lo, run.hi = min(run.lo, start), max(run.hi, hi)
            run.changes += 1
        else:
            if run is not None:
                self._rows -= len(run.times)
            run = _Run(start, hi, times, list(encoded))
            self._runs[series] = run
        self._rows += len(times)
        self._runs.move_to_end(series)
        while self._rows > self.max_rows and len(self._runs) > 1:
            _, old = self._runs.popitem(last=False)
            self._rows -= len(old.times)
        if self._rows > self.max_rows:  # one series alone is over the bound
            self.clear()

    # --- invalidation ----------------------------------------------------------------------

    def written(self, series: Series, first: int, last: int) -> None:
        """Candles of ``series`` in [first, last] were stored: forget them and everything after them."""
        self._gen[series] = self.generation(series) + 1
        run = self._runs.get(series)
        if run is None or first >= run.hi or last < run.lo:
            return
        if first <= run.lo:
            del self._runs[series]
            self._rows -= len(run.times)
            return
        keep = bisect.bisect_left(run.times, first)
        self._rows -= len(run.times) - keep
        del run.times[keep:], run.rows[keep:]
        run.hi = first
        run.changes += 1

    def clear(self) -> None:
        for series in self._runs:
            self._gen[series] = self.generation(series) + 1
        self._runs.clear()
        self._pages.clear()
        self._rows = 0

    @property
    def rows(self) -> int:
        return self._rows

    async def listen(self, dsn: str) -> None:
        """Follow the store's notifications until cancelled; hold nothing while not listening."""
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.clear()
                    self.listening = True
                    async for note in conn.notifies():
                        parsed = parse_note(note.payload)
                        if parsed is None:
                            self.clear()  # a note we cannot read: trust nothing we hold
                        else:
                            self.written(*parsed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("candle cache listener reconnecting", extra={"error": type(exc).__name__})
                await asyncio.sleep(1.0)
            finally:
                self.listening = False
                self.clear()


@contextlib.asynccontextmanager
async def cache_for(app_state: Any, settings: Any) -> Any:
    """The app's candle cache for its lifetime, listening to the store (none without a database)."""
    rows = getattr(settings, "candle_cache_rows", 500_000)
    if app_state.db_pool is None or not settings.database_url or rows <= 0:
        app_state.candle_cache = None
        yield
        return
    cache = app_state.candle_cache = CandleCache(rows)
    task = asyncio.create_task(cache.listen(settings.database_url), name="candle-cache-listener")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
