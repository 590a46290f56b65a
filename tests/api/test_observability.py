"""Request ids that are trace ids, structured access logs, CORS from settings, the OpenAPI document."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import httpx
from opentelemetry import trace

from kubetrade.api import create_app
from kubetrade.observability.logging import JsonFormatter
from tests.api.conftest import settings_for
from tests.support.server import serving


def _access(caplog, path_template: str) -> list[dict]:
    formatter = JsonFormatter("api")
    return [json.loads(formatter.format(r)) for r in caplog.records
            if r.name == "kubetrade.api.access" and getattr(r, "route", None) == path_template]


def test_request_ids_are_trace_ids(api, caplog) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with caplog.at_level(logging.INFO, logger="kubetrade.api.access"):
        fresh = httpx.get(f"{api.url}/api/v1/alerts", headers=api.headers())
        chosen = httpx.get(f"{api.url}/api/v1/alerts", headers={**api.headers(), "X-Request-ID": trace_id})
        parent = httpx.get(f"{api.url}/api/v1/alerts", headers={
            **api.headers(), "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
        named = httpx.get(f"{api.url}/api/v1/alerts", headers={**api.headers(), "X-Request-ID": "job-42-retry-1"})
        deadline = time.monotonic() + 10  # the access line is written just after the response is sent
        while len(_access(caplog, "/api/v1/alerts")) < 4:
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            time.sleep(0.05)
    lines = {line["request_id"]: line for line in _access(caplog, "/api/v1/alerts")}
    rid = fresh.headers["x-request-id"]
    assert len(rid) == 32 and int(rid, 16) and lines[rid]["trace_id"] == rid  # a new trace, named by the request
    assert chosen.headers["x-request-id"] == trace_id and lines[trace_id]["trace_id"] == trace_id
    continued = parent.headers["x-request-id"]
    assert continued == "0af7651916cd43dd8448eb211c80319c" == lines[continued]["trace_id"]
    assert named.headers["x-request-id"] == "job-42-retry-1"  # echoed; the trace is new and logged beside it
    other = lines["job-42-retry-1"]
    assert len(other["trace_id"]) == 32 and other["trace_id"] != trace_id
    line = lines[trace_id]
    assert line["status"] == 200 and line["method"] == "GET" and line["service"] == "api"
    assert line["key_id"] == api.admin.split("_")[1] and api.admin not in json.dumps(line)
    assert isinstance(line["duration_ms"], float)


def test_server_spans_are_exported_under_the_request_id(api) -> None:
    """With tracing on (the chart sets the OTLP endpoint), the request's span carries the request id."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from kubetrade.observability import tracecontext

    exported = InMemorySpanExporter()
    assert tracecontext.configure("api-test", exporter=exported)
    answer = httpx.get(f"{api.url}/api/v1/strategies/nope", headers=api.headers())
    assert answer.status_code == 404
    rid = answer.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while not (spans := [s for s in exported.get_finished_spans()
                         if format(s.context.trace_id, "032x") == rid]):
        assert time.monotonic() < deadline, "no span exported for the request"
        time.sleep(0.05)
    span = spans[0]
    assert span.name == "GET /api/v1/strategies/{name}" and span.kind == trace.SpanKind.SERVER
    assert span.attributes["http.response.status_code"] == 404


def test_cors_follows_settings(pg_dsn, local_env) -> None:
    app = create_app(settings_for(pg_dsn, None, cors_origins=["https://grafana.example"]))
    with serving(app) as url:
        pre = httpx.options(f"{url}/api/v1/strategies", headers={
            "Origin": "https://grafana.example", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "X-API-Key"})
        foreign = httpx.options(f"{url}/api/v1/strategies", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        refused = httpx.get(f"{url}/api/v1/strategies", headers={"Origin": "https://grafana.example"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://grafana.example"
    assert "x-api-key" in pre.headers["access-control-allow-headers"].lower()
    assert foreign.status_code == 400 and "access-control-allow-origin" not in foreign.headers
    # A refusal still carries CORS headers, so a browser client can read why.
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "https://grafana.example"
    assert "retry-after" in refused.headers["access-control-expose-headers"].lower()


def test_openapi_documents_security_scopes_and_errors(api) -> None:
    doc = httpx.get(f"{api.url}/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key",
                                       "description": "An API key: kt_<id>_<secret>."}
    create = doc["paths"]["/api/v1/strategies"]["post"]
    assert create["x-required-scopes"] == ["trade"]
    assert {"401", "403", "429", "422", "409", "201"} <= set(create["responses"])
    assert doc["paths"]["/api/v1/admin/api-keys"]["post"]["x-required-scopes"] == ["admin"]
    assert "security" not in doc["paths"]["/health"]["get"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path.startswith("/api/v1/alerts/receiver/"):  # Alertmanager's webhooks: its bearer token
                assert op.get("security") == [{"HTTPBearer": []}] and not op.get("x-required-scopes"), (method, path)
            elif path.startswith("/api/"):
                assert op.get("security") and op.get("x-required-scopes"), (method, path)


SEED_FILE = Path(__file__).with_name("seed-endpoints.md")
"""A verbatim copy of every endpoint table of the seed (its source is named inside)."""
_ENDPOINT = re.compile(r"^(GET|POST|PUT|PATCH|DELETE)\s+(/\S*)")

DEVIATIONS = {
    "POST /api/v1/collectors/start": ("POST /api/v1/collectors/{name}/start",
                                      "the platform runs many Collectors; the one to start is named in the path"),
    "POST /api/v1/collectors/stop": ("POST /api/v1/collectors/{name}/stop", "as for start"),
}
"""Seed endpoints this platform serves under another path, with the reason; every other one is served as written."""


def seed_endpoints() -> list[tuple[str, str]]:
    """(method, path) of every endpoint line in the seed's tables, in the seed's order, without repeats."""
    found = [(m[1], m[2]) for line in SEED_FILE.read_text().splitlines() if (m := _ENDPOINT.match(line.strip()))]
    return list(dict.fromkeys(found))


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def test_the_seed_copy_is_the_seed_list() -> None:
    """The parsed list is the seed's: 35 endpoint lines in 7 services' tables (34 distinct), as the document has."""
    text = SEED_FILE.read_text()
    lines = [line for line in text.splitlines() if _ENDPOINT.match(line.strip())]
    assert len(lines) == 35 and text.count("\n## ") == 7
    assert len(seed_endpoints()) == 34
    assert ("GET", "/api/v1/indicators/{symbol}") in seed_endpoints()


def test_every_seed_endpoint_is_served(api, local_env) -> None:
    """Each endpoint of the seed's own tables, asked for over HTTP without a key, is routed: a public one
    answers, a protected one refuses the missing key (401) - none is unknown (404) or wrong-method (405)."""
    unrouted = []
    for method, path in seed_endpoints():
        key = f"{method} {path}"
        if key in DEVIATIONS:
            method, path = DEVIATIONS[key][0].split(" ", 1)
        r = httpx.request(method, f"{api.url}{_concrete(path)}", timeout=30)
        if r.status_code in (404, 405):
            unrouted.append(f"{key} -> {r.status_code}")
        elif path in ("/health", "/metrics"):
            assert r.status_code == 200, (key, r.status_code)
        else:
            assert r.status_code == 401, (key, r.status_code, r.text[:200])
    assert not unrouted, unrouted
    doc = create_app(settings_for("postgresql://unused", None)).openapi()
    # Lists that can grow are paged.
    for listing in ("/api/v1/strategies", "/api/v1/backtests", "/api/v1/alerts", "/api/v1/alerts/history",
                    "/api/v1/orders", "/api/v1/trades", "/api/v1/admin/api-keys"):
        names = {p["name"] for p in doc["paths"][listing]["get"].get("parameters", [])}
        assert "limit" in names, listing
