"""Pair selection: which of an exchange's pairs the evolution should work on.

Criteria, each measured on the last ``lookback_days`` of daily candles (built from any
timeframe by summing quote volume and taking each day's last close):

* **Liquidity** - median daily quote volume (``close * base volume``).  Pairs below
  ``min_daily_volume`` are dropped outright: thin markets fill badly and backtests of them lie.
* **Volatility** - annualised standard deviation of daily log returns.  Strategies need
  movement to pay their fees, but extreme volatility is mostly noise and gap risk, so the
  score prefers the band ``[vol_low, vol_high]`` (full marks inside, falling off outside).
* **Trend** - Kaufman's efficiency ratio over the window: ``|net move| / sum |daily moves|``,
  0 (pure noise) to 1 (a straight line).  Rule-based strategies earn more where moves persist.

Each criterion becomes a rank percentile among the eligible pairs (robust to outliers and
units), and the score is the weighted mean (weights 0.4 liquidity, 0.3 volatility fit,
0.3 trend).  Ties break on liquidity, then symbol, so the choice is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from kubetrade.candles import Candles

DAY_MS = 86_400_000
WEIGHTS = {"liquidity": 0.4, "volatility": 0.3, "trend": 0.3}


@dataclass(frozen=True)
class PairStats:
    symbol: str
    daily_volume: float
    volatility: float
    trend: float
    days: int


@dataclass(frozen=True)
class RankedPair:
    symbol: str
    score: float
    stats: PairStats
    components: dict[str, float]


@dataclass(frozen=True)
class Rejected:
    symbol: str
    reason: str


def daily(c: Candles) -> tuple[np.ndarray, np.ndarray]:
    """(closes, quote volumes) per UTC day, complete days only as far as the data goes."""
    day = (c.time // DAY_MS).astype(np.int64)
    quote = c.close * c.volume
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    ends = np.r_[starts[1:], len(day)] - 1
    return c.close[ends], np.add.reduceat(quote, starts)


def pair_stats(symbol: str, c: Candles, lookback_days: int = 30) -> PairStats:
    closes, volumes = daily(c)
    closes, volumes = closes[-(lookback_days + 1):], volumes[-lookback_days:]
    rets = np.diff(np.log(closes))
    vol = float(np.std(rets, ddof=1) * math.sqrt(365)) if len(rets) > 1 else 0.0
    path = float(np.sum(np.abs(np.diff(closes))))
    trend = abs(float(closes[-1] - closes[0])) / path if path > 0 else 0.0
    return PairStats(symbol, float(np.median(volumes)) if len(volumes) else 0.0, vol, trend, len(volumes))


def _percentile_ranks(values: list[float]) -> list[float]:
    n = len(values)
    if n == 1:
        return [1.0]
    order = sorted(range(n), key=lambda i: values[i])
    ranks = [0.0] * n
    for r, i in enumerate(order):
        ranks[i] = r / (n - 1)
    return ranks


def _band_fit(v: float, low: float, high: float) -> float:
    """1 inside the band, falling off linearly to 0 at half the low / twice the high."""
    if low <= v <= high:
        return 1.0
    if v < low:
        return max(0.0, (v - low / 2) / (low / 2))
    return max(0.0, 1 - (v - high) / high)


def rank_pairs(
    candles: Mapping[str, Candles],
    *,
    quote: str = "USDT",
    top_n: int = 5,
    min_daily_volume: float = 1e7,
    lookback_days: int = 30,
    vol_low: float = 0.3,
    vol_high: float = 1.2,
) -> tuple[list[RankedPair], list[Rejected]]:
    """The best ``top_n`` pairs (best first) and every pair left out, with the reason."""
    rejected: list[Rejected] = []
    eligible: list[PairStats] = []
    for symbol, c in sorted(candles.items()):
        if symbol.split(":")[0].split("/")[-1] != quote:
            rejected.append(Rejected(symbol, f"quote is not {quote}"))
            continue
        st = pair_stats(symbol, c, lookback_days)
        if st.days < min(lookback_days, 7):
            rejected.append(Rejected(symbol, f"only {st.days} days of data (need {min(lookback_days, 7)})"))
        elif st.daily_volume < min_daily_volume:
            rejected.append(Rejected(symbol, f"median daily volume {st.daily_volume:,.0f} {quote} "
                                             f"below {min_daily_volume:,.0f}"))
        else:
            eligible.append(st)
    if not eligible:
        return [], rejected
    liq = _percentile_ranks([s.daily_volume for s in eligible])
    vol = [_band_fit(s.volatility, vol_low, vol_high) for s in eligible]
    trd = _percentile_ranks([s.trend for s in eligible])
    ranked = []
    for i, s in enumerate(eligible):
        comp = {"liquidity": liq[i], "volatility": vol[i], "trend": trd[i]}
        score = sum(WEIGHTS[k] * v for k, v in comp.items())
        ranked.append(RankedPair(s.symbol, score, s, comp))
    ranked.sort(key=lambda p: (-p.score, -p.stats.daily_volume, p.symbol))
    for p in ranked[top_n:]:
        rejected.append(Rejected(p.symbol, f"ranked below the top {top_n} (score {p.score:.3f})"))
    return ranked[:top_n], rejected
