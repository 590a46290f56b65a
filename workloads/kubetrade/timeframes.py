"""Bar lengths, the candle error and plain columns of bars: what a consumer of candles needs without numpy.

:mod:`kubetrade.candles` (the numpy arrays, the file loader, the checks) re-exports
:class:`CandleError` and :func:`timeframe_ms` from here; a strategy runner, which only ever
sees one bar at a time, reads its warm-up history as :class:`Bars` and never loads numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TIMEFRAME_RE = re.compile(r"^(\d+)([smhdw])$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class CandleError(ValueError):
    """Candles that cannot be trusted; the message names the file, the bar and the problem."""


def timeframe_ms(timeframe: str) -> int:
    """Milliseconds in a ccxt-style timeframe such as ``1m``, ``5m``, ``1h`` or ``1d``."""
    m = _TIMEFRAME_RE.match(timeframe)
    if not m or int(m.group(1)) == 0:
        raise CandleError(f"unknown timeframe {timeframe!r}: expected e.g. 1m, 5m, 1h, 1d")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


@dataclass
class Bars:
    """Columns of bars as Python lists (time in UTC ms), oldest first: the shape of a few stored rows."""

    time: list[int] = field(default_factory=list)
    open: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    close: list[float] = field(default_factory=list)
    volume: list[float] = field(default_factory=list)
    timeframe: str = ""

    @classmethod
    def of_rows(cls, rows: list[tuple[float, ...]], timeframe: str = "") -> Bars:
        """(time, open, high, low, close, volume) rows, as the storage reads them."""
        return cls([int(r[0]) for r in rows], [float(r[1]) for r in rows], [float(r[2]) for r in rows],
                   [float(r[3]) for r in rows], [float(r[4]) for r in rows], [float(r[5]) for r in rows], timeframe)

    def __len__(self) -> int:
        return len(self.time)

    @property
    def bar_ms(self) -> int:
        if self.timeframe:
            return timeframe_ms(self.timeframe)
        if len(self) < 2:
            raise CandleError("need a timeframe or at least two bars to know the bar length")
        return self.time[1] - self.time[0]

    def since(self, start: int) -> Bars:
        """Bars ``start:``."""
        return Bars(self.time[start:], self.open[start:], self.high[start:], self.low[start:], self.close[start:],
                    self.volume[start:], self.timeframe)
