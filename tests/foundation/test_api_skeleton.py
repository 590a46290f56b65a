"""The API skeleton: /health against the real dependencies, /metrics, JSON logs."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from kubetrade.api import create_app
from kubetrade.api.settings import Settings
from kubetrade.localstack.servers import NatsServer
from kubetrade.observability.logging import JsonFormatter
from tests.support.server import serving


@pytest.fixture
def kube_env(kube, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    from kubetrade import cluster

    cluster.api_client.cache_clear()
    yield
    cluster.api_client.cache_clear()


def test_health_reports_every_dependency_connected(pg_dsn, nats_url, kube_env) -> None:
    app = create_app(Settings(database_url=pg_dsn, nats_url=nats_url))
    with serving(app) as url:
        resp = httpx.get(f"{url}/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "healthy"
    assert body["service"] == "api"
    assert body["version"]
    assert body["uptime_seconds"] >= 0
    assert body["dependencies"] == {"postgres": "connected", "nats": "connected", "kubernetes": "connected"}


def test_health_is_unhealthy_while_a_dependency_is_down(pg_dsn, monkeypatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    nats = NatsServer()
    nats.start()
    try:
        app = create_app(Settings(database_url=pg_dsn, nats_url=nats.url))
        with serving(app) as url:
            ok = httpx.get(f"{url}/health").json()
            assert ok["dependencies"] == {
                "postgres": "connected", "nats": "connected", "kubernetes": "not configured"
            }
            nats.stop()
            down = httpx.get(f"{url}/health", timeout=15)
            assert down.status_code == 503
            assert down.json()["status"] == "unhealthy"
            assert down.json()["dependencies"]["nats"] != "connected"
            nats.restart()
            import time

            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                again = httpx.get(f"{url}/health", timeout=15)
                if again.status_code == 200:
                    break
                time.sleep(0.3)
            assert again.status_code == 200, again.json()
    finally:
        nats.cleanup()


def test_unreachable_database_is_reported_not_fatal(monkeypatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    from kubetrade.localstack.servers import free_port

    app = create_app(Settings(database_url=f"postgresql://nobody:x@127.0.0.1:{free_port()}/none"))
    with serving(app) as url:
        resp = httpx.get(f"{url}/health", timeout=15)
    assert resp.status_code == 503
    assert resp.json()["dependencies"]["postgres"].startswith("error")


def test_metrics_use_route_templates_and_request_ids(monkeypatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    app = create_app(Settings())
    with serving(app) as url:
        first = httpx.get(f"{url}/health", headers={"X-Request-ID": "req-12345678"})
        assert first.headers["x-request-id"] == "req-12345678"
        generated = httpx.get(f"{url}/no/such/path/123")
        assert generated.status_code == 404 and len(generated.headers["x-request-id"]) == 32
        metrics = httpx.get(f"{url}/metrics").text
    assert 'kubetrade_http_requests_total{method="GET",route="/health",status="200"}' in metrics
    assert 'route="unmatched"' in metrics
    assert "/no/such/path" not in metrics


def test_openapi_document_is_served(monkeypatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with serving(create_app(Settings())) as url:
        doc = httpx.get(f"{url}/openapi.json").json()
    assert doc["info"]["title"] == "kubetrade"
    assert "/health" in doc["paths"]


def test_json_log_lines_carry_context() -> None:
    formatter = JsonFormatter("api")
    record = logging.LogRecord("kubetrade.x", logging.WARNING, __file__, 1, "order %s", ("o-1",), None)
    record.strategy = "btc-ema"
    line = json.loads(formatter.format(record))
    assert line["message"] == "order o-1"
    assert line["level"] == "warning"
    assert line["service"] == "api"
    assert line["strategy"] == "btc-ema"
    assert line["time"].endswith("Z")
