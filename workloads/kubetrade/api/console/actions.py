"""What the console's forms and buttons do: each one calls the API operation it stands for.

A form is turned into the API's own request model (``AlertRuleRequest``, ``CollectorRequest``,
``StrategyRequest``, ``BacktestRequest``), so it is validated exactly as a JSON request is, and
then handed to the API's route function, so what happens next - the resource store (the API
server on a cluster), the semantic checks, the backtest launch - is the API's code, not a copy.
The viewer's key must hold the scopes that API operation needs (:meth:`Viewer.require`).

A refusal is shown next to the field it is about: pydantic's errors by their location, the
API's one-sentence errors (``spec.symbols: ...``, ``threshold must be ...``) by the field they
name first; anything else above the form.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from kubetrade.api.console import figures, panels, session
from kubetrade.api.console.render import page
from kubetrade.api.console.session import Form, LoginRequired, Viewer
from kubetrade.api.console.views import NAV, to_login
from kubetrade.api.routes import alerts as alert_routes
from kubetrade.api.routes import collectors as collector_routes
from kubetrade.api.routes import strategies as strategy_routes

router = APIRouter(prefix="/console", include_in_schema=False)

Errors = dict[str, str]


def _field_of(loc: tuple[Any, ...], fields: set[str]) -> str:
    parts = [str(p) for p in loc if not isinstance(p, int)]
    while parts and parts[0] in ("body", "spec", "metadata", "replay"):
        parts = parts[1:] if parts[0] != "replay" else ["replay" + (parts[1].capitalize() if len(parts) > 1 else "")]
    return parts[0] if parts and parts[0] in fields else "_form"


def _named(message: str, fields: set[str]) -> str:
    """The field an API sentence is about: ``spec.symbols: ...`` or ``threshold must be ...``."""
    text = message.removeprefix("Value error, ")
    first = re.split(r"[\s:;,]", text, maxsplit=1)[0]
    first = first.removeprefix("spec.").removeprefix("metadata.").split(".")[0]
    return first if first in fields else "_form"


def errors_of(exc: ValidationError | HTTPException, fields: set[str]) -> Errors:
    out: Errors = {}
    if isinstance(exc, ValidationError):
        for e in exc.errors():
            field = _field_of(tuple(e["loc"]), fields)
            if field == "_form":
                field = _named(e["msg"], fields)
            out.setdefault(field, e["msg"].removeprefix("Value error, "))
    else:
        detail = str(exc.detail)
        for part in detail.split("; "):
            out.setdefault(_named(part, fields), part)
    return out


def done(request: Request, to: str) -> Response:
    """Success: htmx navigates to ``to`` (the page shows the new state); a plain form gets a 303."""
    if request.headers.get("hx-request"):
        here = urlsplit(request.headers.get("hx-current-url", ""))
        there = urlsplit(to)
        if (here.path, here.query) == (there.path, there.query):  # the same page: load it again
            return Response(status_code=204, headers={"HX-Refresh": "true"})
        return Response(status_code=204, headers={"HX-Redirect": to})
    return RedirectResponse(to, status_code=303)


async def _viewer_form(request: Request) -> tuple[Viewer, Form] | Response:
    try:
        return await session.submitted(request)
    except LoginRequired:
        return to_login(request)


# --- strategies ----------------------------------------------------------------------------------


def _strategy_request(obj: dict[str, Any], spec: dict[str, Any]) -> strategy_routes.StrategyRequest:
    meta = obj["metadata"]
    return strategy_routes.StrategyRequest.model_validate({
        "metadata": {"name": meta["name"], "labels": meta.get("labels") or {},
                     "annotations": meta.get("annotations") or {}, "resourceVersion": meta.get("resourceVersion")},
        "spec": spec,
    })


async def _goal_credentials(request: Request, obj: dict[str, Any]) -> dict[str, Any] | None:
    goal = ((obj.get("spec") or {}).get("goalRef") or {}).get("name") or \
        ((obj["metadata"].get("labels") or {}).get("kubetrade.io/goal"))
    if not goal:
        return None
    try:
        g = await figures.store(request).get("goals", figures.namespace(request), goal)
    except Exception:
        return None
    ref: dict[str, Any] | None = (g.get("spec") or {}).get("liveCredentialsSecretRef")
    return ref


@router.post("/strategies/{name}/{action}")
async def strategy_action(request: Request, name: str, action: str) -> Response:
    got = await _viewer_form(request)
    if isinstance(got, Response):
        return got
    viewer, form = got
    if action == "backtest":
        return await _backtest(request, viewer, form, name)
    if action not in ("pause", "resume", "promote", "retire"):
        raise HTTPException(404, f"no action {action}")
    viewer.require("PUT", "/api/v1/strategies/{name}")
    obj = await panels.strategy_object(request, name)
    spec = dict(obj.get("spec") or {})
    if action in ("pause", "resume"):
        spec["paused"] = action == "pause"
    elif action == "retire":
        spec["retired"] = True
    else:
        spec["mode"] = "live"
        if not spec.get("credentialsSecretRef"):
            ref = await _goal_credentials(request, obj)
            if ref:
                spec["credentialsSecretRef"] = ref
    try:
        body = _strategy_request(obj, spec)
        await strategy_routes.replace_strategy(name, body, request, None)
    except (ValidationError, HTTPException) as exc:
        message = "; ".join(errors_of(exc, set()).values())
        return _flash(request, f"/console/strategies/{name}", f"{action} refused: {message}")
    return done(request, f"/console/strategies/{name}")


def _flash(request: Request, to: str, message: str) -> Response:
    """A refused action: htmx shows the API's sentence where the page keeps its messages."""
    if request.headers.get("hx-request"):
        return Response(f'<p class="error" id="flash" role="alert">{_escape(message)}</p>', status_code=422,
                        headers={"HX-Retarget": "#flash", "HX-Reswap": "outerHTML"}, media_type="text/html")
    return Response(message, status_code=422, media_type="text/plain")


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


BACKTEST_FIELDS = {"start", "end", "days", "initialCash"}
_LOCAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?")
"""What a datetime-local input sends: a time with no offset (the form labels it UTC)."""


async def _backtest(request: Request, viewer: Viewer, form: Form, name: str) -> Response:
    viewer.require("POST", "/api/v1/strategies/{name}/backtest")
    values = {k: form.get(k) for k in BACKTEST_FIELDS if form.get(k)}
    for k in ("start", "end"):  # the form's datetime-local fields say "(UTC)" and carry no offset
        v = values.get(k)
        if isinstance(v, str) and _LOCAL_TIME.fullmatch(v.strip()):
            values[k] = v.strip() + "Z"
    try:
        body = strategy_routes.BacktestRequest.model_validate(values)
        async with request.app.state.db_pool.connection() as conn:
            await strategy_routes.backtest_strategy(name, request, Response(), conn, body, None)
    except (ValidationError, HTTPException) as exc:
        return await _backtest_form(request, viewer, name, form, errors_of(exc, BACKTEST_FIELDS))
    return done(request, f"/console/strategies/{name}#backtests")


async def _backtest_form(request: Request, viewer: Viewer, name: str, form: Form, errors: Errors) -> Response:
    values = {k: form.get(k) for k in BACKTEST_FIELDS}
    if request.headers.get("hx-request"):
        return page(request, "forms/backtest.html", status=422, name=name, values=values, errors=errors,
                    viewer=viewer)
    obj = await panels.strategy_object(request, name)
    chart = await figures.chart_data(request, obj)
    import json

    rendered = {p: await panels.render(request, viewer, p, {"name": name}) for p in panels.PAGES["strategy"]}
    return page(request, "strategy.html", status=422, nav=NAV, current="strategy", viewer=viewer, panels=rendered,
                live=f"/console/live?page=strategy&name={name}", name=name, chart_json=json.dumps(chart, default=str),
                backtest_form=values, errors=errors, can_backtest=True)


# --- alerts --------------------------------------------------------------------------------------

ALERT_FIELDS = {"name", "metric", "target", "operator", "threshold", "severity", "cooldownSeconds", "enabled"}


def _kept_delivery(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule's channels and quiet hours, which the form does not edit: an edit or a silence keeps them."""
    kept: dict[str, Any] = {"channels": list(rule.get("channels") or [])}
    if rule.get("quiet_hours"):
        kept["quietHours"] = rule["quiet_hours"]
    return kept


def _alert_body(form: Form) -> dict[str, Any]:
    body: dict[str, Any] = {k: form.get(k) for k in ALERT_FIELDS if k != "enabled" and form.has(k)}
    body["enabled"] = form.get("enabled") == "on"
    if body.get("cooldownSeconds") == "":
        body.pop("cooldownSeconds")
    return body


async def _form_again(request: Request, viewer: Viewer, form_template: str, page_name: str,
                      values: dict[str, str], errors: Errors, editing: dict[str, Any] | None) -> Response:
    """A refused create or edit: the form again with its errors (htmx), or its whole page (a plain form)."""
    if request.headers.get("hx-request"):
        return page(request, form_template, status=422, values=values, errors=errors, editing=editing,
                    viewer=viewer)
    rendered = {p: await panels.render(request, viewer, p, {}) for p in panels.PAGES[page_name]}
    return page(request, f"{page_name}.html", status=422, nav=NAV, current=page_name, viewer=viewer,
                panels=rendered, live=f"/console/live?page={page_name}", values=values, errors=errors,
                editing=editing, can_create=True)


async def _alert_form(request: Request, viewer: Viewer, form: Form, errors: Errors,
                      editing: dict[str, Any] | None) -> Response:
    values = {k: form.get(k) for k in ALERT_FIELDS}
    return await _form_again(request, viewer, "forms/alert.html", "alerts", values, errors, editing)


@router.post("/alerts")
async def create_alert(request: Request) -> Response:
    got = await _viewer_form(request)
    if isinstance(got, Response):
        return got
    viewer, form = got
    viewer.require("POST", "/api/v1/alerts")
    try:
        body = alert_routes.AlertRuleRequest.model_validate(_alert_body(form))
        async with request.app.state.db_pool.connection() as conn:
            await alert_routes.create_alert(body, request, conn)
    except (ValidationError, HTTPException) as exc:
        return await _alert_form(request, viewer, form, errors_of(exc, ALERT_FIELDS), None)
    return done(request, "/console/alerts")


@router.post("/alerts/{rule_id}/{action}")
async def alert_action(request: Request, rule_id: str, action: str) -> Response:
    got = await _viewer_form(request)
    if isinstance(got, Response):
        return got
    viewer, form = got
    rule = await panels.alert_rule(request, rule_id)
    if action == "delete":
        viewer.require("DELETE", "/api/v1/alerts/{alert_id}")
        async with request.app.state.db_pool.connection() as conn:
            await alert_routes.delete_alert(rule["id"], request, conn)
        return done(request, "/console/alerts")
    viewer.require("PUT", "/api/v1/alerts/{alert_id}")
    if action in ("silence", "unsilence"):
        fields = {k: rule[k] for k in ("name", "metric", "target", "operator", "threshold", "severity")}
        fields |= {"cooldownSeconds": rule["cooldown_seconds"], "enabled": action == "unsilence",
                   "namespace": None if rule["namespace"] == "*" else rule["namespace"]}
        fields |= _kept_delivery(rule)
        body = alert_routes.AlertRuleRequest.model_validate(fields)
    elif action == "edit":
        try:
            body = alert_routes.AlertRuleRequest.model_validate(_kept_delivery(rule) | _alert_body(form))
        except ValidationError as exc:
            return await _alert_form(request, viewer, form, errors_of(exc, ALERT_FIELDS), rule)
    else:
        raise HTTPException(404, f"no action {action}")
    async with request.app.state.db_pool.connection() as conn:
        try:
            await alert_routes.replace_alert(rule["id"], body, request, conn)
        except HTTPException as exc:
            return await _alert_form(request, viewer, form, errors_of(exc, ALERT_FIELDS), rule)
    return done(request, "/console/alerts")


# --- collectors ----------------------------------------------------------------------------------

COLLECTOR_FIELDS = {"name", "source", "provider", "exchange", "symbols", "timeframes", "intervalSeconds",
                    "backfillDays", "replayPath", "replaySpeed", "suspend"}


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", text.strip()) if w]


def _collector_body(form: Form) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": form.get("source"), "provider": form.get("provider"),
                            "symbols": _words(form.get("symbols")), "suspend": form.get("suspend") == "on"}
    if form.get("exchange"):
        spec["exchange"] = form.get("exchange")
    if form.get("timeframes"):
        spec["timeframes"] = _words(form.get("timeframes"))
    for k in ("intervalSeconds", "backfillDays"):
        if form.get(k):
            spec[k] = form.get(k)
    if spec["source"] == "replay":
        spec["replay"] = {"path": form.get("replayPath") or "bundled", "speed": form.get("replaySpeed") or 60}
    meta: dict[str, Any] = {"name": form.get("name")}
    if form.get("resourceVersion"):
        meta["resourceVersion"] = form.get("resourceVersion")
    return {"metadata": meta, "spec": spec}


async def _collector_form(request: Request, viewer: Viewer, form: Form, errors: Errors,
                          editing: dict[str, Any] | None) -> Response:
    values = {k: form.get(k) for k in (*COLLECTOR_FIELDS, "resourceVersion")}
    return await _form_again(request, viewer, "forms/collector.html", "datasources", values, errors, editing)


@router.post("/datasources")
async def create_collector(request: Request) -> Response:
    got = await _viewer_form(request)
    if isinstance(got, Response):
        return got
    viewer, form = got
    viewer.require("POST", "/api/v1/collectors")
    try:
        body = collector_routes.CollectorRequest.model_validate(_collector_body(form))
        await collector_routes.create_collector(body, request, Response(), None)
    except (ValidationError, HTTPException) as exc:
        return await _collector_form(request, viewer, form, errors_of(exc, COLLECTOR_FIELDS), None)
    return done(request, "/console/datasources")


@router.post("/datasources/{name}/{action}")
async def collector_action(request: Request, name: str, action: str) -> Response:
    got = await _viewer_form(request)
    if isinstance(got, Response):
        return got
    viewer, form = got
    if action in ("start", "stop"):
        viewer.require("POST", f"/api/v1/collectors/{{name}}/{action}")
        fn = collector_routes.start_collector if action == "start" else collector_routes.stop_collector
        try:
            await fn(name, request, None)
        except HTTPException as exc:
            return _flash(request, "/console/datasources", f"{action} refused: {exc.detail}")
        return done(request, "/console/datasources")
    if action == "delete":
        viewer.require("DELETE", "/api/v1/collectors/{name}")
        try:
            await collector_routes.delete_collector(name, request, None)
        except HTTPException as exc:
            return _flash(request, "/console/datasources", f"delete refused: {exc.detail}")
        return done(request, "/console/datasources")
    if action != "edit":
        raise HTTPException(404, f"no action {action}")
    viewer.require("PUT", "/api/v1/collectors/{name}")
    editing = {"metadata": {"name": name}}
    try:
        body = collector_routes.CollectorRequest.model_validate(_collector_body(form))
        await collector_routes.replace_collector(name, body, request, None)
    except (ValidationError, HTTPException) as exc:
        return await _collector_form(request, viewer, form, errors_of(exc, COLLECTOR_FIELDS), editing)
    return done(request, "/console/datasources")
