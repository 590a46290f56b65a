"""Portfolio risk measures: VaR and CVaR (historical and parametric) and return correlation.

Pure numpy.  Values are signed position values in quote currency; returns are simple
returns, one row per period (day), oldest first.  Losses come out positive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_HISTORY = 20
"""Fewer aligned returns than this and a measure is not estimated (reported, not guessed)."""


@dataclass(frozen=True)
class VarResult:
    var: float
    cvar: float


def _norm_ppf(p: float) -> float:
    """Inverse standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9)."""
    a = (
        -3.969683028665376e01,
        2.209460984245205e02,
        -2.759285104469687e02,
        1.383577518672690e02,
        -3.066479806614716e01,
        2.506628277459239e00,
    )
    b = (
        -5.447609879822406e01,
        1.615858368580409e02,
        -1.556989798598866e02,
        6.680131188771972e01,
        -1.328068155288572e01,
    )
    c = (
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e00,
        -2.549732539343734e00,
        4.374664141464968e00,
        2.938163982698783e00,
    )
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    lo = 0.02425
    if p < lo:
        q = math.sqrt(-2 * math.log(p))
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1
        )
    if p > 1 - lo:
        return -_norm_ppf(1 - p)
    q = p - 0.5
    r = q * q
    return (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    )


def aligned(returns: dict[str, np.ndarray], symbols: list[str], lookback: int) -> np.ndarray | None:
    """A (periods x symbols) matrix of the most recent common periods, or None if too short."""
    n = min((len(returns.get(s, ())) for s in symbols), default=0)
    n = min(n, lookback)
    if n < MIN_HISTORY:
        return None
    return np.column_stack([np.asarray(returns[s][-n:], dtype=float) for s in symbols])


def historical(values: np.ndarray, matrix: np.ndarray, confidence: float) -> VarResult:
    """Historical-simulation VaR/CVaR of a portfolio with position values ``values``."""
    pnl = matrix @ values
    cut = float(np.quantile(pnl, 1.0 - confidence, method="lower"))
    tail = pnl[pnl <= cut]
    return VarResult(max(0.0, -cut), max(0.0, -float(tail.mean())))


def parametric(values: np.ndarray, matrix: np.ndarray, confidence: float) -> VarResult:
    """Variance-covariance VaR/CVaR under normal returns."""
    mu = matrix.mean(axis=0) @ values
    cov = np.atleast_2d(np.cov(matrix, rowvar=False))
    sigma = math.sqrt(max(0.0, float(values @ cov @ values)))
    z = _norm_ppf(confidence)
    pdf = math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return VarResult(max(0.0, -mu + z * sigma), max(0.0, -mu + sigma * pdf / (1.0 - confidence)))


def portfolio_var(
    position_values: dict[str, float],
    returns: dict[str, np.ndarray],
    confidence: float,
    method: str,
    lookback: int,
) -> VarResult | None:
    """VaR/CVaR of the positions, or None when some symbol lacks history."""
    symbols = [s for s, v in position_values.items() if v != 0.0]
    if not symbols:
        return VarResult(0.0, 0.0)
    matrix = aligned(returns, symbols, lookback)
    if matrix is None:
        return None
    values = np.array([position_values[s] for s in symbols])
    return historical(values, matrix, confidence) if method == "historical" else parametric(values, matrix, confidence)


def correlation(a: np.ndarray, b: np.ndarray, lookback: int) -> float | None:
    """Pearson correlation of the two most recent common windows, or None if too short or flat."""
    n = min(len(a), len(b), lookback)
    if n < MIN_HISTORY:
        return None
    x = np.asarray(a[-n:], dtype=float)
    y = np.asarray(b[-n:], dtype=float)
    sx, sy = x.std(), y.std()
    if sx == 0 or sy == 0:
        return None
    return float(((x - x.mean()) * (y - y.mean())).mean() / (sx * sy))
