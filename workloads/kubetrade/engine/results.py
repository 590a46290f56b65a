"""Backtest results as a trader reads them: trade lists with times, per-strategy summaries,
day/week/month breakdowns, and their CSV/JSON forms.

:func:`kubetrade.engine.runs.backtest` gives bar indices and an equity curve; this module
turns them into rows with UTC times (what ``kubetrade backtest --export``, ``--breakdown``,
``--output json`` and the HTML report show), without changing a number.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from kubetrade.candles import Candles
from kubetrade.engine.runs import Costs, Result

PERIODS = ("day", "week", "month")
TRADE_FIELDS = ("strategy", "symbol", "timeframe", "side", "entry_time", "exit_time", "entry_price", "exit_price",
                "quantity", "pnl", "pnl_pct", "exit_reason", "bars_held", "duration_hours")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Run:
    """One strategy on one candle series."""

    strategy: str
    candles: Candles
    result: Result
    file: str = ""

    def trade_rows(self, *, with_open: bool = True) -> list[dict[str, Any]]:
        """Closed trades, then (``with_open``) the position still open at the end, marked at the last close."""
        c, out = self.candles, []
        trades = list(self.result.trades)
        if with_open and self.result.open_trade is not None:
            trades.append(self.result.open_trade)
        for t in trades:
            entry_ms, exit_ms = int(c.time[t.entry_bar]), int(c.time[t.exit_bar])
            notional = t.qty * t.entry_price
            out.append({
                "strategy": self.strategy, "symbol": c.symbol, "timeframe": c.timeframe,
                "side": "long" if t.side > 0 else "short", "entry_time": iso(entry_ms), "exit_time": iso(exit_ms),
                "entry_price": t.entry_price, "exit_price": t.exit_price, "quantity": t.qty, "pnl": t.pnl,
                "pnl_pct": t.pnl / notional if notional else 0.0,
                "exit_reason": "open at the end (marked at the last close)" if t.reason == "open" else t.reason,
                "bars_held": t.exit_bar - t.entry_bar,
                "duration_hours": round((exit_ms - entry_ms) / 3_600_000, 4),
            })
        return out

    def equity_times(self) -> np.ndarray:
        """Open time (ms) of the bar each equity value belongs to."""
        return self.candles.time[: self.result.equity.shape[0]]


@dataclass
class StrategyRuns:
    name: str
    market: str
    costs: Costs
    runs: list[Run] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Across every series: trades, wins, total PnL, mean return, worst drawdown."""
        trades = [t for r in self.runs for t in r.result.trades]
        pnl = sum(t.pnl for t in trades)
        wins = sum(1 for t in trades if t.pnl > 0)
        cash = self.costs.init_cash * len(self.runs)
        durations = [(int(r.candles.time[t.exit_bar]) - int(r.candles.time[t.entry_bar])) / 3_600_000
                     for r in self.runs for t in r.result.trades]
        return {
            "strategy": self.name, "series": len(self.runs), "trades": len(trades), "wins": wins,
            "losses": len(trades) - wins, "win_rate": wins / len(trades) if trades else 0.0,
            "total_pnl": pnl, "total_return": pnl / cash if cash else 0.0,
            "mean_return": float(np.mean([r.result.metrics.total_return for r in self.runs])) if self.runs else 0.0,
            "mean_sharpe": float(np.mean([r.result.metrics.sharpe for r in self.runs])) if self.runs else 0.0,
            "max_drawdown": max((r.result.metrics.max_drawdown for r in self.runs), default=0.0),
            "avg_duration_hours": float(np.mean(durations)) if durations else 0.0,
        }


def period_start(ms: int, period: str) -> str:
    d = datetime.fromtimestamp(ms / 1000, UTC)
    if period == "day":
        return d.strftime("%Y-%m-%d")
    if period == "week":  # ISO weeks start on Monday
        monday = (d - timedelta(days=d.weekday())).date()
        return f"{monday.isoformat()} (W{d.isocalendar().week:02d})"
    if period == "month":
        return d.strftime("%Y-%m")
    raise ValueError(f"unknown breakdown period {period!r}: expected one of {', '.join(PERIODS)}")


def breakdown(sr: StrategyRuns, period: str) -> list[dict[str, Any]]:
    """Closed trades by the period they closed in: count, wins, draws, losses, PnL, PnL % of the starting cash."""
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: {"trades": 0, "wins": 0, "draws": 0, "losses": 0,
                                                             "pnl": 0.0})
    for r in sr.runs:
        for t in r.result.trades:
            row = rows[period_start(int(r.candles.time[t.exit_bar]), period)]
            row["trades"] += 1
            row["pnl"] += t.pnl
            row["wins" if t.pnl > 0 else "losses" if t.pnl < 0 else "draws"] += 1
    cash = sr.costs.init_cash * max(len(sr.runs), 1)
    return [{"period": k, **v, "pnl_pct": v["pnl"] / cash} for k, v in sorted(rows.items())]


def metrics_of(run: Run) -> dict[str, Any]:
    m = run.result.metrics
    c = run.candles
    still = run.trade_rows()[-1] if run.result.open_trade is not None else None
    return {"symbol": c.symbol, "timeframe": c.timeframe, "file": run.file, "start": iso(int(c.time[0])),
            "end": iso(int(c.time[-1])), **m.as_dict(), "open_position": still}


def document(strategies: list[StrategyRuns], *, timerange: str | None, breakdowns: list[str]) -> dict[str, Any]:
    """Everything ``--output json`` prints: per strategy its costs, per-series metrics, summary, breakdowns."""
    return {
        "timerange": timerange,
        "strategies": [{
            "name": sr.name, "market": sr.market,
            "costs": {"fee": sr.costs.fee, "slippage": sr.costs.slippage, "initial_cash": sr.costs.init_cash},
            "results": [metrics_of(r) for r in sr.runs],
            "summary": sr.summary(),
            "breakdown": {p: breakdown(sr, p) for p in breakdowns},
        } for sr in strategies],
    }


def export_trades(strategies: list[StrategyRuns], path: Path) -> tuple[Path, int]:
    """Every closed trade of every strategy and series to CSV or JSON (by the suffix); (path, trades)."""
    from kubetrade.candlefiles import atomic_path

    rows = [row for sr in strategies for r in sr.runs for row in r.trade_rows()]
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ValueError(f"--export-filename {path}: use a .csv or .json name")
    if suffix == ".csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=TRADE_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    else:
        text = json.dumps({"trades": rows}, indent=1)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path, len(rows)
