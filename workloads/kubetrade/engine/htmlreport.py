"""A backtest report a trader can open: one self-contained HTML file, charts as inline SVG.

Nothing is fetched when the file is opened (no script, no stylesheet, no font from
anywhere): the charts are SVG drawn here, the tables are HTML, the styling is one inline
``<style>``.  Per strategy and series: the metrics, the price with every entry and exit
(hover a marker for its time, price and result), the equity curve, the drawdown, and the
trade list; a side-by-side table when several strategies were run.  Long series are
thinned for drawing (each pixel column keeps its low and high), never for the numbers.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kubetrade.engine.results import PERIODS, Run, StrategyRuns, breakdown, iso

WIDTH, PAD_L, PAD_R, PAD_T, PAD_B = 1000, 70, 12, 10, 24
MAX_POINTS = 1200
MAX_TRADE_ROWS = 500

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px;border-top:1px solid #dde;padding-top:14px}
h3{font-size:14px;margin:14px 0 4px;color:#445}.muted{color:#667}
table{border-collapse:collapse;margin:6px 0 10px}th,td{padding:3px 9px;border-bottom:1px solid #e4e6ee;
text-align:right;white-space:nowrap}th{background:#f3f4f8;font-weight:600}td:first-child,th:first-child{text-align:left}
.pos{color:#0a7d32}.neg{color:#b3261e}svg{display:block;margin:4px 0 8px;background:#fcfcfe;border:1px solid #e4e6ee}
.grid{stroke:#e7e9f0;stroke-width:1}.axis{fill:#667;font-size:11px}.price{fill:none;stroke:#44506a;stroke-width:1}
.equity{fill:none;stroke:#1f5fd1;stroke-width:1.4}.dd{fill:#d9453c;fill-opacity:.35;stroke:#b3261e;stroke-width:.8}
.long{fill:#0a9d3e}.short{fill:#c62828}.exit{fill:none;stroke-width:1.6}.win{stroke:#0a7d32}
.loss{stroke:#b3261e}.legend{font-size:12px;color:#556}
details{margin:6px 0}summary{cursor:pointer;color:#1f5fd1}
"""


LEGEND = ('<p class="legend">&#9650; green: long entry &middot; &#9660; red: short entry &middot; &#9675; exit, '
          "green when the trade won, red when it lost &middot; hover a marker for its details</p>")


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _pct(x: float) -> str:
    return f"{x:+.2%}"


def _num(x: float) -> str:
    return f"{x:,.2f}"


def _cls(x: float) -> str:
    return "pos" if x > 0 else "neg" if x < 0 else ""


def thin(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``max_points`` points that keep every bucket's low and high, in time order."""
    n = len(x)
    if n <= max_points:
        return x, y
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep: list[int] = []
    for a, b in itertools.pairwise(edges.tolist()):
        if b <= a:
            continue
        lo, hi = a + int(np.argmin(y[a:b])), a + int(np.argmax(y[a:b]))
        keep.extend(sorted({lo, hi}))
    idx = np.array(keep)
    return x[idx], y[idx]


class Frame:
    """Maps time (ms) and value to SVG pixels for one chart."""

    def __init__(self, t0: int, t1: int, lo: float, hi: float, height: int) -> None:
        if hi <= lo:
            hi, lo = lo + 1.0, lo - 1.0
        margin = (hi - lo) * 0.04
        self.t0, self.t1 = t0, max(t1, t0 + 1)
        self.lo, self.hi = lo - margin, hi + margin
        self.height = height

    def x(self, t: float) -> float:
        return PAD_L + (t - self.t0) / (self.t1 - self.t0) * (WIDTH - PAD_L - PAD_R)

    def y(self, v: float) -> float:
        return PAD_T + (self.hi - v) / (self.hi - self.lo) * (self.height - PAD_T - PAD_B)

    def path(self, ts: np.ndarray, vs: np.ndarray) -> str:
        pts = [f"{self.x(float(t)):.1f},{self.y(float(v)):.1f}" for t, v in zip(ts, vs, strict=True)]
        return "M" + " L".join(pts) if pts else ""

    def axes(self, fmt: str) -> str:
        parts = []
        for v in _ticks(self.lo, self.hi, 5):
            y = self.y(v)
            parts.append(f'<line class="grid" x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y:.1f}" y2="{y:.1f}"/>'
                         f'<text class="axis" x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">'
                         f"{_esc(format(v, fmt))}</text>")
        for i in range(6):
            t = self.t0 + (self.t1 - self.t0) * i / 5
            x = self.x(t)
            label = datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d" if self.t1 - self.t0 > 3 * 86_400_000
                                                                   else "%m-%d %H:%M")
            anchor = "start" if i == 0 else "end" if i == 5 else "middle"
            parts.append(f'<text class="axis" x="{x:.1f}" y="{self.height - 6}" text-anchor="{anchor}">{label}</text>')
        return "".join(parts)


def _ticks(lo: float, hi: float, n: int) -> list[float]:
    span = hi - lo
    if span <= 0 or not math.isfinite(span):
        return [lo]
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _svg(height: int, body: str, label: str) -> str:
    return (f'<svg viewBox="0 0 {WIDTH} {height}" width="100%" role="img" aria-label="{_esc(label)}">'
            f"{body}</svg>")


def price_chart(run: Run, height: int = 300) -> str:
    c = run.candles
    n = run.result.equity.shape[0]
    t, close = c.time[:n], c.close[:n]
    f = Frame(int(t[0]), int(t[-1]), float(np.min(c.low[:n])), float(np.max(c.high[:n])), height)
    xs, ys = thin(t, close)
    marks = []
    drawn = list(run.result.trades) + ([run.result.open_trade] if run.result.open_trade is not None else [])
    for tr in drawn:
        te, tx = int(c.time[tr.entry_bar]), int(c.time[tr.exit_bar])
        x, y = f.x(te), f.y(tr.entry_price)
        side = "long" if tr.side > 0 else "short"
        how = "still open at the end, marked" if tr.reason == "open" else f"exit ({tr.reason})"
        tip = (f"{side} entry {iso(te)} at {tr.entry_price:,.4f}; {how} {iso(tx)} at {tr.exit_price:,.4f}, "
               f"PnL {tr.pnl:+,.2f}")
        tri = (f"{x:.1f},{y - 7:.1f} {x - 5:.1f},{y + 2:.1f} {x + 5:.1f},{y + 2:.1f}" if tr.side > 0 else
               f"{x:.1f},{y + 7:.1f} {x - 5:.1f},{y - 2:.1f} {x + 5:.1f},{y - 2:.1f}")
        ex, ey = f.x(tx), f.y(tr.exit_price)
        marks.append(f'<g><title>{_esc(tip)}</title><polygon class="{side}" points="{tri}"/>'
                     f'<circle class="exit {"win" if tr.pnl > 0 else "loss"}" cx="{ex:.1f}" cy="{ey:.1f}" r="3.5"/>'
                     "</g>")
    body = f.axes(",.2f") + f'<path class="price" d="{f.path(xs, ys)}"/>' + "".join(marks)
    return _svg(height, body, f"{c.symbol} close with trades")


def equity_chart(run: Run, height: int = 200) -> str:
    eq = run.result.equity
    t = run.equity_times()
    f = Frame(int(t[0]), int(t[-1]), float(np.min(eq)), float(np.max(eq)), height)
    xs, ys = thin(t, eq)
    start = f'<line class="grid" x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{f.y(float(eq[0])):.1f}" ' \
            f'y2="{f.y(float(eq[0])):.1f}" stroke-dasharray="4 3"/>'
    return _svg(height, f.axes(",.0f") + start + f'<path class="equity" d="{f.path(xs, ys)}"/>', "equity")


def drawdown_chart(run: Run, height: int = 140) -> str:
    eq = run.result.equity
    dd = eq / np.maximum.accumulate(eq) - 1.0
    t = run.equity_times()
    f = Frame(int(t[0]), int(t[-1]), float(np.min(dd)), 0.0, height)
    xs, ys = thin(t, dd)
    top = f.y(0.0)
    d = f.path(xs, ys)
    area = f"{d} L{f.x(float(xs[-1])):.1f},{top:.1f} L{f.x(float(xs[0])):.1f},{top:.1f} Z" if d else ""
    return _svg(height, f.axes(".1%") + f'<path class="dd" d="{area}"/>', "drawdown")


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[Sequence[str]] | None = None) -> str:
    out = ["<table><tr>", *(f"<th>{_esc(h)}</th>" for h in head), "</tr>"]
    for i, row in enumerate(rows):
        cls = classes[i] if classes else [""] * len(row)
        out.append("<tr>" + "".join(f'<td class="{c}">{_esc(v)}</td>' if c else f"<td>{_esc(v)}</td>"
                                    for v, c in zip(row, cls, strict=True)) + "</tr>")
    out.append("</table>")
    return "".join(out)


def metrics_table(run: Run) -> str:
    m = run.result.metrics
    head = ["return", "CAGR", "Sharpe", "Sortino", "max drawdown", "Calmar", "win rate", "profit factor",
            "exposure", "trades", "final equity", "bars"]
    row = [_pct(m.total_return), _pct(m.cagr), f"{m.sharpe:.2f}", f"{m.sortino:.2f}", f"{m.max_drawdown:.2%}",
           f"{m.calmar:.2f}", f"{m.win_rate:.1%}", f"{m.profit_factor:.2f}", f"{m.exposure:.1%}", str(m.trades),
           _num(m.final_equity), f"{m.bars:,}"]
    cls = [_cls(m.total_return), _cls(m.cagr)] + [""] * (len(row) - 2)
    return _table(head, [row], [cls])


def trades_table(run: Run) -> str:
    rows = run.trade_rows()
    head = ["#", "side", "entry", "exit", "entry price", "exit price", "quantity", "PnL", "PnL %", "exit reason",
            "hours"]
    body = [[str(i + 1), r["side"], r["entry_time"].replace("T", " ")[:16], r["exit_time"].replace("T", " ")[:16],
             f"{r['entry_price']:,.4f}", f"{r['exit_price']:,.4f}", f"{r['quantity']:.6g}", f"{r['pnl']:+,.2f}",
             f"{r['pnl_pct']:+.2%}", r["exit_reason"], f"{r['duration_hours']:g}"] for i, r in enumerate(rows)]
    cls = [[""] * 7 + [_cls(r["pnl"]), _cls(r["pnl"]), "", ""] for r in rows]
    if not body:
        return '<p class="muted">no closed trades</p>'
    shown = _table(head, body[:MAX_TRADE_ROWS], cls[:MAX_TRADE_ROWS])
    more = f'<p class="muted">first {MAX_TRADE_ROWS} of {len(body)} trades; --export has all</p>' \
        if len(body) > MAX_TRADE_ROWS else ""
    closed = len(run.result.trades)
    label = f"{closed} trades" + (" and the position still open at the end" if run.result.open_trade else "")
    return f"<details open><summary>{label}</summary>{shown}{more}</details>"


def summary_table(strategies: list[StrategyRuns]) -> str:
    head = ["strategy", "series", "trades", "win rate", "total PnL", "total return", "mean Sharpe", "worst drawdown",
            "avg hours held"]
    rows, cls = [], []
    for sr in strategies:
        s = sr.summary()
        rows.append([sr.name, str(s["series"]), str(s["trades"]), f"{s['win_rate']:.1%}", f"{s['total_pnl']:+,.2f}",
                     _pct(s["total_return"]), f"{s['mean_sharpe']:.2f}", f"{s['max_drawdown']:.2%}",
                     f"{s['avg_duration_hours']:.1f}"])
        cls.append(["", "", "", "", _cls(s["total_pnl"]), _cls(s["total_return"]), "", "", ""])
    return _table(head, rows, cls)


def breakdown_table(sr: StrategyRuns, period: str) -> str:
    rows = breakdown(sr, period)
    if not rows:
        return ""
    body = [[r["period"], str(r["trades"]), f"{r['wins']}/{r['draws']}/{r['losses']}", f"{r['pnl']:+,.2f}",
             _pct(r["pnl_pct"])] for r in rows]
    cls = [["", "", "", _cls(r["pnl"]), _cls(r["pnl"])] for r in rows]
    return f"<h3>by {period}</h3>" + _table([period, "trades", "win/draw/loss", "PnL", "PnL %"], body, cls)


def render(strategies: list[StrategyRuns], *, title: str, subtitle: str = "", breakdowns: Sequence[str] = ()) -> str:
    """The whole report as one HTML string."""
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_esc(title)}</title>",
             f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body>",
             f"<h1>{_esc(title)}</h1>", f'<p class="muted">{_esc(subtitle)}</p>' if subtitle else ""]
    if len(strategies) > 1:
        parts += ["<h2>Strategies side by side</h2>", summary_table(strategies)]
    for sr in strategies:
        costs = sr.costs
        parts.append(f"<h2>{_esc(sr.name)}</h2><p class='muted'>{_esc(sr.market)}, fee {costs.fee:g} per side, "
                     f"slippage {costs.slippage:g}, initial cash {costs.init_cash:,.2f} per series</p>")
        for period in breakdowns:
            if period in PERIODS:
                parts.append(breakdown_table(sr, period))
        for run in sr.runs:
            c = run.candles
            parts += [f"<h3>{_esc(c.symbol)} {_esc(c.timeframe)} &middot; {iso(int(c.time[0]))[:16]} to "
                      f"{iso(int(c.time[-1]))[:16]} UTC</h3>", metrics_table(run),
                      "<h3>price and trades</h3>", LEGEND, price_chart(run), "<h3>equity</h3>", equity_chart(run),
                      "<h3>drawdown</h3>", drawdown_chart(run), trades_table(run)]
    parts.append(f'<p class="muted">kubetrade backtest report, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>'
                 "</body></html>")
    return "".join(parts)


def write(strategies: list[StrategyRuns], path: Path, **kw: Any) -> Path:
    from kubetrade.candlefiles import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(render(strategies, **kw), encoding="utf-8")
    return path
