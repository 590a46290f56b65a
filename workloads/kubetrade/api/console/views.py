"""The console's pages and the login: ``/console/...``, served by the API process itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kubetrade.api import security
from kubetrade.api.console import figures, panels, session
from kubetrade.api.console.render import page
from kubetrade.api.console.session import LoginRequired, Viewer
from kubetrade.api.routes import collectors as collector_routes

router = APIRouter(prefix="/console", include_in_schema=False)

NAV = (("dashboard", "Dashboard", "/console/"), ("strategies", "Strategies", "/console/strategies"),
       ("goals", "Goals", "/console/goals"), ("alerts", "Alerts", "/console/alerts"),
       ("datasources", "Data sources", "/console/datasources"))


def to_login(request: Request) -> RedirectResponse:
    return RedirectResponse("/console/login", status_code=303)


async def _page(request: Request, which: str, template: str, live_args: dict[str, str] | None = None,
                **context: Any) -> Response:
    try:
        viewer = await session.viewer(request)
    except LoginRequired:
        return to_login(request)
    args = live_args or {}
    rendered = {p: await panels.render(request, viewer, p, args) for p in panels.PAGES[which]}
    live = f"/console/live?page={which}" + "".join(f"&{k}={quote(v)}" for k, v in args.items())
    return page(request, template, nav=NAV, current=which, viewer=viewer, panels=rendered, live=live, **context)


# --- login ---------------------------------------------------------------------------------------


@router.get("/login")
async def login_form(request: Request) -> Response:
    token = session.new_login_token()
    response: Response = page(request, "login.html", login_token=token, error=None)
    response.set_cookie(session.LOGIN_COOKIE, token, path=session.PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", max_age=3600)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await session.read_form(request)
    session.check_csrf(request, form.get("login_token"), request.cookies.get(session.LOGIN_COOKIE) or "-")
    key = form.get("api_key").strip()
    try:
        principal = await security.authenticate_key(request, key)
    except HTTPException as exc:
        token = session.new_login_token()
        refused = page(request, "login.html", status=exc.status_code, login_token=token, error=exc.detail)
        refused.set_cookie(session.LOGIN_COOKIE, token, path=session.PATH, httponly=True, samesite="strict",
                           secure=request.url.scheme == "https", max_age=3600)
        return refused
    token, expires = await session.open_session(request, principal)
    response = RedirectResponse("/console/", status_code=303)
    session.set_session_cookie(request, response, token, expires)
    response.delete_cookie(session.LOGIN_COOKIE, path=session.PATH)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    try:
        await session.submitted(request)
    except LoginRequired:
        return to_login(request)
    await session.close_session(request)
    response = RedirectResponse("/console/login", status_code=303)
    session.clear_session_cookie(response)
    return response


# --- pages ---------------------------------------------------------------------------------------


@router.get("")
async def root(request: Request) -> Response:
    return RedirectResponse("/console/", status_code=307)


@router.get("/")
async def dashboard(request: Request) -> Response:
    return await _page(request, "dashboard", "dashboard.html")


@router.get("/strategies")
async def strategies(request: Request, sort: str = "pnl", dir: str = "desc") -> Response:
    sort = sort if sort in figures.SORTS else "pnl"
    direction = "asc" if dir == "asc" else "desc"
    return await _page(request, "strategies", "strategies.html", {"sort": sort, "dir": direction})


@router.get("/strategies/{name}")
async def strategy(request: Request, name: str) -> Response:
    try:
        viewer = await session.viewer(request)
    except LoginRequired:
        return to_login(request)
    obj = await panels.strategy_object(request, name)
    chart = await figures.chart_data(request, obj)
    end = datetime.fromtimestamp(chart["newest"] / 1000, UTC) if chart["newest"] else datetime.now(UTC)
    return await _page(request, "strategy", "strategy.html", {"name": name}, name=name,
                       chart_json=json.dumps(chart, default=str), backtest_form=backtest_defaults(end),
                       errors={}, can_backtest=viewer.can("POST", "/api/v1/strategies/{name}/backtest"))


def backtest_defaults(end: datetime) -> dict[str, str]:
    """The form's defaults: the 30 days before the newest stored candle (the data clock, not the wall clock)."""
    end = end.replace(second=0, microsecond=0)
    return {"start": (end - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M"), "end": end.strftime("%Y-%m-%dT%H:%M"),
            "initialCash": "10000"}


@router.get("/goals")
async def goals(request: Request) -> Response:
    return await _page(request, "goals", "goals.html")


@router.get("/alerts")
async def alerts(request: Request, edit: str | None = None) -> Response:
    try:
        viewer = await session.viewer(request)
    except LoginRequired:
        return to_login(request)
    rule = await panels.alert_rule(request, edit) if edit else None
    values = _rule_values(rule) if rule else {"severity": "warning", "cooldownSeconds": "300", "enabled": "on",
                                              "operator": ">", "metric": "pnl"}
    return await _page(request, "alerts", "alerts.html", values=values, errors={}, editing=rule,
                       can_create=viewer.can("POST", "/api/v1/alerts"))


def _rule_values(rule: dict[str, Any]) -> dict[str, str]:
    return {"name": rule["name"], "metric": rule["metric"], "target": rule["target"], "operator": rule["operator"],
            "threshold": repr(rule["threshold"]), "severity": rule["severity"],
            "cooldownSeconds": str(rule["cooldown_seconds"]), "enabled": "on" if rule["enabled"] else ""}


@router.get("/datasources")
async def datasources(request: Request, edit: str | None = None) -> Response:
    try:
        viewer = await session.viewer(request)
    except LoginRequired:
        return to_login(request)
    values: dict[str, str] = {"source": "replay", "provider": "bundled", "exchange": "binance",
                              "timeframes": "5m", "intervalSeconds": "60", "backfillDays": "7", "replayPath": "bundled",
                              "replaySpeed": "60"}
    editing = None
    if edit:
        editing = (await collector_routes.get_collector(edit, request, None)).to_k8s()
        values = collector_values(editing)
    return await _page(request, "datasources", "datasources.html", values=values, errors={}, editing=editing,
                       can_create=viewer.can("POST", "/api/v1/collectors"))


def collector_values(obj: dict[str, Any]) -> dict[str, str]:
    spec = obj.get("spec") or {}
    replay = spec.get("replay") or {}
    return {"name": obj["metadata"]["name"], "source": spec.get("source", ""), "provider": spec.get("provider", ""),
            "exchange": spec.get("exchange") or "", "symbols": ", ".join(spec.get("symbols") or []),
            "timeframes": ", ".join(spec.get("timeframes") or []),
            "intervalSeconds": str(spec.get("intervalSeconds", 60)), "backfillDays": str(spec.get("backfillDays", 7)),
            "replayPath": replay.get("path", "bundled"), "replaySpeed": str(replay.get("speed", 60)),
            "suspend": "on" if spec.get("suspend") else "", "resourceVersion": obj["metadata"].get("resourceVersion")
            or ""}


def viewer_of(request: Request) -> Viewer:
    found: Viewer = request.state.viewer
    return found


def html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status)
