"""What each console panel shows, read from the same places the API reads.

Resources come through the resource store (the API server on a cluster, the database under
``kubetrade up``), the order record through :mod:`kubetrade.ledger.queries`, risk from the
risk manager over NATS (``control.risk``, as ``GET /api/v1/risk/metrics``), collector health
from its KV bucket (as ``GET /health/collectors``).  A source that does not answer makes its
panel say so; it never fails the page.

PnL windows end at the *data clock*: the newest sample any collector reported (trading live,
about now; under a replay, the replayed time), so "today" is the day the market data is in.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import HTTPException, Request

from kubetrade import cluster
from kubetrade.api.routes import collectors as collector_routes
from kubetrade.api.routes import risk as risk_routes
from kubetrade.candles import timeframe_ms
from kubetrade.ledger import queries
from kubetrade.runner.intents import bar_time_of
from kubetrade.storage import history
from kubetrade.storage.candles import SeriesKey, last_time

log = logging.getLogger("kubetrade.api.console")

STALE_AFTER = 300.0


def namespace(request: Request) -> str:
    return str(request.app.state.settings.namespace)


def store(request: Request) -> cluster.ResourceStore:
    found = cluster.resource_store(getattr(request.app.state, "db_pool", None))
    if found is None:
        raise HTTPException(503, "no cluster and no database: nowhere resources are kept")
    return found


async def resources(request: Request, plural: str) -> tuple[list[dict[str, Any]], str | None]:
    """Every object of a kind in the API's namespace, or an empty list and why."""
    try:
        return await store(request).list(plural, namespace(request)), None
    except (cluster.StoreError, HTTPException) as exc:
        return [], str(getattr(exc, "message", None) or getattr(exc, "detail", exc))
    except Exception as exc:  # the API server is down: the panel says so
        log.warning("resource list failed", extra={"plural": plural, "error": type(exc).__name__})
        return [], f"{plural} cannot be read now ({type(exc).__name__})"


async def collector_health(request: Request) -> tuple[list[dict[str, Any]], str | None]:
    nc = getattr(request.app.state, "nats", None)
    if nc is None or not nc.is_connected:
        return [], "NATS is not connected: collector health is kept there"
    try:
        found = await collector_routes.read_health(nc)
    except Exception as exc:
        return [], f"collector health cannot be read ({type(exc).__name__})"
    now = time.time() * 1000
    out = []
    for h in sorted(found, key=lambda h: (h.namespace, h.name)):
        replay = h.source == "replay"  # replayed candles are old by design: no lag against the wall clock
        lag = (now - h.last_sample_time) / 1000 if h.last_sample_time is not None else None
        stale = h.phase == "Running" and not replay and (lag is None or lag > STALE_AFTER)
        out.append({**h.model_dump(), "stale": stale, "replay": replay, "age_seconds": (now - h.time) / 1000,
                    "lag_seconds": None if replay else h.lag_seconds})
    return out, None


def data_clock(health: list[dict[str, Any]]) -> datetime:
    samples = [h["last_sample_time"] for h in health if h.get("last_sample_time")]
    if not samples:
        return datetime.now(UTC)
    return min(datetime.fromtimestamp(max(samples) / 1000, UTC), datetime.now(UTC))


async def equity(request: Request, clock: datetime) -> dict[str, Any]:
    pool = request.app.state.db_pool
    if pool is None:
        return {"error": "no database configured", "environments": []}
    day = clock.replace(hour=0, minute=0, second=0, microsecond=0)
    async with pool.connection() as conn:
        rows = await queries.equity_by_environment(conn)
        today = {r["environment"]: r for r in await queries.realised_since(conn, day)}
        week = {r["environment"]: r for r in await queries.realised_since(conn, clock - timedelta(days=7))}
    envs = []
    for r in rows:
        env = r["environment"]
        envs.append({**r, "today": (today.get(env) or {}).get("pnl") or 0.0,
                     "today_fills": (today.get(env) or {}).get("fills") or 0,
                     "week": (week.get(env) or {}).get("pnl") or 0.0})
    return {"environments": envs, "clock": clock, "error": None}


async def positions(request: Request) -> list[dict[str, Any]]:
    async with request.app.state.db_pool.connection() as conn:
        rows = await queries.list_positions(conn, None, None, False)
    for r in rows:
        mark = r.get("mark_price") or r["average_price"]
        r["unrealised_pnl"] = (mark - r["average_price"]) * r["quantity"] if r["quantity"] else 0.0
    return rows


async def orders(request: Request, limit: int = 15) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The newest orders, and the newest refusals: the risk manager's (no order row; its RiskRejection
    events) and the executor's or exchange's (orders with status rejected), newest first."""
    async with request.app.state.db_pool.connection() as conn:
        last = await queries.list_orders(conn, None, None, None, limit)
        refused = await queries.list_orders(conn, None, None, "rejected", 8)
    rows = [{"time": o["updated_at"], "by": "executor", "client_order_id": o["client_order_id"],
             "environment": o["environment"], "strategy": o["strategy"], "symbol": o["symbol"], "side": o["side"],
             "quantity": o["quantity"], "rule": None, "reason": o["reason"]} for o in refused]
    log_ = getattr(request.app.state, "rejections", None)
    for r in log_.newest(8) if log_ is not None else []:
        rows.append({"time": datetime.fromtimestamp(r.time / 1000, UTC), "by": "risk manager",
                     "client_order_id": r.client_order_id, "environment": r.environment, "strategy": r.strategy,
                     "symbol": r.symbol, "side": r.side, "quantity": r.quantity, "rule": r.rule,
                     "reason": "; ".join(r.reasons)})
    rows.sort(key=lambda r: r["time"], reverse=True)
    return last, rows[:10]


async def breakers(request: Request) -> dict[str, Any]:
    try:
        got = await risk_routes.metrics(request)
    except HTTPException as exc:
        return {"source": None, "portfolios": [], "error": exc.detail}
    except Exception as exc:
        return {"source": None, "portfolios": [], "error": f"risk figures cannot be read ({type(exc).__name__})"}
    return {**got, "error": None}


def strategy_row(obj: dict[str, Any]) -> dict[str, Any]:
    """One leaderboard row: the figures the runner reported, the gates' evidence the evolution wrote."""
    spec, status, meta = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
    evidence = status.get("evidence") or {}
    return {
        "name": meta.get("name"),
        "mode": spec.get("mode", "paper"),
        "phase": status.get("phase", "Pending"),
        "paused": bool(spec.get("paused")),
        "retired": bool(spec.get("retired")),
        "symbols": spec.get("symbols") or [],
        "timeframe": spec.get("timeframe"),
        "pnl": status.get("pnl"),
        "equity": status.get("equity"),
        "sharpe": status.get("sharpe"),
        "drawdown": status.get("maxDrawdown", status.get("drawdown")),
        "trades": status.get("trades"),
        "message": status.get("message"),
        "goal": (spec.get("goalRef") or {}).get("name") or (meta.get("labels") or {}).get("kubetrade.io/goal"),
        "evidence": evidence,
        "dsr": evidence.get("deflatedSharpe", (status.get("backtest") or {}).get("deflatedSharpe")),
        "pbo": evidence.get("pbo"),
        "windows": (evidence.get("positiveWindows"), len(evidence.get("windows") or [])) if evidence else None,
        "gate": None if not evidence else ("passed" if evidence.get("passed") else "failed"),
        "failures": evidence.get("failures") or [],
    }


SORTS = {"name": str, "mode": str, "phase": str, "pnl": float, "sharpe": float, "drawdown": float, "trades": float,
         "dsr": float}


def sort_rows(rows: list[dict[str, Any]], key: str, descending: bool) -> list[dict[str, Any]]:
    kind = SORTS.get(key, str)

    def value(r: dict[str, Any]) -> tuple[int, Any]:
        v = r.get(key)
        if v is None:
            return (1, 0 if kind is float else "")  # unknown figures last, whichever the direction
        return (0, kind(v) if kind is float else str(v))

    known = [r for r in rows if r.get(key) is not None]
    unknown = [r for r in rows if r.get(key) is None]
    known.sort(key=value, reverse=descending)
    return known + sorted(unknown, key=lambda r: str(r.get("name")))


def decided_at(fill: dict[str, Any]) -> int:
    """When the fill's order was decided, in seconds: a runner's bar (from its client order id, so a
    replay's fills sit on the replayed bars), else the fill's own time (a manual order)."""
    bar = bar_time_of(str(fill["client_order_id"]))
    return bar // 1000 if bar is not None else int(fill["time"].timestamp())


def curves(fills: list[dict[str, Any]], capital: float) -> dict[str, list[dict[str, Any]]]:
    """Realised equity and its drawdown, one point per fill (after fees), and the chart's trade markers,
    each at the time its order was decided (:func:`decided_at`)."""
    equity_points, drawdown_points, markers = [], [], []
    eq = peak = capital
    last_t = None
    for f in sorted(fills, key=lambda f: (decided_at(f), f["id"])):
        t = decided_at(f)
        eq += float(f["realised_pnl"]) - float(f["fee"])
        peak = max(peak, eq)
        if last_t == t:  # one point per second: the chart needs strictly increasing times
            equity_points[-1]["value"] = eq
            drawdown_points[-1]["value"] = -(peak - eq) / peak * 100 if peak else 0.0
        else:
            equity_points.append({"time": t, "value": eq})
            drawdown_points.append({"time": t, "value": -(peak - eq) / peak * 100 if peak else 0.0})
        last_t = t
        markers.append({"time": t, "side": f["side"], "price": float(f["price"]), "quantity": float(f["quantity"]),
                        "symbol": f["symbol"]})
    return {"equity": equity_points, "drawdown": drawdown_points, "markers": markers}


def _candle_time(ms: int, timeframe: str) -> int:
    step = timeframe_ms(timeframe)
    return int(ms // step * step // 1000)


async def chart_data(request: Request, obj: dict[str, Any]) -> dict[str, Any]:
    """Candles of the strategy's first symbol around its fills, the fills as markers, its realised curves."""
    spec = obj.get("spec") or {}
    name = obj["metadata"]["name"]
    env = spec.get("mode", "paper")
    symbol = (spec.get("symbols") or ["BTC/USDT"])[0]
    timeframe = spec.get("timeframe", "5m")
    key = SeriesKey(spec.get("exchange", "binance"), symbol, timeframe)
    async with request.app.state.db_pool.connection() as conn:
        fills = await queries.strategy_fill_history(conn, env, namespace(request), name)
        ledger = await queries.ledger_of(conn, env, namespace(request), name)
        newest = await last_time(conn, key)
        if newest is None:
            candles: list[tuple[Any, ...]] = []
        else:
            first_fill = min((datetime.fromtimestamp(decided_at(f), UTC) for f in fills
                              if f["symbol"] == symbol), default=None)
            end = datetime.fromtimestamp(newest / 1000, UTC) + timedelta(seconds=1)
            start = end - timedelta(days=2)
            if first_fill is not None and first_fill < start:
                start = first_fill - timedelta(hours=2)
            candles, _ = await history.page(conn, key, start, end, 3000)
    capital = float(ledger["capital"]) if ledger else float((spec.get("capital") or {}).get("amount") or 0)
    curve = curves(fills, capital)
    first_bar = int(candles[0][0]) if candles else 0
    last_bar = int(candles[-1][0]) + timeframe_ms(timeframe) if candles else -1
    markers = [{**m, "time": _candle_time(m["time"] * 1000, timeframe)} for m in curve["markers"]
               if m["symbol"] == symbol and first_bar <= m["time"] * 1000 <= last_bar]
    return {
        "symbol": symbol,
        "timeframe": timeframe,
        "candles": [{"time": int(c[0] // 1000) if isinstance(c[0], int) else int(c[0].timestamp()),
                     "open": c[1], "high": c[2], "low": c[3], "close": c[4]} for c in candles],
        "markers": markers,
        "unplaced": sum(1 for m in curve["markers"] if m["symbol"] == symbol) - len(markers),
        "equity": curve["equity"],
        "drawdown": curve["drawdown"],
        "capital": capital,
        "newest": newest,
    }
