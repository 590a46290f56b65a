"""The FastAPI application: lifespan-managed connections, health, metrics, routers."""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

import kubetrade
from kubetrade.api import docs, failures, health
from kubetrade.api.bodylimit import BodyLimit
from kubetrade.api.candlecache import cache_for
from kubetrade.api.console import router as console_router
from kubetrade.api.errors import PROTECTED_RESPONSES
from kubetrade.api.middleware import RequestContextMiddleware
from kubetrade.api.openapi import document_scopes
from kubetrade.api.security import authenticate, gate_for
from kubetrade.api.settings import Settings
from kubetrade.api.strictquery import reject_repeated_scalars
from kubetrade.api.tasks import background_tasks
from kubetrade.messaging import auth

log = logging.getLogger("kubetrade.api")

ROUTER_MODULES: tuple[str, ...] = (
    "kubetrade.api.routes.risk",
    "kubetrade.api.routes.orders",
    "kubetrade.api.routes.admin",
    "kubetrade.api.routes.strategies",
    "kubetrade.api.routes.backtests",
    "kubetrade.api.routes.alerts",
    "kubetrade.api.routes.goals",
    "kubetrade.api.routes.marketdata",
    "kubetrade.api.routes.collectors",
)
"""Feature routers (``kubetrade.api.routes.<area>``), each exposing ``router``.

Every one is included behind :func:`kubetrade.api.security.authenticate` (API key, scope,
rate limits); only /health, /livez, /metrics and the OpenAPI document are public.
"""


async def _connect_nats(url: str) -> object:
    import nats

    async def _disconnected() -> None:
        log.warning("nats disconnected")

    async def _reconnected() -> None:
        log.info("nats reconnected")

    return await nats.connect(
        url,
        **auth.credentials("api"),
        name="kubetrade-api",
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        disconnected_cb=_disconnected,
        reconnected_cb=_reconnected,
        connect_timeout=3,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.started = time.monotonic()
        app.state.db_pool = None
        app.state.nats = None
        if settings.database_url:
            from psycopg_pool import AsyncConnectionPool

            # open(wait=False): the API starts and reports the database as down
            # rather than refusing to start while PostgreSQL is restarting.
            app.state.db_pool = AsyncConnectionPool(settings.database_url, min_size=1, max_size=10, open=False)
            await app.state.db_pool.open(wait=False)
        if settings.nats_url:
            try:
                app.state.nats = await _connect_nats(settings.nats_url)
            except Exception as exc:
                log.error("nats unreachable at start", extra={"error": type(exc).__name__})
        log.info("api started", extra={"version": kubetrade.__version__})
        try:
            async with (gate_for(app.state, settings), cache_for(app.state, settings),
                        background_tasks(app.state, settings)):
                yield
        finally:
            if app.state.nats is not None:
                await app.state.nats.drain()
            if app.state.db_pool is not None:
                await app.state.db_pool.close()

    app = FastAPI(
        title="kubetrade",
        version=kubetrade.__version__,
        description="Kubernetes-native autonomous crypto trading platform.",
        lifespan=lifespan,
        # Our middleware makes the one server span per request (its trace id is the request id)
        # and Prometheus has the HTTP metrics: FastAPI's own telemetry would double both, at a cost.
        telemetry={"tracing": False, "operation_spans": False, "metrics": False, "logs": False},
        # /docs is served from the package's own copy of Swagger UI (kubetrade.api.docs), not a CDN
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.started = time.monotonic()
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID", "traceparent"],
            expose_headers=["Retry-After", "X-Request-ID"],
        )
    # Bodies over the limit get 413 as soon as they are seen to be (Content-Length, or the
    # bytes read so far), before any of them is parsed.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    for name in ROUTER_MODULES:
        app.include_router(
            importlib.import_module(name).router,
            dependencies=[Depends(authenticate), Depends(reject_repeated_scalars)],
            responses=PROTECTED_RESPONSES,
        )
    # Alertmanager's webhooks: its own bearer token, not an API key (kubetrade.api.routes.alertreceiver)
    app.include_router(importlib.import_module("kubetrade.api.routes.alertreceiver").router,
                       dependencies=[Depends(reject_repeated_scalars)])
    # The console (server-rendered pages, its own session cookie; kubetrade.api.console) and the
    # browser assets it and /docs use, all from the package: nothing is loaded from another host.
    app.include_router(console_router)
    app.include_router(docs.router)
    app.mount("/static", StaticFiles(directory=docs.STATIC), name="static")
    document_scopes(app)
    failures.install(app)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
