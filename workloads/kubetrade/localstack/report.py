"""What ``kubetrade up`` shows a person: where to look, a progress line, the final summary.

The figures come from the records, not from the console's own bookkeeping: orders and fills
from the executor's tables, risk from the risk manager (``control.risk``), strategy figures
from the runners' status reports - the same sources the API and the operator use.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row
from rich.table import Table

from kubetrade.candles import timeframe_ms
from kubetrade.ledger import queries
from kubetrade.localstack import services

if TYPE_CHECKING:
    from kubetrade.localstack.pipeline import Stack


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


async def order_counts(dsn: str, rejected: bool = False) -> dict[str, Any]:
    """Paper orders by status and the number of fills; with ``rejected``, the last rejected orders and why."""
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        out: dict[str, Any] = {"orders": await queries.orders_by_status(conn, "paper"),
                               "fills": await queries.fill_count(conn, "paper")}
        if rejected:
            out["rejected"] = [
                {
                    "clientOrderId": r["client_order_id"],
                    "strategy": r["strategy"],
                    "symbol": r["symbol"],
                    "side": r["side"],
                    "quantity": float(r["quantity"]),
                    "reduceOnly": r["reduce_only"],
                    "reason": r["reason"],
                }
                for r in await queries.last_rejected(conn, "paper")
            ]
    return out


async def progress_line(stack: Stack) -> str:
    counts = await order_counts(stack.dsn)
    trades = sum(int(s.get("trades") or 0) for s in stack.statuses.values())
    pnl = sum(float(s.get("pnl") or 0.0) for s in stack.statuses.values())
    orders = sum(counts["orders"].values())
    clock = when(stack.replay_clock) if stack.replay_clock else "-"
    return (f"[dim]{datetime.now(UTC).strftime('%H:%M:%S')}[/dim] replay at {clock} | {stack.replayed:,} candles | "
            f"{orders} orders ({counts['orders'].get('filled', 0)} filled) | {trades} closed trades | "
            f"PnL {pnl:+,.2f} USDT")


def where_to_look(stack: Stack) -> None:
    c = stack.console
    c.print()
    c.print("[bold]where to look[/bold]")
    c.print(f"  API          {stack.api_url}   (OpenAPI docs {stack.api_url}/docs)")
    c.print(f"  API key      {stack.api_key_file}   (header X-API-Key; scopes read, trade)")
    c.print(f"  strategies   {stack.api_url}/api/v1/strategies   trades {stack.api_url}/api/v1/trades")
    c.print(f"  risk         {stack.api_url}/api/v1/risk/metrics")
    c.print(f"  goals        {stack.api_url}/api/v1/goals/summary")
    c.print(f"  sizing       POST {stack.api_url}/api/v1/position-sizing/calculate")
    c.print(f"  metrics      {stack.api_url}/metrics")
    c.print(f"  NATS         {stack.nats_url}   (status reports on status.>, orders on events.orders.>)")
    c.print(f"  resources    {stack.opts.state_dir / 'resources'}   (yours plus the evolved strategies)")
    c.print(f"  logs         {stack.opts.state_dir / 'logs'}")
    c.print("  stop         Ctrl-C (a summary of strategies, trades, PnL and risk follows)")
    for r in stack.data.replays:
        span_ms = max(len(x) * timeframe_ms(k.timeframe) for k, x in r.live.items())
        c.print(f"  replay       {r.collector.metadata['name']}: {span_ms / 86_400_000:.1f} days of candles at "
                f"{r.speed:g}x real time (about {span_ms / 1000 / r.speed / 60:.0f} min); --speed changes it")
    c.print()
    c.print(f"[bold]console[/bold]      {stack.api_url}/console/   (log in with the key in {stack.api_key_file})")
    c.print()


def _state(problem: str, mode: str) -> str:
    if problem == "retired":
        return "retired"
    return "skipped (live)" if mode == "live" else "failed (see above)"


async def final_summary(stack: Stack) -> dict[str, Any]:
    """Print the strategies, orders and risk state; return the same as data (``summary.json``)."""
    counts = await order_counts(stack.dsn, rejected=True)
    table = Table(title="Strategies")
    for col in ("strategy", "origin", "state", "trades", "PnL", "equity", "max DD", "open"):
        table.add_column(col)
    strategies = []
    for e in stack.entries:
        st = stack.statuses.get(e.name, {})
        state = _state(e.problem, e.strategy.spec.mode) if e.problem else st.get("message") or "not started"
        row = {"name": e.name, "origin": e.origin, "state": e.problem or state, "trades": st.get("trades"),
               "pnl": st.get("pnl"), "equity": st.get("equity"), "maxDrawdown": st.get("maxDrawdown"),
               "openPositions": st.get("openPositions")}
        strategies.append(row)
        table.add_row(e.name, e.origin, state, str(st.get("trades", "-")),
                      f"{st['pnl']:+,.2f}" if "pnl" in st else "-", f"{st['equity']:,.2f}" if "equity" in st else "-",
                      f"{st['maxDrawdown']:.2%}" if "maxDrawdown" in st else "-", str(st.get("openPositions", "-")))
    stack.console.print(table)
    risk: list[dict[str, Any]] = []
    with contextlib.suppress(Exception):
        reply = await services.risk_metrics(stack.nc)
        rt = Table(title="Risk (risk manager)")
        for col in ("policy", "equity", "drawdown", "breaker", "violations", "open positions"):
            rt.add_column(col)
        for p in reply.portfolios:
            risk.append(p.model_dump(by_alias=True))
            rt.add_row(f"{p.environment}/{p.policy}", f"{p.equity:,.2f}", f"{p.drawdown:.2%}",
                       f"open ({p.breaker_reason})" if p.breaker_open else "closed", str(p.violations),
                       str(p.open_positions))
        stack.console.print(rt)
    stack.console.print(f"orders by status: {counts['orders'] or 'none'}; fills: {counts['fills']}")
    for r in counts["rejected"]:
        stack.console.print(f"  rejected {r['clientOrderId']} ({r['strategy']} {r['side']} {r['quantity']:g} "
                            f"{r['symbol']}{', reduce-only' if r['reduceOnly'] else ''}): {r['reason']}")
    for name, g in stack.goal_sizing.items():
        stack.console.print(f"Goal/{name}: equity {g['equity']:,.2f}, sizing multiplier {g['multiplier']:.3f} "
                            f"({g['state']})")
    return {"strategies": strategies, "risk": risk, "orders": counts, "goals": stack.goal_sizing,
            "replayed": stack.replayed, "replayClock": stack.replay_clock}
