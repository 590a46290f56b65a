"""Market data as the risk manager needs it: last price, when it came,
the last candle's move, and return histories for correlation and VaR.

Reads candles, tickers and public trades from ``md.>`` (core NATS: only the newest value
matters here, a replay would be stale by definition).  A message that does not parse is
ignored here; the collector's own consumers dead-letter it.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from kubetrade.messaging.prices import price_of

DAY_MS = 86_400_000


@dataclass
class SymbolHistory:
    price: float = 0.0
    seen_ms: int = 0
    last_move: float = 0.0
    last_candle: int = -1
    bar: tuple[str, int] | None = None
    """(timeframe, open time) of the closed candle whose close ``price`` is; None when a ticker or a trade
    set it.  A stop the refresh finds crossed at that price names the bar, so its paper fill is the
    kernel's (the stop, or the open if the bar gapped past it), as when the candle itself triggers it."""
    closes: deque[float] = field(default_factory=lambda: deque(maxlen=10_001))
    day: int = -1
    day_close: float = 0.0
    daily: deque[float] = field(default_factory=lambda: deque(maxlen=1_001))


class MarketFeed:
    """Per-symbol market view, updated from ``md.>`` messages; exported into PortfolioState."""

    def __init__(self) -> None:
        self.symbols: dict[str, SymbolHistory] = {}

    def on_message(
        self, subject: str, data: bytes, received_ms: int | None = None
    ) -> tuple[str, str, float, int] | None:
        """Take one market-data message in; returns what :func:`price_of` read from it (decoded once)."""
        got = price_of(subject, data)
        if got is None:
            return None
        _, symbol, price, t = got
        h = self.symbols.setdefault(symbol, SymbolHistory())
        h.price = price
        h.seen_ms = received_ms if received_ms is not None else int(time.time() * 1000)
        h.bar = None  # the manager names the bar of a candle's close (it decodes the candle)
        if ".candle." in subject:
            self.on_candle(symbol, t, price)  # a candle's time is its open time, its price the close
        return got

    def on_candle(self, symbol: str, time_ms: int, close: float) -> None:
        h = self.symbols.setdefault(symbol, SymbolHistory())
        if time_ms <= h.last_candle:
            return  # a replayed or out-of-order candle says nothing new
        if h.closes:
            h.last_move = abs(close / h.closes[-1] - 1.0)
        h.closes.append(close)
        h.last_candle = time_ms
        day = time_ms // DAY_MS
        if h.day >= 0 and day != h.day and h.day_close > 0:
            h.daily.append(h.day_close)
        h.day = day
        h.day_close = close

    def bar_returns(self, symbol: str) -> np.ndarray:
        c = np.asarray(self.symbols[symbol].closes, dtype=float)
        return c[1:] / c[:-1] - 1.0 if len(c) > 1 else np.empty(0)

    def daily_returns(self, symbol: str) -> np.ndarray:
        d = np.asarray(self.symbols[symbol].daily, dtype=float)
        return d[1:] / d[:-1] - 1.0 if len(d) > 1 else np.empty(0)
