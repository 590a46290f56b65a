"""Price series built from real candles, with a known amount of signal: none, or a planted cycle.

Both keep the real candles' times, volumes, the distribution of their hourly returns and the
size of their wicks; only the order of the returns changes (a random permutation destroys
whatever the market's sequence held), and the planted series adds a sine cycle of known
amplitude and period that trend and oscillator rules can trade.
"""

from __future__ import annotations

import numpy as np

from kubetrade.candles import Candles, from_arrays


def _rebuild(real: Candles, log_close: np.ndarray, symbol: str) -> Candles:
    close = np.exp(log_close)
    open_ = np.concatenate([[close[0]], close[:-1]])
    up = real.high / np.maximum(real.open, real.close)  # each real candle's wicks, relative to its body
    down = real.low / np.minimum(real.open, real.close)
    return from_arrays(real.time, open_, np.maximum(open_, close) * up, np.minimum(open_, close) * down, close,
                       real.volume, symbol=symbol, timeframe=real.timeframe)


def random_walk(real: Candles, seed: int, symbol: str = "NOISE/USDT") -> Candles:
    """The real returns in a random order: a random walk with the market's own return distribution."""
    r = np.diff(np.log(real.close))
    perm = np.random.default_rng(seed).permutation(r)
    return _rebuild(real, np.log(real.close[0]) + np.concatenate([[0.0], np.cumsum(perm)]), symbol)


def planted_cycle(real: Candles, seed: int, amplitude: float = 0.05, period: float = 48.0, noise: float = 0.5,
                  symbol: str = "CYCLE/USDT") -> Candles:
    """A random walk (``noise`` times the real returns, reordered) plus a sine of ``amplitude`` in log price."""
    r = np.diff(np.log(real.close))
    walk = np.concatenate([[0.0], np.cumsum(np.random.default_rng(seed).permutation(r) * noise)])
    t = np.arange(len(real))
    return _rebuild(real, np.log(real.close[0]) + walk + amplitude * np.sin(2 * np.pi * t / period), symbol)
