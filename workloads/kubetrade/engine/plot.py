"""Equity-curve picture (PNG) of one backtest: equity, drawdown and the trades on the price."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kubetrade.candles import Candles
from kubetrade.engine.runs import Result


def equity_png(result: Result, candles: Candles, path: Path, title: str, start: int = 0) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # an optional dependency of the image
        raise RuntimeError("plotting needs matplotlib: pip install 'kubetrade[bench]'") from e
    n = result.equity.shape[0]
    when = candles.time[start : start + n].astype("datetime64[ms]")
    eq = result.equity
    dd = 1 - eq / np.maximum.accumulate(eq)
    fig, (ax_p, ax_e, ax_d) = plt.subplots(3, 1, figsize=(12, 8), sharex=True,
                                           gridspec_kw={"height_ratios": [2, 2, 1]})
    ax_p.plot(when, candles.close[start : start + n], lw=0.6, color="0.4")
    for t, marker, color in ((1, "^", "tab:green"), (-1, "v", "tab:red")):
        bars = [tr.entry_bar - start for tr in result.trades if tr.side == t]
        ax_p.scatter(when[bars], candles.close[start:][bars], marker=marker, s=12, color=color,
                     label="long entry" if t == 1 else "short entry")
    ax_p.set_ylabel(candles.symbol or "close")
    ax_p.legend(loc="upper left", fontsize=8)
    ax_e.plot(when, eq, lw=0.9, color="tab:blue")
    ax_e.set_ylabel("equity")
    ax_d.fill_between(when, -dd * 100, 0, color="tab:red", alpha=0.4)
    ax_d.set_ylabel("drawdown %")
    m = result.metrics
    ax_p.set_title(f"{title}: return {m.total_return:+.2%}, Sharpe {m.sharpe:.2f}, max DD {m.max_drawdown:.2%}, "
                   f"{m.trades} trades")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
