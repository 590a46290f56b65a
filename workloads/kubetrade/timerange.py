"""Time ranges as Freqtrade users write them: ``20240101-20240201``, ``20240101-``, ``-20240201``.

Also accepted: dates with a time (``20240101T0930``, ``202401010930``), Unix seconds or
milliseconds (``1704067200-1706745600``).  A range is half-open, [start, end): candles whose
open time is at or after the start and before the end, so ``20240101-20240201`` is the
whole of January.  Either side may be left open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from kubetrade.candles import Candles

_SIDE = re.compile(r"^(\d{8})(?:T?(\d{4})(\d{2})?)?$")
EXAMPLE = "YYYYMMDD-YYYYMMDD, YYYYMMDD-, -YYYYMMDD or Unix seconds, e.g. 20240101-20240201"


class TimeRangeError(ValueError):
    """A timerange that cannot be parsed, or that selects no candle."""


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _side(text: str, whole: str) -> int | None:
    if not text:
        return None
    if text.isdigit() and len(text) in (10, 13):
        return int(text) * (1000 if len(text) == 10 else 1)
    m = _SIDE.match(text)
    if not m:
        raise TimeRangeError(f"timerange {whole!r}: {text!r} is not a date; expected {EXAMPLE}")
    try:
        d = datetime.strptime(m[1] + (m[2] or "0000") + (m[3] or "00"), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError as exc:
        raise TimeRangeError(f"timerange {whole!r}: {text!r} is not a valid date ({exc})") from exc
    return int(d.timestamp() * 1000)


@dataclass(frozen=True)
class TimeRange:
    start_ms: int | None = None
    end_ms: int | None = None
    text: str = ""

    def __str__(self) -> str:
        lo = _when(self.start_ms) if self.start_ms is not None else "the first candle"
        hi = _when(self.end_ms) if self.end_ms is not None else "the last candle"
        return f"{lo} to {hi}"

    def bars(self, c: Candles) -> tuple[int, int]:
        """Bar indices [first, stop) of ``c`` inside the range, or a TimeRangeError saying where the data is."""
        lo = 0 if self.start_ms is None else int(np.searchsorted(c.time, self.start_ms, side="left"))
        hi = len(c) if self.end_ms is None else int(np.searchsorted(c.time, self.end_ms, side="left"))
        if hi <= lo:
            raise TimeRangeError(
                f"timerange {self.text or self} is outside the data of {c.label}, which runs from "
                f"{_when(int(c.time[0]))} to {_when(int(c.time[-1]))}")
        return lo, hi

    def apply(self, c: Candles) -> Candles:
        """The candles inside the range (the whole series when the range is open on both sides)."""
        lo, hi = self.bars(c)
        if (lo, hi) == (0, len(c)):
            return c
        cut = c.slice(lo, hi)
        return Candles(cut.time, cut.open, cut.high, cut.low, cut.close, cut.volume, symbol=c.symbol,
                       timeframe=c.timeframe, source=c.source)


def parse(text: str) -> TimeRange:
    """Parse ``START-END`` (either side may be empty); raises :class:`TimeRangeError` with an example."""
    raw = text.strip()
    if raw.count("-") != 1:
        raise TimeRangeError(f"timerange {text!r}: expected {EXAMPLE}")
    a, _, b = raw.partition("-")
    start, end = _side(a, text), _side(b, text)
    if start is None and end is None:
        raise TimeRangeError(f"timerange {text!r}: give a start, an end or both; expected {EXAMPLE}")
    if start is not None and end is not None and end <= start:
        raise TimeRangeError(f"timerange {text!r}: the end is not after the start")
    return TimeRange(start, end, raw)


__all__ = ["EXAMPLE", "TimeRange", "TimeRangeError", "parse"]
