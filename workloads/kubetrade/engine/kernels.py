"""Numba indicator kernels: one small loop per indicator, TA-Lib's conventions.

The kernels follow TA-Lib's definitions (seeds, warm-up length, Wilder smoothing) so a
strategy evolved here means the same thing to anyone who checks it with a common tool;
``tests/engine/test_indicators.py`` holds them to TA-Lib and to the plain-Python
references in :mod:`kubetrade_testbed.reference.indicators` on real candles.

Warm-up: every output is NaN until the indicator has seen enough bars (its lookback),
counted from the first non-NaN input, so an indicator can be fed another indicator's
output.  NaN after the first valid input is not expected (candles are validated) and
propagates.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_ZERO = 1e-8  # TA-Lib's TA_IS_ZERO threshold for the RSI/stddev denominators


@njit(cache=True)
def first_valid(x):  # type: ignore[no-untyped-def]
    """Index of the first non-NaN value (len(x) if none): where warm-up starts counting."""
    for i in range(x.shape[0]):
        if not np.isnan(x[i]):
            return i
    return x.shape[0]


@njit(cache=True)
def sma(x, period):  # type: ignore[no-untyped-def]
    n = x.shape[0]
    out = np.full(n, np.nan)
    s = first_valid(x)
    if s + period > n:
        return out
    total = 0.0
    for i in range(s, s + period - 1):
        total += x[i]
    trailing = s
    for i in range(s + period - 1, n):
        total += x[i]
        out[i] = total / period
        total -= x[trailing]
        trailing += 1
    return out


@njit(cache=True)
def ema_from(x, period, seed_end):  # type: ignore[no-untyped-def]
    """EMA seeded with the mean of the ``period`` values ending at ``seed_end``.

    Plain EMA seeds at ``first_valid + period - 1``; MACD seeds its fast EMA later, at the
    slow EMA's seed bar, which is why the seed position is a parameter.
    """
    n = x.shape[0]
    out = np.full(n, np.nan)
    if seed_end >= n:
        return out
    k = 2.0 / (period + 1)
    total = 0.0
    for i in range(seed_end - period + 1, seed_end + 1):
        total += x[i]
    prev = total / period
    out[seed_end] = prev
    for i in range(seed_end + 1, n):
        prev = (x[i] - prev) * k + prev
        out[i] = prev
    return out


@njit(cache=True)
def ema(x, period):  # type: ignore[no-untyped-def]
    return ema_from(x, period, first_valid(x) + period - 1)


@njit(cache=True)
def rsi(x, period):  # type: ignore[no-untyped-def]
    """Wilder's RSI: averages of the first ``period`` changes, then Wilder smoothing."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    s = first_valid(x)
    if s + period >= n:
        return out
    gain = 0.0
    loss = 0.0
    for i in range(s + 1, s + period + 1):
        d = x[i] - x[i - 1]
        if d < 0:
            loss -= d
        else:
            gain += d
    gain /= period
    loss /= period
    t = gain + loss
    out[s + period] = 100.0 * (gain / t) if abs(t) >= _ZERO else 0.0
    for i in range(s + period + 1, n):
        d = x[i] - x[i - 1]
        gain *= period - 1
        loss *= period - 1
        if d < 0:
            loss -= d
        else:
            gain += d
        gain /= period
        loss /= period
        t = gain + loss
        out[i] = 100.0 * (gain / t) if abs(t) >= _ZERO else 0.0
    return out


@njit(cache=True)
def macd(x, fast, slow, signal):  # type: ignore[no-untyped-def]
    """MACD line, signal and histogram; all three start once the signal line has warmed up."""
    n = x.shape[0]
    s = first_valid(x)
    line = np.full(n, np.nan)
    sig = np.full(n, np.nan)
    hist = np.full(n, np.nan)
    start = s + slow - 1
    if start + signal - 1 >= n:
        return line, sig, hist
    f = ema_from(x, fast, start)
    sl = ema_from(x, slow, start)
    raw = f - sl
    sg = ema_from(raw, signal, start + signal - 1)
    for i in range(start + signal - 1, n):
        line[i] = raw[i]
        sig[i] = sg[i]
        hist[i] = raw[i] - sg[i]
    return line, sig, hist


@njit(cache=True)
def bbands(x, period, nbdev_up, nbdev_down):  # type: ignore[no-untyped-def]
    """Bollinger Bands over an SMA with the population standard deviation."""
    n = x.shape[0]
    mid = sma(x, period)
    up = np.full(n, np.nan)
    lo = np.full(n, np.nan)
    s = first_valid(x)
    # Two passes per window (mean, then squared deviations) instead of TA-Lib's running
    # sum of squares: BTC prices square to ~1e10, and E[x^2] - mean^2 cancels away most
    # digits of a small variance.  O(n * period) is cheap at the periods strategies use.
    for i in range(s + period - 1, n):
        m = mid[i]
        acc = 0.0
        for j in range(i - period + 1, i + 1):
            d = x[j] - m
            acc += d * d
        sd = np.sqrt(acc / period)
        up[i] = m + nbdev_up * sd
        lo[i] = m - nbdev_down * sd
    return up, mid, lo


@njit(cache=True)
def true_range(high, low, close):  # type: ignore[no-untyped-def]
    n = close.shape[0]
    out = np.full(n, np.nan)
    for i in range(1, n):
        pc = close[i - 1]
        out[i] = max(high[i] - low[i], abs(high[i] - pc), abs(low[i] - pc))
    return out


@njit(cache=True)
def atr(high, low, close, period):  # type: ignore[no-untyped-def]
    """Average true range: mean of the first ``period`` true ranges, then Wilder smoothing."""
    n = close.shape[0]
    tr = true_range(high, low, close)
    if period == 1:
        return tr
    out = np.full(n, np.nan)
    if period >= n:
        return out
    prev = 0.0
    for i in range(1, period + 1):
        prev += tr[i]
    prev /= period
    out[period] = prev
    for i in range(period + 1, n):
        prev = (prev * (period - 1) + tr[i]) / period
        out[i] = prev
    return out


@njit(cache=True)
def stoch(high, low, close, fastk, slowk, slowd):  # type: ignore[no-untyped-def]
    """Slow stochastic %K and %D (SMA smoothing), both from the full warm-up on."""
    n = close.shape[0]
    k_out = np.full(n, np.nan)
    d_out = np.full(n, np.nan)
    fast = np.full(n, np.nan)
    for i in range(fastk - 1, n):
        hh = high[i]
        ll = low[i]
        for j in range(i - fastk + 1, i):
            hh = max(hh, high[j])
            ll = min(ll, low[j])
        diff = (hh - ll) / 100.0
        fast[i] = (close[i] - ll) / diff if diff != 0.0 else 0.0
    k = sma(fast, slowk)
    d = sma(k, slowd)
    start = fastk - 1 + slowk - 1 + slowd - 1
    for i in range(start, n):
        k_out[i] = k[i]
        d_out[i] = d[i]
    return k_out, d_out


@njit(cache=True)
def obv(close, volume):  # type: ignore[no-untyped-def]
    """On-balance volume, starting from the first bar's volume."""
    n = close.shape[0]
    out = np.empty(n)
    if n == 0:
        return out
    acc = volume[0]
    out[0] = acc
    for i in range(1, n):
        if close[i] > close[i - 1]:
            acc += volume[i]
        elif close[i] < close[i - 1]:
            acc -= volume[i]
        out[i] = acc
    return out


@njit(cache=True)
def vwap(high, low, close, volume, period):  # type: ignore[no-untyped-def]
    """Rolling VWAP of the typical price over ``period`` bars.

    Crypto trades around the clock, so a session-anchored VWAP has no natural reset; a
    rolling window keeps the value stationary and the backtest and live runner agree on it.
    NaN while the window holds no volume at all.
    """
    n = close.shape[0]
    out = np.full(n, np.nan)
    pv = 0.0
    vol = 0.0
    nonzero = 0
    for i in range(n):
        tp = (high[i] + low[i] + close[i]) / 3.0
        pv += tp * volume[i]
        vol += volume[i]
        nonzero += volume[i] > 0
        if i >= period:
            j = i - period
            pv -= (high[j] + low[j] + close[j]) / 3.0 * volume[j]
            vol -= volume[j]
            nonzero -= volume[j] > 0
        if i >= period - 1 and nonzero > 0:
            out[i] = pv / vol
    return out
