"""The shared state of the local exchange: markets, candles, clock, request weight, faults.

One :class:`ExchangeState` object backs every router of the app (public market data here,
signed trading in ``trading.py``), so an order can fill at the price the klines show and a
rate-limit ban applies to every endpoint, as on the real exchange.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kubetrade.candles import Candles, timeframe_ms


class Clock:
    """The exchange's notion of now: wall time, or a fixed/advanced time a test controls.

    A controllable clock lets a test say "ten minutes pass" without waiting ten minutes;
    the collector under test is given the same clock so both agree which candles are closed.
    """

    def __init__(self, now_ms: int | None = None) -> None:
        self._fixed = now_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._fixed if self._fixed is not None else int(time.time() * 1000)

    def set(self, now_ms: int) -> None:
        with self._lock:
            self._fixed = now_ms

    def advance(self, ms: int) -> int:
        with self._lock:
            base = self._fixed if self._fixed is not None else int(time.time() * 1000)
            self._fixed = base + ms
            return self._fixed

    __call__ = now_ms


@dataclass
class Market:
    """One spot market with Binance's filters (tick size, step size, minimum notional)."""

    symbol: str
    """Binance id, e.g. BTCUSDT."""
    base: str
    quote: str
    tick_size: str = "0.01"
    step_size: str = "0.00001"
    min_qty: str = "0.00001"
    max_qty: str = "9000.00000000"
    min_notional: str = "5.00000000"
    status: str = "TRADING"


class RateLimited(Exception):
    """Raised by :meth:`Limits.charge`; the app turns it into a 429 or 418 answer."""

    def __init__(self, status: int, retry_after: int, used: int) -> None:
        super().__init__(f"HTTP {status}, retry after {retry_after}s")
        self.status = status
        self.retry_after = retry_after
        self.used = used


class Limits:
    """Binance's REQUEST_WEIGHT accounting per wall-clock minute, with 429 then 418 bans.

    As on Binance: a request over the minute's weight gets 429 with ``Retry-After``; a client
    that keeps calling before that time is banned with 418 for ``ban_seconds``.
    """

    def __init__(self, weight_per_minute: int = 6000, ban_seconds: int = 120, window_seconds: int = 60) -> None:
        self.weight_per_minute = weight_per_minute
        self.ban_seconds = ban_seconds
        self.window_seconds = window_seconds
        """60 on Binance; a test shortens it so that a Retry-After is seconds, not a minute."""
        self._lock = threading.Lock()
        self._origin: float | None = None
        """Windows count from the first request (not from the wall clock's minutes), so that which
        requests share a window does not depend on when a test happens to start."""
        self._minute = 0
        self._used = 0
        self._retry_until = 0.0
        self._banned_until = 0.0
        self.rejected_429 = 0
        self.rejected_418 = 0

    @property
    def used(self) -> int:
        with self._lock:
            return self._used if self._minute == self._window(time.time()) else 0

    def _window(self, now: float) -> int:
        if self._origin is None:
            self._origin = now
        return int((now - self._origin) // self.window_seconds)

    def reset(self) -> None:
        with self._lock:
            self._used = 0
            self._origin = None
            self._minute = 0
            self._retry_until = self._banned_until = 0.0

    def charge(self, weight: int) -> int:
        """Add a request's weight; return the minute's total or raise :class:`RateLimited`."""
        now = time.time()
        with self._lock:
            minute = self._window(now)
            if minute != self._minute:
                self._minute, self._used = minute, 0
            if now < self._banned_until:
                self.rejected_418 += 1
                raise RateLimited(418, int(self._banned_until - now) + 1, self._used)
            if now < self._retry_until:
                # Ignoring Retry-After is what earns a ban on the real exchange.
                self._banned_until = now + self.ban_seconds
                self.rejected_418 += 1
                raise RateLimited(418, self.ban_seconds, self._used)
            if self._used + weight > self.weight_per_minute:
                assert self._origin is not None
                self._retry_until = self._origin + (minute + 1) * float(self.window_seconds)
                self.rejected_429 += 1
                raise RateLimited(429, int(self._retry_until - now) + 1, self._used)
            self._used += weight
            return self._used


@dataclass
class Fault:
    """A planned misbehaviour for the next ``times`` requests whose path starts with ``path``.

    ``status`` answers with that HTTP status, ``body`` (JSON, or text if a str) and ``headers``
    (e.g. ``Retry-After``); ``delay`` sleeps first (longer than
    the client's timeout makes a timeout); ``rewrite`` transforms the JSON the endpoint would
    have returned (malformed, out-of-order or duplicated rows).
    """

    path: str
    times: int = 1
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    rewrite: Callable[[Any], Any] | None = None
    hits: int = 0


class Faults:
    """Queue of :class:`Fault` s, consumed by the middleware and the endpoints."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[Fault] = deque()

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self._items.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def take(self, path: str, *, rewriting: bool) -> Fault | None:
        """The first pending fault for ``path`` of the asked kind, counting one use of it."""
        with self._lock:
            for fault in self._items:
                if path.startswith(fault.path) and (fault.rewrite is not None) == rewriting:
                    fault.hits += 1
                    fault.times -= 1
                    if fault.times <= 0:
                        self._items.remove(fault)
                    return fault
        return None

    async def apply_rewrite(self, path: str, data: Any) -> Any:
        fault = self.take(path, rewriting=True)
        if fault is None or fault.rewrite is None:
            return data
        if fault.delay:
            await asyncio.sleep(fault.delay)
        return fault.rewrite(data)


@dataclass
class Series:
    """Real candles of one market at one interval, served as the clock reaches them."""

    candles: Candles
    interval_ms: int

    def visible(self, now_ms: int) -> int:
        """Number of bars whose open time is at or before now (the last may be in progress)."""
        return int(np.searchsorted(self.candles.time, now_ms, side="right"))

    def bar(self, i: int, now_ms: int) -> tuple[int, float, float, float, float, float]:
        """Bar ``i`` as seen at ``now_ms``: a bar still in progress is shown as far as it has got.

        Close and volume are interpolated by the elapsed fraction, so a collector that
        stored an open bar as final would be caught out by the later, different, final bar.
        """
        c = self.candles
        t = int(c.time[i])
        o, h, low, cl, v = (float(c.open[i]), float(c.high[i]), float(c.low[i]), float(c.close[i]), float(c.volume[i]))
        if t + self.interval_ms > now_ms:
            frac = (now_ms - t) / self.interval_ms
            cl = round(o + (cl - o) * frac, 8)
            h, low, v = max(o, cl), min(o, cl), round(v * frac, 8)
        return t, o, h, low, cl, v


@dataclass
class ExchangeState:
    """Everything the local exchange knows; shared by all routers via ``app.state.exchange``."""

    clock: Clock = field(default_factory=Clock)
    limits: Limits = field(default_factory=Limits)
    faults: Faults = field(default_factory=Faults)
    markets: dict[str, Market] = field(default_factory=dict)
    series: dict[tuple[str, str], Series] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(method, path?query) of every request, for tests that check what a client asked."""
    extensions: dict[str, Any] = field(default_factory=dict)
    """State owned by other routers (e.g. ``trading``: balances, orders), keyed by router name."""

    def add_market(self, market: Market) -> Market:
        self.markets[market.symbol] = market
        return market

    def add_candles(self, market_id: str, interval: str, candles: Candles) -> Series:
        """Serve ``candles`` as ``market_id`` klines at ``interval`` (adds a market if new)."""
        if market_id not in self.markets:
            base, quote = _split(market_id)
            self.add_market(Market(market_id, base, quote))
        s = Series(candles, timeframe_ms(interval))
        self.series[(market_id, interval)] = s
        return s

    def last_price(self, market_id: str, now_ms: int | None = None) -> float | None:
        """Close of the newest visible candle of the finest interval served for the market."""
        now = self.clock.now_ms() if now_ms is None else now_ms
        best: Series | None = None
        for (mid, _), s in self.series.items():
            if mid == market_id and (best is None or s.interval_ms < best.interval_ms):
                best = s
        if best is None:
            return None
        n = best.visible(now)
        return best.bar(n - 1, now)[4] if n else None


def _split(market_id: str) -> tuple[str, str]:
    for quote in ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB", "EUR"):
        if market_id.endswith(quote) and len(market_id) > len(quote):
            return market_id[: -len(quote)], quote
    raise ValueError(f"cannot split market id {market_id!r} into base and quote; add a Market explicitly")
