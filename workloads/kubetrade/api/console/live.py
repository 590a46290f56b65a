"""``/console/live``: a page's panels pushed to the browser as they change (Server-Sent Events).

The stream follows NATS, where the platform already says what changed: the workloads' status
reports (``status.>``), order events (``events.orders.>``), collector health (the KV bucket's
subjects, ``$KV.collector-health.>``) and alerts (``events.alerts.>``).  An event marks the panels
it affects (:data:`kubetrade.api.console.panels.TRIGGERS`); at most once a second the marked
panels are rendered again on the server - the same functions that rendered the page - and sent
as ``event: panel`` with ``{"id", "html"}``.  The browser only swaps them in: it never polls.

The strategy page's charts follow too: a closed candle of the strategy's stream
(``md.<exchange>.<symbol>.candle.<timeframe>``) or an order event of the strategy marks them,
and at most every :data:`CHART_INTERVAL` seconds the chart data the page was drawn from
(:func:`kubetrade.api.console.figures.chart_data`: candles, fills as markers, realised equity and
drawdown) is read again and sent as ``event: chart``; the browser sets it into the series it drew.

On connect every panel of the page is sent, so a browser that lost the stream and reconnected
(EventSource does that by itself, after ``retry`` ms) shows the present state at once; a comment
every 15 s keeps proxies from closing an idle stream.  The session is checked again every 30 s:
a revoked key ends the stream with ``event: logout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response, StreamingResponse

from kubetrade.api.console import figures, panels, session
from kubetrade.api.console.session import LoginRequired, Viewer
from kubetrade.messaging import subjects

router = APIRouter(prefix="/console", include_in_schema=False)
log = logging.getLogger("kubetrade.api.console")

MIN_INTERVAL = 1.0
KEEPALIVE = 15.0
RECHECK = 30.0
BUSY_BACKTEST_EVERY = 2.0
CHART_INTERVAL = 2.0


def _kind(subject: str) -> str | None:
    if subject.startswith("events.orders."):
        return "order"
    if subject.startswith("status."):
        return "status." + subject.split(".")[1]
    if subject.startswith(f"$KV.{subjects.COLLECTOR_HEALTH_BUCKET}."):
        return "collector-health"
    if subject.startswith("events.alerts."):
        return "alert"
    if subject.startswith("events.strategy.") and subject.endswith(".rejected"):
        return "rejection"
    return None


def _message(event: str, data: dict[str, Any] | None = None) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data or {}, default=str)}\n\n".encode()


async def _chart_subjects(request: Request, name: str) -> tuple[dict[str, Any], set[str]] | None:
    """The strategy, and the subjects whose messages change its charts: its candle stream, its order events."""
    try:
        obj = await panels.strategy_object(request, name)
    except HTTPException:
        return None
    spec = obj.get("spec") or {}
    symbol = (spec.get("symbols") or ["BTC/USDT"])[0]
    try:
        return obj, {subjects.candle(spec.get("exchange", "binance"), symbol, spec.get("timeframe", "5m")),
                     subjects.order_events(spec.get("mode", "paper"), name)}
    except ValueError:  # a name or symbol no subject can carry: the charts stay as drawn
        return None


async def _stream(request: Request, viewer: Viewer, name: str, args: dict[str, str]) -> AsyncIterator[bytes]:
    wanted = panels.PAGES[name]
    dirty: set[str] = set(wanted)
    wake = asyncio.Event()
    wake.set()
    subs: list[Any] = []
    nc = getattr(request.app.state, "nats", None)
    chart = await _chart_subjects(request, args["name"]) if name == "strategy" else None
    chart_dirty = chart is not None  # on (re)connect too: the page may have been drawn long ago
    last_chart = 0.0

    async def on_event(msg: Any) -> None:
        nonlocal chart_dirty
        if chart is not None and msg.subject in chart[1]:
            chart_dirty = True
            wake.set()
        kind = _kind(msg.subject)
        if kind is None:
            return
        if kind == "status.strategy" and name == "strategy" and not msg.subject.endswith("." + subjects.token(
                args.get("name", ""))):
            hit = {p for p in panels.TRIGGERS[kind] if p in wanted and p != "strategy"}
        else:
            hit = {p for p in panels.TRIGGERS.get(kind, ()) if p in wanted}
        if hit:
            dirty.update(hit)
            wake.set()

    if nc is not None and nc.is_connected:
        for subject in ("status.>", "events.orders.>", f"$KV.{subjects.COLLECTOR_HEALTH_BUCKET}.>", "events.alerts.>",
                        subjects.risk_rejected("*")):
            subs.append(await nc.subscribe(subject, cb=on_event))
        if chart is not None:
            subs.extend([await nc.subscribe(subject, cb=on_event) for subject in sorted(chart[1])
                         if subject.startswith("md.")])  # its order events come through events.orders.>
    yield b"retry: 1000\n\n"
    yield _message("hello", {"page": name, "nats": bool(subs)})
    last_render = 0.0
    last_beat = last_check = time.monotonic()
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), 1.0)
            if await request.is_disconnected():
                return
            now = time.monotonic()
            if now - last_check > RECHECK:
                last_check = now
                try:
                    viewer = await session.viewer(request)
                except LoginRequired:
                    yield _message("logout")
                    return
            if name == "strategy" and now - last_render > BUSY_BACKTEST_EVERY and \
                    await panels.busy_backtests(request, args["name"]):
                dirty.add("backtests")  # a backtest runs in a Job or task: no event says it ended
                wake.set()
            if dirty and now - last_render >= MIN_INTERVAL:
                wake.clear()
                todo = sorted(dirty)
                dirty.clear()
                last_render = now
                for panel in todo:
                    try:
                        html = await panels.render(request, viewer, panel, args)
                    except Exception as exc:  # one panel's source is down: the others still update
                        log.warning("live panel failed", extra={"panel": panel, "error": type(exc).__name__})
                        continue
                    yield _message("panel", {"id": f"panel-{panel}", "html": html})
                last_beat = now
            elif dirty:
                await asyncio.sleep(MIN_INTERVAL - (now - last_render))
            else:
                wake.clear()
            if chart is not None and chart_dirty and now - last_chart >= CHART_INTERVAL:  # else: a later pass
                chart_dirty = False
                last_chart = now
                try:
                    data = await figures.chart_data(request, chart[0])
                except Exception as exc:  # the database is down: the charts stay as they are
                    log.warning("live chart failed", extra={"error": type(exc).__name__})
                else:
                    yield _message("chart", data)
                    last_beat = now
            if now - last_beat > KEEPALIVE:
                last_beat = now
                yield b": keepalive\n\n"
    finally:
        for s in subs:
            with contextlib.suppress(Exception):
                await s.unsubscribe()


@router.get("/live")
async def live(request: Request, page: str = "dashboard", name: str = "", sort: str = "", dir: str = "") -> Response:
    try:
        viewer = await session.viewer(request)
    except LoginRequired:
        return Response("log in again", status_code=401, media_type="text/plain")
    if page not in panels.PAGES:
        raise HTTPException(404, f"no page {page}")
    args = {k: v for k, v in (("name", name), ("sort", sort), ("dir", dir)) if v}
    if page == "strategy" and not name:
        raise HTTPException(422, "name is required for the strategy page")
    return StreamingResponse(_stream(request, viewer, page, args), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
