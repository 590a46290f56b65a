"""What ``kubetrade up`` shows a person: where to look, a progress line, the final summary.

The figures come from the records, not from the console's own bookkeeping: orders and fills
from the order record, risk from the risk manager (``control.risk``), strategies and goals
from their resources' status (what the status feed merged from the runners' and the goal
manager's reports) - the same sources the API and the operator use.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from rich.table import Table

from kubetrade.candles import timeframe_ms
from kubetrade.ledger import queries
from kubetrade.localstack import services
from kubetrade.localstack.stack import NAMESPACE, Stack


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


async def strategy_statuses(stack: Stack) -> dict[str, dict[str, Any]]:
    """Each Strategy's status as the local store holds it (what the API serves)."""
    if stack.store is None:
        return {}
    return {s["metadata"]["name"]: s.get("status") or {} for s in await stack.store.list("strategies", NAMESPACE)}


async def progress_line(stack: Stack) -> str:
    counts = await order_counts(stack.dsn)
    statuses = await strategy_statuses(stack)
    trades = sum(int(s.get("trades") or 0) for s in statuses.values())
    pnl = sum(float(s.get("pnl") or 0.0) for s in statuses.values())
    orders = sum(counts["orders"].values())
    clock = when(stack.replay_clock) if stack.replay_clock else "-"
    services_line = stack.supervisor.line()
    restarted = sum(p.restarts for p in stack.pods.pods.values()) if stack.pods is not None else 0
    extra = "".join([f" | {services_line}" if services_line else "",
                     f" | runners restarted {restarted}x" if restarted else ""])
    return (f"[dim]{datetime.now(UTC).strftime('%H:%M:%S')}[/dim] replay at {clock} | {stack.replayed:,} candles | "
            f"{orders} orders ({counts['orders'].get('filled', 0)} filled) | {trades} closed trades | "
            f"PnL {pnl:+,.2f} USDT{extra}")


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


def _state(status: dict[str, Any]) -> str:
    phase = status.get("phase") or "Pending"
    message = str(status.get("message") or "")
    if phase in ("Paper", "Live"):
        return message or phase.lower()
    if phase == "Pending" and message.startswith("mode live"):
        return "skipped (live)"
    return {"Retired": "retired", "Failed": "failed (see above)"}.get(phase, f"{phase.lower()}: {message}")


async def final_summary(stack: Stack) -> dict[str, Any]:
    """Print the strategies, services, orders, goals and risk state; return the same as data (``summary.json``)."""
    counts = await order_counts(stack.dsn, rejected=True)
    statuses = await strategy_statuses(stack)
    table = Table(title="Strategies")
    for col in ("strategy", "origin", "state", "trades", "PnL", "equity", "max DD", "open", "restarts"):
        table.add_column(col)
    strategies = []
    pods = {p.strategy: p for p in (stack.pods.pods.values() if stack.pods is not None else [])}
    for name in sorted(statuses, key=lambda n: (stack.origins.get(n, "") != "examples", n)):
        st = statuses[name]
        state = _state(st)
        restarts = pods[name].restarts if name in pods else 0
        row = {"name": name, "origin": stack.origins.get(name, "-"), "phase": st.get("phase"), "state": state,
               "message": st.get("message"), "trades": st.get("trades"), "pnl": st.get("pnl"),
               "equity": st.get("equity"), "maxDrawdown": st.get("maxDrawdown"),
               "openPositions": st.get("openPositions"), "restarts": restarts}
        strategies.append(row)
        table.add_row(name, str(row["origin"]), state, str(st.get("trades", "-")),
                      f"{st['pnl']:+,.2f}" if "pnl" in st else "-", f"{st['equity']:,.2f}" if "equity" in st else "-",
                      f"{st['maxDrawdown']:.2%}" if "maxDrawdown" in st else "-", str(st.get("openPositions", "-")),
                      str(restarts))
    stack.console.print(table)
    supervised = stack.supervisor.record()
    st_table = Table(title="Services (supervised)")
    for col in ("service", "state", "restarts", "exits"):
        st_table.add_column(col)
    for s in supervised:
        exits = ", ".join(str(x) for x in s["exits"]) or "-"
        st_table.add_row(str(s["name"]), str(s["state"]), str(s["restarts"]), exits)
    stack.console.print(st_table)
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
    goals: dict[str, Any] = {}
    if stack.store is not None:
        for g in await stack.store.list("goals", NAMESPACE):
            gs = g.get("status") or {}
            name = g["metadata"]["name"]
            goals[name] = {k: gs.get(k) for k in ("equity", "peakEquity", "returnPct", "progressPct", "onTrack",
                                                  "sizingMultiplier", "lastReview", "phaseCounts")}
            if gs.get("equity") is not None:
                stack.console.print(f"Goal/{name}: equity {gs['equity']:,.2f}, return {gs.get('returnPct') or 0:.2%}, "
                                    f"sizing multiplier {gs.get('sizingMultiplier') or 0:.3f}")
    drained = stack.drained
    if drained is not None:
        stack.console.print(f"order path at stop: {drained.describe()}")
    return {"strategies": strategies, "services": supervised, "risk": risk, "orders": counts, "goals": goals,
            "replayed": stack.replayed, "replayClock": stack.replay_clock,
            "drained": None if drained is None else {
                "clean": drained.clean, "pendingInStream": drained.pending_in_stream,
                "liveOrders": drained.live_orders, "error": drained.error},
            "problems": stack.problems,
            "events": stack.cluster.events if stack.cluster is not None else []}
