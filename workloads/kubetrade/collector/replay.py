"""The replay collector: stored real candles published as if they arrived live.

Files named ``BASE_QUOTE-TIMEFRAME`` in any candle format (gzip CSV, Freqtrade's feather or
json, Parquet; the bundled sample or any folder) are loaded with
:func:`kubetrade.candlefiles.load`, merged across symbols and timeframes in order of
candle close time, and published at ``speed`` times real time.  A candle is published
when it would have closed, exactly as the exchange collector publishes it, so consumers
cannot tell replay from live.  With ``loop`` the data is played again shifted by its own
span, so each pass is new data (new message ids) rather than a repeat.  On restart the
replay resumes after the newest candle already in the stream.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kubetrade import candlefiles
from kubetrade.candles import CandleError, Candles, timeframe_ms
from kubetrade.collector.exchange import Resume
from kubetrade.collector.health import Health
from kubetrade.collector.publish import Publisher
from kubetrade.data import SAMPLE_DIR
from kubetrade.messaging.schemas import Candle
from kubetrade.storage.candles import SeriesKey


def data_dir(path: str) -> Path:
    return SAMPLE_DIR if path == "bundled" else Path(path)


def load_series(folder: Path, symbols: list[str], timeframes: list[str]) -> dict[SeriesKey, Candles]:
    """Load one file per (symbol, timeframe); a missing file is an error naming what exists."""
    out = {}
    for symbol in symbols:
        for tf in timeframes:
            path = candlefiles.find(folder, symbol, tf) if folder.is_dir() else None
            if path is None:
                have = [p.name for p in candlefiles.candle_files(folder)] if folder.is_dir() else []
                raise CandleError(f"replay: no file for {symbol} {tf} in {folder} "
                                  f"({candlefiles.file_name(symbol, tf)} or .feather/.parquet/.json); "
                                  f"available: {', '.join(have) or 'none'}")
            out[SeriesKey("", symbol, tf)] = candlefiles.load(path, symbol=symbol, timeframe=tf)
    return out


def merged(series: dict[SeriesKey, Candles], exchange: str, start_ms: int | None = None,
           shift_ms: int = 0) -> Iterator[Candle]:
    """All candles in order of close time (then symbol), as messages."""
    def one(key: SeriesKey, c: Candles) -> Iterator[tuple[int, str, str, Candle]]:
        tf = timeframe_ms(key.timeframe)
        for i in range(len(c)):
            t = int(c.time[i]) + shift_ms
            if start_ms is not None and t < start_ms:
                continue
            yield t + tf, key.symbol, key.timeframe, Candle(
                exchange=exchange, symbol=key.symbol, timeframe=key.timeframe,
                time=t, open=float(c.open[i]), high=float(c.high[i]), low=float(c.low[i]),
                close=float(c.close[i]), volume=float(c.volume[i]))

    for _, _, _, candle in heapq.merge(*(one(k, c) for k, c in series.items()), key=lambda x: x[:3]):
        yield candle


@dataclass
class ReplayCollector:
    series: dict[SeriesKey, Candles]
    exchange: str
    publisher: Publisher
    health: Health
    speed: float = 60.0
    loop: bool = False
    start: datetime | None = None
    resume: Resume | None = None

    def span_ms(self) -> int:
        first = min(int(c.time[0]) for c in self.series.values())
        last = max(int(c.time[-1]) + timeframe_ms(k.timeframe) for k, c in self.series.items())
        return last - first

    async def _resume_points(self) -> dict[tuple[str, str], int]:
        points = {}
        if self.resume is not None:
            for key in self.series:
                last = await self.resume(SeriesKey(self.exchange, key.symbol, key.timeframe))
                if last is not None:
                    points[(key.symbol, key.timeframe)] = last
        return points

    async def run(self, stop: asyncio.Event) -> int:
        """Publish until the data ends (or forever with ``loop``); returns candles published."""
        self.health.set_phase("Running")
        done = await self._resume_points()
        start_ms = int(self.start.timestamp() * 1000) if self.start else None
        published, shift = 0, 0
        origin: tuple[float, int] | None = None  # (monotonic start, data time at start)
        while not stop.is_set():
            for candle in merged(self.series, self.exchange, start_ms, shift):
                if stop.is_set():
                    break
                if candle.time <= done.get((candle.symbol, candle.timeframe), -1):
                    continue
                close = candle.time + timeframe_ms(candle.timeframe)
                if origin is None:
                    origin = (time.monotonic(), close)
                due = origin[0] + (close - origin[1]) / 1000 / self.speed
                if (wait := due - time.monotonic()) > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=wait)
                        break
                    except TimeoutError:
                        pass
                await self.publisher.publish(candle)
                self.health.sample(candle.time, end_ms=close)
                published += 1
            if not self.loop:
                break
            shift += self.span_ms()
        self.health.set_phase("Suspended" if stop.is_set() else "Running")
        return published
