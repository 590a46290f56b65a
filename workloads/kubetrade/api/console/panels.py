"""The console's panels: each one a template over figures, rendered for the page and again, when its
sources change, for the live stream (:mod:`kubetrade.api.console.live`).  One function per panel,
so what a page shows first and what it is updated with are the same code."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException, Request

from kubetrade import cluster
from kubetrade.alerts import store as alert_store
from kubetrade.api.console import figures
from kubetrade.api.console.render import fragment
from kubetrade.api.console.session import Viewer
from kubetrade.api.routes import alerts as alert_routes
from kubetrade.api.routes import goals as goal_routes
from kubetrade.backtestjobs import store as backtest_store
from kubetrade.engine.publish import recent_runs
from kubetrade.ledger import queries

Panel = Callable[[Request, Viewer, dict[str, str]], Awaitable[str]]
PANELS: dict[str, Panel] = {}


def panel(name: str) -> Callable[[Panel], Panel]:
    def register(fn: Panel) -> Panel:
        PANELS[name] = fn
        return fn

    return register


async def render(request: Request, viewer: Viewer, name: str, args: dict[str, str]) -> str:
    return await PANELS[name](request, viewer, args)


# --- dashboard -----------------------------------------------------------------------------------


@panel("equity")
async def equity(request: Request, viewer: Viewer, args: dict[str, str]) -> str:
    health, _ = await figures.collector_health(request)
    got = await figures.equity(request, figures.data_clock(health))
    return fragment("panels/equity.html", **got)


@panel("positions")
async def positions(request: Request, viewer: Viewer, args: dict[str, str]) -> str:
    return fragment("panels/positions.html", positions=await figures.positions(request))


@panel("breakers")
async def breakers(request: Request, viewer: Viewer, args: dict[str, str]) -> str:
    return fragment("panels/breakers.html", **await figures.breakers(request))


@panel("orders")
async def orders(request: Request, viewer: Viewer, args: dict[str, str]) -> str:
    last, rejected = await figures.orders(request)
    return fragment("panels/orders.html", orders=last, rejected=rejected)


@panel("collectors")
async def collectors(request: Request, viewer: Viewer, args: dict[str, str]) -> str:
    health, error = await figures.collector_health(request)
    return fragment("panels/collectors.html", health=health, error=error)


# --- strategies ----------------------------------------------------------------------------------


@panel("leaderboard")
async def leaderboard(request: Request, viewer: Viewer, args: dict[str, str]) -> str:
    objs, error = await figures.resources(request, "strategies")
    key = args.get("sort") or "pnl"
    key = key if key in figures.SORTS else "pnl"
    descending = args.get("dir", "desc") != "asc"
    rows = figures.sort_rows([figures.strategy_row(o) for o in objs], key, descending)
    return fragment("panels/leaderboard.html", rows=rows, error=error, sort=key, descending=descending)


async def strategy_object(request: Request, name: str) -> dict[str, Any]:
    try:
        return await figures.store(request).get("strategies", figures.namespace(request), name)
    except cluster.NotFound as exc:
        raise HTTPException(404, f"no Strategy {name}") from exc
    except cluster.StoreError as exc:
        raise HTTPException(exc.status, exc.message) from exc


@panel("strategy")
async def strategy(request: Request, viewer: Viewer, args: dict[str, str]) -> str:
    obj = await strategy_object(request, args["name"])
    row = figures.strategy_row(obj)
    backtest = (obj.get("status") or {}).get("backtest") or {}
    path = "/api/v1/strategies/{name}"
    return fragment("panels/strategy.html", s=row, obj=obj, backtest=backtest, csrf=viewer.csrf,
                    can_edit=viewer.can("PUT", path))


@panel("trades")
async def trades(request: Request, viewer: Viewer, args: dict[str, str]) -> str:
    obj = await strategy_object(request, args["name"])
    env = (obj.get("spec") or {}).get("mode", "paper")
    async with request.app.state.db_pool.connection() as conn:
        fills = await queries.strategy_fill_history(conn, env, figures.namespace(request), args["name"], 200)
    for f in fills:
        f["bar"] = figures.decided_at(f) * 1000
    return fragment("panels/trades.html", fills=list(reversed(fills)))


@panel("backtests")
async def backtests(request: Request, viewer: Viewer, args: dict[str, str]) -> str:
    async with request.app.state.db_pool.connection() as conn:
        rows = await backtest_store.listing(conn, namespace=figures.namespace(request), strategy=args["name"],
                                            status=None, limit=5, before=None)
    return fragment("panels/backtests.html", backtests=rows)


async def busy_backtests(request: Request, name: str) -> bool:
    async with request.app.state.db_pool.connection() as conn:
        rows = await backtest_store.listing(conn, namespace=figures.namespace(request), strategy=name,
                                            status=None, limit=5, before=None)
    return any(r["status"] in ("pending", "running") for r in rows)


# --- goals ---------------------------------------------------------------------------------------


@panel("goals")
async def goals(request: Request, viewer: Viewer, args: dict[str, str]) -> str:
    error = None
    summaries: list[Any] = []
    try:
        summaries = await goal_routes.goals_summary(request, None)
    except HTTPException as exc:
        error = exc.detail
    objs, _ = await figures.resources(request, "goals")
    by_name = {o["metadata"]["name"]: o for o in objs}
    runs: dict[str, list[dict[str, Any]]] = {}
    if request.app.state.db_pool is not None:
        async with request.app.state.db_pool.connection() as conn:
            for g in summaries:
                runs[g.name] = await recent_runs(conn, g.name, 3)
                for run in runs[g.name]:  # evolution_results.passed: the gates' verdict, where a run recorded one
                    run["sent"] = sum(1 for r in run["results"] if r.get("passed", True))
                    run["refused"] = len(run["results"]) - run["sent"]
    return fragment("panels/goals.html", goals=summaries, objs=by_name, runs=runs, error=error)


# --- alerts --------------------------------------------------------------------------------------


@panel("alert-rules")
async def alert_rules(request: Request, viewer: Viewer, args: dict[str, str]) -> str:
    async with request.app.state.db_pool.connection() as conn:
        rules = await alert_store.listing(conn, {k: None for k in ("namespace", "metric", "target", "severity",
                                                                    "enabled", "firing")}, 200, None)
    return fragment("panels/alert_rules.html", rules=rules, csrf=viewer.csrf,
                    can_edit=viewer.can("PUT", "/api/v1/alerts/{alert_id}"),
                    can_delete=viewer.can("DELETE", "/api/v1/alerts/{alert_id}"))


@panel("alert-history")
async def alert_history(request: Request, viewer: Viewer, args: dict[str, str]) -> str:
    async with request.app.state.db_pool.connection() as conn:  # what GET /api/v1/alerts/history answers
        got = await alert_routes.alert_history(conn, limit=100, after=None, severity=None, source=None, status=None,
                                               rule_id=None, since=None, until=None)
    rows = [r.model_dump() for r in got.items]
    channels: dict[str, dict[str, int]] = {}
    for r in rows:
        channel = r.get("channel") or ("alertmanager" if r.get("source") == "platform" else "events.alerts (NATS)")
        r["channel"] = channel
        state = r.get("delivery") or "none"
        counts = channels.setdefault(channel, {})
        counts[state] = counts.get(state, 0) + 1
    return fragment("panels/alert_history.html", rows=rows, channels=channels)


async def alert_rule(request: Request, rule_id: str) -> dict[str, Any]:
    try:
        ident = uuid.UUID(rule_id)
    except ValueError as exc:
        raise HTTPException(404, f"no alert {rule_id}") from exc
    async with request.app.state.db_pool.connection() as conn:
        row = await alert_store.get(conn, ident)
    if row is None:
        raise HTTPException(404, f"no alert {rule_id}")
    return row


# --- data sources --------------------------------------------------------------------------------


@panel("datasources")
async def datasources(request: Request, viewer: Viewer, args: dict[str, str]) -> str:
    objs, error = await figures.resources(request, "collectors")
    health, health_error = await figures.collector_health(request)
    by_name = {(h["namespace"], h["name"]): h for h in health}
    ns = figures.namespace(request)
    rows = []
    for o in sorted(objs, key=lambda o: o["metadata"]["name"]):
        name = o["metadata"]["name"]
        h = by_name.get((ns, name)) or by_name.get(("default", name))
        status = o.get("status") or {}
        rows.append({"name": name, "spec": o.get("spec") or {}, "status": status, "health": h})
    return fragment("panels/datasources.html", rows=rows, error=error, health_error=health_error, csrf=viewer.csrf,
                    can_admin=viewer.can("POST", "/api/v1/collectors/{name}/stop"),
                    can_edit=viewer.can("PUT", "/api/v1/collectors/{name}"),
                    can_delete=viewer.can("DELETE", "/api/v1/collectors/{name}"))


# --- what a page's live stream updates, and on which events ----------------------------------------

PAGES: dict[str, tuple[str, ...]] = {
    "dashboard": ("equity", "positions", "breakers", "orders", "collectors"),
    "strategies": ("leaderboard",),
    "strategy": ("strategy", "trades", "backtests"),
    "goals": ("goals",),
    "alerts": ("alert-rules", "alert-history"),
    "datasources": ("datasources",),
}

TRIGGERS: dict[str, tuple[str, ...]] = {
    "order": ("equity", "positions", "orders", "trades", "leaderboard"),
    "status.strategy": ("equity", "positions", "leaderboard", "strategy", "goals"),
    "status.riskpolicy": ("breakers",),
    "status.goal": ("goals",),
    "status.collector": ("collectors", "datasources"),
    "collector-health": ("collectors", "datasources"),
    "alert": ("alert-rules", "alert-history"),
    "rejection": ("orders",),
}
