"""Plain-Python references for the indicator kernels, written from the textbook definitions.

Slow and obvious on purpose: each is a direct reading of the formula (recomputing windows
instead of keeping running sums), so a disagreement with a kernel points at the kernel.
Used only by tests.
"""

from __future__ import annotations

import math

NAN = math.nan
Series = list[float]


def _start(x: Series) -> int:
    return next((i for i, v in enumerate(x) if not math.isnan(v)), len(x))


def sma(x: Series, period: int) -> Series:
    s = _start(x)
    return [NAN if i < s + period - 1 else sum(x[i - period + 1 : i + 1]) / period for i in range(len(x))]


def _ema_seeded(x: Series, period: int, seed_end: int) -> Series:
    out = [NAN] * len(x)
    if seed_end >= len(x):
        return out
    alpha = 2 / (period + 1)
    value = sum(x[seed_end - period + 1 : seed_end + 1]) / period
    out[seed_end] = value
    for i in range(seed_end + 1, len(x)):
        value = alpha * x[i] + (1 - alpha) * value
        out[i] = value
    return out


def ema(x: Series, period: int) -> Series:
    return _ema_seeded(x, period, _start(x) + period - 1)


def rsi(x: Series, period: int) -> Series:
    out = [NAN] * len(x)
    s = _start(x)
    if s + period >= len(x):
        return out
    changes = [x[i] - x[i - 1] for i in range(s + 1, len(x))]
    avg_gain = sum(max(c, 0.0) for c in changes[:period]) / period
    avg_loss = sum(max(-c, 0.0) for c in changes[:period]) / period
    for j in range(period - 1, len(changes)):
        if j >= period:
            avg_gain = (avg_gain * (period - 1) + max(changes[j], 0.0)) / period
            avg_loss = (avg_loss * (period - 1) + max(-changes[j], 0.0)) / period
        total = avg_gain + avg_loss
        out[s + 1 + j] = 100 * avg_gain / total if total >= 1e-8 else 0.0
    return out


def macd(x: Series, fast: int, slow: int, signal: int) -> tuple[Series, Series, Series]:
    s = _start(x)
    first = s + slow - 1
    line = [f - sl for f, sl in zip(_ema_seeded(x, fast, first), _ema_seeded(x, slow, first), strict=True)]
    sig = _ema_seeded(line, signal, first + signal - 1)
    ready = first + signal - 1
    line = [v if i >= ready else NAN for i, v in enumerate(line)]
    hist = [a - b for a, b in zip(line, sig, strict=True)]
    return line, sig, hist


def bbands(x: Series, period: int, up: float, down: float) -> tuple[Series, Series, Series]:
    mid = sma(x, period)
    upper, lower = [NAN] * len(x), [NAN] * len(x)
    for i, m in enumerate(mid):
        if not math.isnan(m):
            window = x[i - period + 1 : i + 1]
            sd = math.sqrt(sum((v - m) ** 2 for v in window) / period)
            upper[i], lower[i] = m + up * sd, m - down * sd
    return mid, upper, lower


def atr(high: Series, low: Series, close: Series, period: int) -> Series:
    tr = [NAN] + [
        max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1])) for i in range(1, len(close))
    ]
    out = [NAN] * len(close)
    if period == 1:
        return tr
    if period >= len(close):
        return out
    value = sum(tr[1 : period + 1]) / period
    out[period] = value
    for i in range(period + 1, len(close)):
        value = (value * (period - 1) + tr[i]) / period
        out[i] = value
    return out


def stoch(high: Series, low: Series, close: Series, fastk: int, slowk: int, slowd: int) -> tuple[Series, Series]:
    fast = [NAN] * len(close)
    for i in range(fastk - 1, len(close)):
        hh, ll = max(high[i - fastk + 1 : i + 1]), min(low[i - fastk + 1 : i + 1])
        fast[i] = 100 * (close[i] - ll) / (hh - ll) if hh != ll else 0.0
    k = sma(fast, slowk)
    d = sma(k, slowd)
    ready = fastk + slowk + slowd - 3
    return [v if i >= ready else NAN for i, v in enumerate(k)], d


def obv(close: Series, volume: Series) -> Series:
    out = [volume[0]]
    for i in range(1, len(close)):
        sign = (close[i] > close[i - 1]) - (close[i] < close[i - 1])
        out.append(out[-1] + sign * volume[i])
    return out


def vwap(high: Series, low: Series, close: Series, volume: Series, period: int) -> Series:
    out = [NAN] * len(close)
    for i in range(period - 1, len(close)):
        w = range(i - period + 1, i + 1)
        vol = sum(volume[j] for j in w)
        if vol > 0:
            out[i] = sum((high[j] + low[j] + close[j]) / 3 * volume[j] for j in w) / vol
    return out
