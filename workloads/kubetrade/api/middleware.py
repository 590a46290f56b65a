"""Request ids (= trace ids), server spans, access logs and HTTP metrics for every request.

Metric labels use the route *template* (``/api/v1/strategies/{id}``), never the raw
path, so a client cannot create unbounded label values; nor does a key ever become a
label or a log field (the access log names the key by its public id).
"""

from __future__ import annotations

import logging
import re
import time

from opentelemetry import trace
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kubetrade.api.tracing import hex_id, parent_context, server_span
from kubetrade.observability.logging import request_id

log = logging.getLogger("kubetrade.api.access")

HTTP_REQUESTS = Counter(
    "kubetrade_http_requests_total", "HTTP requests served.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "kubetrade_http_request_duration_seconds",
    "Time to serve an HTTP request.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")


class RequestContextMiddleware:
    """Pure ASGI middleware (no per-request task switching, unlike BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tracer = trace.get_tracer("kubetrade.api")  # the global provider (observability.tracecontext)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        traceparent = headers.get(b"traceparent", b"").decode("latin-1") or None
        span = server_span(self.tracer, f"{scope['method']} {scope['path']}", parent_context(traceparent, incoming))
        trace_id = hex_id(span.get_span_context().trace_id)
        rid = incoming if _VALID_ID.match(incoming) else trace_id
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            with trace.use_span(span, end_on_exit=False):
                await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            principal = (scope.get("state") or {}).get("principal")
            span.update_name(f"{scope['method']} {template}")
            span.set_attributes({"http.request.method": scope["method"], "http.route": template,
                                 "http.response.status_code": status})
            if status >= 500:
                span.set_status(trace.StatusCode.ERROR)
            span.end()
            HTTP_REQUESTS.labels(scope["method"], template, str(status)).inc()
            HTTP_DURATION.labels(scope["method"], template).observe(elapsed)
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "client": (scope.get("client") or ("", 0))[0],
                    "request_id": rid,  # also here, not only from the context: handlers may format later
                    "trace_id": trace_id,
                    "key_id": getattr(principal, "key_id", None),
                },
            )
            request_id.reset(token)
