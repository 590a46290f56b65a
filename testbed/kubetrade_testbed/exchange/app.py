"""The local exchange's ASGI app and its uvicorn runner."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.responses import Response

from kubetrade.localstack.servers.processes import free_port
from kubetrade_testbed.exchange.public import BinanceError
from kubetrade_testbed.exchange.state import ExchangeState, RateLimited

ROUTER_MODULES: tuple[str, ...] = (
    "kubetrade_testbed.exchange.public",
    "kubetrade_testbed.exchange.streams",
    "kubetrade_testbed.exchange.trading",
)
"""Modules exposing ``router``; the signed trading endpoints add ``...exchange.trading`` here."""


def create_app(state: ExchangeState | None = None, routers: tuple[str, ...] = ROUTER_MODULES) -> FastAPI:
    """A Binance-compatible app over ``state`` (a fresh one if not given)."""
    app = FastAPI(title="kubetrade local exchange", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.exchange = state or ExchangeState()

    @app.middleware("http")
    async def weight_and_faults(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        st: ExchangeState = request.app.state.exchange
        query = f"?{request.url.query}" if request.url.query else ""
        st.requests.append((request.method, request.url.path + query))
        fault = st.faults.take(request.url.path, rewriting=False)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                if isinstance(fault.body, str):  # e.g. a gateway's HTML/plain error page
                    return Response(
                        fault.body, status_code=fault.status, media_type="text/plain", headers=fault.headers
                    )
                body = fault.body if fault.body is not None else {"code": -1000, "msg": "An unknown error occurred."}
                return JSONResponse(body, status_code=fault.status, headers=fault.headers)
        response = await call_next(request)
        used = getattr(request.state, "used_weight", st.limits.used)
        response.headers["X-MBX-USED-WEIGHT"] = str(used)
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
        return response

    @app.exception_handler(RateLimited)
    async def rate_limited(request: Request, exc: RateLimited) -> JSONResponse:
        if exc.status == 418:
            msg = f"Way too many requests; IP banned until {int((time.time() + exc.retry_after) * 1000)}."
        else:
            msg = "Too many requests; current limit of IP is exceeded. Please use WebSocket Streams."
        return JSONResponse(
            {"code": -1003, "msg": msg},
            status_code=exc.status,
            headers={"Retry-After": str(exc.retry_after), "X-MBX-USED-WEIGHT-1M": str(exc.used)},
        )

    @app.exception_handler(BinanceError)
    async def binance_error(request: Request, exc: BinanceError) -> JSONResponse:
        return JSONResponse({"code": exc.code, "msg": exc.msg}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"][1:])
        return JSONResponse(
            {"code": -1100, "msg": f"Illegal characters found in parameter '{where}'."}, status_code=400
        )

    for name in routers:
        app.include_router(importlib.import_module(name).router)
    return app


class LocalExchange:
    """Serve :func:`create_app` with uvicorn on a free loopback port, in a background thread.

    >>> with LocalExchange() as ex:          # doctest: +SKIP
    ...     client = ccxt.binance(); kubetrade.ccxtclient.point_ccxt(client, ex.url)
    """

    def __init__(self, state: ExchangeState | None = None, routers: tuple[str, ...] = ROUTER_MODULES) -> None:
        self.state = state or ExchangeState()
        self.app = create_app(self.state, routers)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> LocalExchange:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="local-exchange", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"local exchange did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._server = self._thread = None

    def __enter__(self) -> LocalExchange:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(state: ExchangeState | None = None) -> Iterator[LocalExchange]:
    ex = LocalExchange(state)
    ex.start()
    try:
        yield ex
    finally:
        ex.stop()
