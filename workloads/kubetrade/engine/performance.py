"""Performance metrics from the kernel's accumulators (the selection statistics are in :mod:`kubetrade.engine.stats`).

The kernel keeps only running sums per strategy (no equity curve for 500 strategies x
130k bars); everything a report needs is derived here from those sums in plain Python.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import numpy.typing as npt

from kubetrade.engine import backtest as bt
from kubetrade.engine.stats import Moments


@dataclass(frozen=True)
class Metrics:
    """One strategy over one period.  Ratios are annualised with ``bars_per_year``."""

    total_return: float
    cagr: float
    sharpe: float
    sortino: float
    max_drawdown: float
    calmar: float
    win_rate: float
    profit_factor: float
    exposure: float
    trades: int
    final_equity: float
    bars: int
    sharpe_per_bar: float
    skew: float
    kurtosis: float
    returns: Moments = field(default_factory=Moments)
    """The per-bar returns' sums, which pool across windows and candle sets (:mod:`kubetrade.engine.stats`)."""

    def as_dict(self) -> dict[str, float | int]:
        """The scalar metrics (a table row, a stored backtest result); the pooled moments stay on ``returns``."""
        return {k: v for k, v in asdict(self).items() if k != "returns"}


def _finite(x: float) -> float:
    return x if math.isfinite(x) else (math.copysign(1e9, x) if not math.isnan(x) else 0.0)


def from_accumulators(acc: npt.NDArray[np.float64], init_cash: float, bars_per_year: float) -> Metrics:
    """Derive every metric from one accumulator row of :func:`kubetrade.engine.backtest.simulate`."""
    n = acc[bt.A_NRET]
    bars = int(n) + 1
    final = float(acc[bt.A_FINAL])
    total = final / init_cash - 1.0
    mean = acc[bt.A_SUM] / n if n else 0.0
    var = max(acc[bt.A_SUM2] / n - mean * mean, 0.0) if n else 0.0
    sd = math.sqrt(var)
    down = math.sqrt(acc[bt.A_DOWN2] / n) if n else 0.0
    ann = math.sqrt(bars_per_year)
    sharpe_bar = mean / sd if sd > 0 else 0.0
    skew = kurt = 0.0
    if sd > 0:
        m3 = acc[bt.A_SUM3] / n - 3 * mean * acc[bt.A_SUM2] / n + 2 * mean**3
        m4 = acc[bt.A_SUM4] / n - 4 * mean * acc[bt.A_SUM3] / n + 6 * mean**2 * acc[bt.A_SUM2] / n - 3 * mean**4
        skew, kurt = m3 / sd**3, m4 / sd**4
    years = bars / bars_per_year
    # via logs: a few days annualised can overflow a float power
    cagr = math.expm1(min(math.log(final / init_cash) / years, 700.0)) if final > 0 and years > 0 else -1.0
    maxdd = float(acc[bt.A_MAXDD])
    trades = int(acc[bt.A_TRADES])
    gross_loss = acc[bt.A_GROSS_LOSS]
    return Metrics(
        total_return=total,
        cagr=_finite(cagr),
        sharpe=sharpe_bar * ann,
        sortino=mean / down * ann if down > 0 else 0.0,
        max_drawdown=maxdd,
        calmar=_finite(cagr / maxdd) if maxdd > 0 else 0.0,
        win_rate=acc[bt.A_WINS] / trades if trades else 0.0,
        profit_factor=_finite(acc[bt.A_GROSS_WIN] / gross_loss) if gross_loss > 0 else (
            1e9 if acc[bt.A_GROSS_WIN] > 0 else 0.0),
        exposure=acc[bt.A_BARS_IN] / bars if bars else 0.0,
        trades=trades,
        final_equity=final,
        bars=bars,
        sharpe_per_bar=sharpe_bar,
        skew=skew,
        kurtosis=kurt,
        returns=Moments(int(n), float(acc[bt.A_SUM]), float(acc[bt.A_SUM2]), float(acc[bt.A_SUM3]),
                        float(acc[bt.A_SUM4])),
    )
