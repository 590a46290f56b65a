"""Download closed candles from a ccxt exchange into candle files or PostgreSQL, incrementally.

For each (pair, timeframe) the wanted range is ``--timerange``, or the last ``--days``, or -
when neither is given and data exists - from the newest stored candle up to now (Freqtrade's
"update" behaviour).  Only what is missing is asked for: the part before the first stored
candle and the part after the last one.  Candles still in progress (by the exchange's clock)
are never written.

Nothing is half-written, and an interrupted download is not lost:

- **files**: every page the exchange answers is appended, as complete CSV lines, to a journal
  next to the file (``.BTC_USDT-1m.csv.gz.part``) and fsynced.  When the series is complete,
  the stored candles and the journal are merged and the file is replaced atomically
  (:func:`kubetrade.candlefiles.write`), then the journal is removed.  A download killed at
  any point leaves the old file intact and the journal with every page it had; the rerun reads
  the journal back (a torn last line is dropped) and asks only for what comes after it.
- **PostgreSQL**: every page is one transaction of the storage layer's binary COPY ingest
  (:func:`kubetrade.storage.candles.ingest`), so a rerun resumes after the newest stored candle.

Rate limits: ccxt's own limiter paces the requests (``enableRateLimit``); a 429/418 is waited
out for at least the exchange's ``Retry-After`` and network errors are retried with backoff
(:mod:`kubetrade.retrying`); after ``attempts`` failed tries the download stops with the error
and keeps what it had.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kubetrade import candlefiles, retrying
from kubetrade.candles import HEADER, CandleError, Candles, from_arrays, timeframe_ms
from kubetrade.ccxtclient import point_ccxt
from kubetrade.timerange import TimeRange

DAY_MS = 86_400_000


class DownloadError(RuntimeError):
    """A download that cannot go on (unknown exchange, pair or timeframe, an exchange that keeps failing)."""


@dataclass(frozen=True)
class Series:
    symbol: str
    timeframe: str


@dataclass
class Outcome:
    """What one series' download did."""

    series: Series
    had: int = 0
    """Candles stored before (file or database), plus those recovered from a journal."""
    fetched: int = 0
    total: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    target: str = ""
    gaps: list[tuple[int, int]] = field(default_factory=list)
    """(open time of the candle before a gap, bars missing) where the exchange has no candles."""
    resumed: int = 0
    """Candles read back from an interrupted run's journal."""


Progress = Callable[[Series, int, int], None]
"""``progress(series, done, total)``: candles fetched so far out of those expected."""


# --- the exchange --------------------------------------------------------------------------


def make_client(exchange_id: str, pairs: list[str], base_url: str | None, timeout_ms: int = 15_000) -> Any:
    """ccxt's async client for ``exchange_id``, rate-limited; pointed at ``base_url`` if given."""
    import ccxt.async_support as ccxt_async

    if exchange_id not in ccxt_async.exchanges:
        close = difflib.get_close_matches(exchange_id, ccxt_async.exchanges, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else " (e.g. binance, kraken, okx, bybit)"
        raise DownloadError(f"unknown exchange {exchange_id!r}: not a ccxt exchange id{hint}")
    config: dict[str, Any] = {"enableRateLimit": True, "timeout": timeout_ms}
    if exchange_id == "binance":  # ask only for the market types the pairs need
        types = ["spot"] if all(":" not in p for p in pairs) else ["spot", "linear"]
        config["options"] = {"fetchMarkets": {"types": types}, "fetchCurrencies": False}
    client = getattr(ccxt_async, exchange_id)(config)
    if base_url:
        point_ccxt(client, base_url)
    return client


def _retry_after(client: Any) -> retrying.RetryAfter:
    def lookup(exc: BaseException) -> float | None:
        from ccxt.base.errors import DDoSProtection

        if isinstance(exc, DDoSProtection):
            return retrying.retry_after_header(getattr(client, "last_response_headers", None))
        return None

    return lookup


@dataclass
class Exchange:
    """The exchange side of a download: markets checked once, pages fetched with retries."""

    client: Any
    exchange_id: str
    attempts: int = 8
    first_backoff: float = 1.0
    max_backoff: float = 60.0
    on_retry: Callable[[BaseException, float], None] | None = None

    async def _call(self, fn: Callable[[], Any]) -> Any:
        from ccxt.base.errors import DDoSProtection, ExchangeNotAvailable, NetworkError, RequestTimeout

        try:
            return await retrying.call(fn, first=self.first_backoff, maximum=self.max_backoff,
                                       retry_on=(DDoSProtection, NetworkError, RequestTimeout, ExchangeNotAvailable),
                                       retry_after=_retry_after(self.client), on_retry=self.on_retry,
                                       attempts=self.attempts)
        except (DDoSProtection, NetworkError, RequestTimeout, ExchangeNotAvailable) as exc:
            raise DownloadError(f"{self.exchange_id} kept failing after {self.attempts} tries: "
                                f"{type(exc).__name__}: {str(exc)[:200]}") from exc

    async def check(self, series: list[Series]) -> None:
        """Refuse, before anything is fetched, what the exchange does not offer."""
        from ccxt.base.errors import BaseError

        if not self.client.has.get("fetchOHLCV"):
            raise DownloadError(f"{self.exchange_id} has no candle history in ccxt (has['fetchOHLCV'] is false)")
        try:
            await self._call(self.client.load_markets)
        except BaseError as exc:
            raise DownloadError(f"{self.exchange_id}: cannot load markets: {type(exc).__name__}: "
                                f"{str(exc)[:200]}") from exc
        markets = self.client.markets or {}
        offered = getattr(self.client, "timeframes", None) or {}
        for s in series:
            if s.symbol not in markets:
                close = difflib.get_close_matches(s.symbol, list(markets), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise DownloadError(f"unknown pair {s.symbol!r} on {self.exchange_id}{hint}")
            if offered and s.timeframe not in offered:
                raise DownloadError(f"{self.exchange_id} has no {s.timeframe} candles; it offers "
                                    f"{', '.join(offered)}")

    def page_limit(self, symbol: str) -> int:
        market = (self.client.markets or {}).get(symbol) or {}
        kind = "spot" if market.get("spot", True) else ("swap" if market.get("swap") else "spot")
        features = getattr(self.client, "features", None) or {}
        with contextlib.suppress(AttributeError, KeyError, TypeError):
            section = features[kind]
            if "linear" in section:
                section = section["linear"]
            limit = int(section["fetchOHLCV"]["limit"])
            if limit > 0:
                return min(limit, 1000)
        return 500

    async def now_ms(self) -> int:
        """The exchange's time (its clock decides which candles are closed), else ours."""
        import time

        if self.client.has.get("fetchTime"):
            with contextlib.suppress(Exception):
                return int(await self._call(self.client.fetch_time))
        return int(time.time() * 1000)

    async def page(self, s: Series, since: int, limit: int) -> list[list[Any]]:
        rows: list[list[Any]] = await self._call(lambda: self.client.fetch_ohlcv(s.symbol, s.timeframe, since=since,
                                                                                 limit=limit))
        return rows


def clean_page(rows: list[list[Any]], since: int, end: int, tf: int) -> np.ndarray:
    """Valid candles of a page with open time in [since, end), sorted, one per time (n x 6 float64)."""
    good: dict[int, list[float]] = {}
    for row in rows:
        if not isinstance(row, (list, tuple)) or len(row) < 6 or not isinstance(row[0], (int, float)):
            continue
        t = int(row[0])
        if t < since or t >= end or t % tf:
            continue
        try:
            values = [float(x) for x in row[1:6]]
        except (TypeError, ValueError):
            continue
        if not all(np.isfinite(values)):
            continue
        good[t] = [float(t), *values]
    if not good:
        return np.empty((0, 6))
    return np.array([good[t] for t in sorted(good)], dtype=np.float64)


# --- where candles go ---------------------------------------------------------------------


def journal_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.part")


def read_journal(path: Path) -> np.ndarray:
    """Complete rows of a journal (n x 6); a torn last line or a garbled one is dropped."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return np.empty((0, 6))
    rows = []
    lines = text.split("\n")
    for line in lines[:-1]:  # the part after the last newline was never completed
        parts = line.split(",")
        if len(parts) != 6:
            continue
        try:
            rows.append([float(x) for x in parts])
        except ValueError:
            continue
    return np.array(rows, dtype=np.float64) if rows else np.empty((0, 6))


def append_journal(path: Path, table: np.ndarray) -> None:
    """Append a page to the journal as complete lines, then fsync: a kill keeps whole lines."""
    if not len(table):
        return
    text = "".join(f"{int(r[0])},{r[1]!r},{r[2]!r},{r[3]!r},{r[4]!r},{r[5]!r}\n" for r in table.tolist())
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def merge(*tables: np.ndarray) -> np.ndarray:
    """Rows of every table, one per open time (the later table wins), sorted."""
    parts = [t for t in tables if len(t)]
    if not parts:
        return np.empty((0, 6))
    allrows = np.concatenate(parts)
    # the last occurrence of each time wins: reverse, take the first of each unique time, sort
    rev = allrows[::-1]
    _, idx = np.unique(rev[:, 0], return_index=True)
    return rev[idx]


def gaps_of(times: np.ndarray, tf: int) -> list[tuple[int, int]]:
    if len(times) < 2:
        return []
    step = np.diff(times.astype(np.int64))
    where = np.flatnonzero(step != tf)
    return [(int(times[i]), int(step[i] // tf) - 1) for i in where]


def table_of(c: Candles) -> np.ndarray:
    return np.column_stack([c.time.astype(np.float64), c.open, c.high, c.low, c.close, c.volume])


def candles_of(table: np.ndarray, s: Series, source: str) -> Candles:
    return from_arrays(table[:, 0].astype(np.int64), table[:, 1], table[:, 2], table[:, 3], table[:, 4], table[:, 5],
                       symbol=s.symbol, timeframe=s.timeframe, source=source, check=False)


def wanted_range(tr: TimeRange | None, days: float | None, have: tuple[int, int] | None, now_ms: int, tf: int,
                 default_days: float) -> tuple[int, int]:
    """[start, end) of open times to hold after the download (end = the first candle not yet closed)."""
    last_closed_end = (now_ms // tf) * tf  # candles with open time < this have closed
    end = last_closed_end if tr is None or tr.end_ms is None else min(tr.end_ms, last_closed_end)
    if tr is not None and tr.start_ms is not None:
        start = tr.start_ms
    elif days is not None:
        start = now_ms - int(days * DAY_MS)
    elif have is not None:
        start = have[0]  # update: from what is there up to now
    else:
        start = now_ms - int(default_days * DAY_MS)
    start = -(-start // tf) * tf  # the first whole candle at or after start
    return start, end


async def _fetch_range(ex: Exchange, s: Series, start: int, end: int, sink: Callable[[np.ndarray], Any],
                       progress: Progress | None, done: int, total: int) -> int:
    """Fetch [start, end) page by page into ``sink``; returns candles fetched."""
    tf = timeframe_ms(s.timeframe)
    limit = ex.page_limit(s.symbol)
    cursor, fetched = start, 0
    while cursor < end:
        rows = await ex.page(s, cursor, limit)
        table = clean_page(rows, cursor, end, tf)
        if not len(table):
            # Nothing at or after the cursor: before the listing, ccxt's exchanges answer with the
            # first candles there are (a later page); an empty answer means there is nothing more.
            later = [int(r[0]) for r in rows if isinstance(r, (list, tuple)) and r and isinstance(r[0], (int, float))
                     and int(r[0]) > cursor]
            if not later:
                break
            cursor = min(later)
            continue
        await sink(table)
        fetched += len(table)
        if progress is not None:
            progress(s, done + fetched, total)
        cursor = int(table[-1, 0]) + tf
    return fetched


async def to_file(ex: Exchange, s: Series, path: Path, *, tr: TimeRange | None, days: float | None,
                  default_days: float, erase: bool = False, progress: Progress | None = None) -> Outcome:
    """Download one series into the candle file ``path`` (its format by suffix); see the module doc."""
    tf = timeframe_ms(s.timeframe)
    journal = journal_path(path)
    stored, recovered = _stored_file(path, journal, s, erase)
    have_rows = merge(stored, recovered)
    have = (int(have_rows[0, 0]), int(have_rows[-1, 0])) if len(have_rows) else None
    now = await ex.now_ms()
    start, end = wanted_range(tr, days, have, now, tf, default_days)
    if end <= start:
        raise DownloadError(f"{s.symbol} {s.timeframe}: the range asked for ends before it starts, or lies in the "
                            f"future ({_when(start)} to {_when(end)}, exchange time {_when(now)})")
    segments = _missing(start, end, have, tf)
    expected = sum((b - a) // tf for a, b in segments)
    out = Outcome(s, had=len(have_rows), target=str(path), resumed=len(recovered))
    if progress is not None:
        progress(s, 0, expected)

    async def sink(table: np.ndarray) -> None:
        append_journal(journal, table)

    done = 0
    for a, b in segments:
        done += await _fetch_range(ex, s, a, b, sink, progress, done, expected)
    out.fetched = done
    final = merge(stored, read_journal(journal))
    if len(final) == 0:
        raise DownloadError(f"{s.symbol} {s.timeframe}: {ex.exchange_id} has no candles from {_when(start)} to "
                            f"{_when(end)}")
    if done or len(recovered) or not len(stored):
        candlefiles.write(path, candles_of(final, s, str(path)))  # atomic: the old file or the new one
    _remove(journal)
    out.total, out.first_ms, out.last_ms = len(final), int(final[0, 0]), int(final[-1, 0])
    out.gaps = gaps_of(final[:, 0], tf)
    return out


def _stored_file(path: Path, journal: Path, s: Series, erase: bool) -> tuple[np.ndarray, np.ndarray]:
    """(rows in the file, rows in an interrupted run's journal); ``erase`` deletes both first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if erase:
        _remove(path)
        _remove(journal)
    stored = np.empty((0, 6))
    if path.is_file():
        try:
            stored = table_of(candlefiles.load(path, symbol=s.symbol, timeframe=s.timeframe, check=False))
        except CandleError as exc:
            raise DownloadError(f"{exc}; move it away or rerun with --erase to download it again") from exc
    _cut_torn_line(journal)
    return stored, read_journal(journal)


def _cut_torn_line(journal: Path) -> None:
    """Truncate a journal after its last complete line, so appended pages start on a line of their own."""
    try:
        data = journal.read_bytes()
    except FileNotFoundError:
        return
    if data and not data.endswith(b"\n"):
        with open(journal, "rb+") as f:
            f.truncate(data.rfind(b"\n") + 1)
            os.fsync(f.fileno())


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _missing(start: int, end: int, have: tuple[int, int] | None, tf: int) -> list[tuple[int, int]]:
    if have is None:
        return [(start, end)]
    segments = []
    if start < have[0]:
        segments.append((start, min(end, have[0])))
    if have[1] + tf < end:
        segments.append((max(start, have[1] + tf), end))
    return segments


async def to_database(ex: Exchange, s: Series, dsn: str, *, tr: TimeRange | None, days: float | None,
                      default_days: float, progress: Progress | None = None) -> Outcome:
    """Download one series into PostgreSQL's ``candles`` (one transaction per page)."""
    import psycopg

    from kubetrade.storage.candles import SeriesKey, ingest

    tf = timeframe_ms(s.timeframe)
    key = SeriesKey(ex.exchange_id, s.symbol, s.timeframe)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        have, count = await _stored_range(conn, key)
        now = await ex.now_ms()
        start, end = wanted_range(tr, days, have, now, tf, default_days)
        if end <= start:
            raise DownloadError(f"{s.symbol} {s.timeframe}: the range asked for ends before it starts, or lies in "
                                f"the future ({_when(start)} to {_when(end)})")
        segments = _missing(start, end, have, tf)
        expected = sum((b - a) // tf for a, b in segments)
        out = Outcome(s, had=count, target=f"postgresql candles ({key.exchange} {key.symbol} {key.timeframe})")
        if progress is not None:
            progress(s, 0, expected)

        async def sink(table: np.ndarray) -> None:
            await ingest(conn, key, candles_of(table, s, "download"))

        done = 0
        for a, b in segments:
            done += await _fetch_range(ex, s, a, b, sink, progress, done, expected)
        out.fetched = done
        have, out.total = await _stored_range(conn, key)
        if have:
            out.first_ms, out.last_ms = have
    return out


async def _stored_range(conn: Any, key: Any) -> tuple[tuple[int, int] | None, int]:
    cur = await conn.execute(
        "SELECT (extract(epoch FROM min(time)) * 1000)::bigint, (extract(epoch FROM max(time)) * 1000)::bigint, "
        "count(*) FROM candles WHERE exchange = %s AND symbol = %s AND timeframe = %s",
        (key.exchange, key.symbol, key.timeframe))
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return None, 0
    return (int(row[0]), int(row[1])), int(row[2])


def _when(ms: int) -> str:
    return str(np.datetime64(int(ms), "ms")).replace("T", " ")[:16]


__all__ = ["HEADER", "DownloadError", "Exchange", "Outcome", "Series", "make_client", "to_database", "to_file"]
