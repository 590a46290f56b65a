"""The API as the chart's ServiceAccount, with the chart's rendered RBAC, against the real kube-apiserver.

Every operation of the OpenAPI document is called (a new route fails the test until it is
added here), with the cluster as the resource store: nothing may be denied by Kubernetes and
nothing may fail with a 5xx.  Then the namespaced mode (operator.watchNamespaces): a namespace
the API has no Role in answers a clear 403 that names the refusal, not a 500.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from kubetrade.api import create_app
from kubetrade.candles import load_csv
from kubetrade.storage.candles import SeriesKey, ingest
from tests.api.conftest import make_key, settings_for
from tests.support.bad_manifests import example
from tests.support.rbac import as_service_account, can_i, chart_rbac
from tests.support.server import serving

pytestmark = pytest.mark.kube

SAMPLE = Path(__file__).resolve().parents[2] / "workloads" / "kubetrade" / "data" / "sample" / "BTC_USDT-5m.csv.gz"
COLLECTOR = {
    "apiVersion": "kubetrade.io/v1alpha1",
    "kind": "Collector",
    "metadata": {"name": "rbac-replay"},
    "spec": {"source": "replay", "provider": "bundled", "exchange": "binance", "symbols": ["BTC/USDT"],
             "timeframes": ["5m"], "replay": {"path": "bundled", "speed": 60}},
}
STRATEGY = {
    "apiVersion": "kubetrade.io/v1alpha1",
    "kind": "Strategy",
    "metadata": {"name": "rbac-ema"},
    "spec": {"template": "ema-crossover", "parameters": {"fast": 12, "slow": 26}, "symbols": ["BTC/USDT"],
             "capital": {"amount": 1000}, "riskPolicyRef": {"name": "default"}},
}


@pytest.fixture
def cluster_env(kube, monkeypatch):
    """The API's resource store is the cluster (as in a pod), reached with the kubeconfig set later."""
    from kubetrade import cluster

    yield lambda path: (monkeypatch.setenv("KUBECONFIG", str(path)), cluster.api_client.cache_clear())
    cluster.api_client.cache_clear()


def _candles(dsn: str) -> None:
    candles = load_csv(SAMPLE, symbol="BTC/USDT", timeframe="5m")

    async def load() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await ingest(conn, SeriesKey("binance", "BTC/USDT", "5m"), candles)

    asyncio.run(load())


def _calls(ns: str) -> list[tuple[str, str, dict, set[int]]]:
    """(method, path template, request, statuses that are right) for every operation, in order."""
    changed = copy.deepcopy(STRATEGY)
    changed["spec"]["parameters"] = {"fast": 10, "slow": 30}
    signal = {"strategy": "rbac-ema", "namespace": ns, "clientOrderId": "rbac-1", "exchange": "binance",
              "symbol": "BTC/USDT", "side": "buy", "quantity": 0.001, "price": 50000, "time": 1700000000000}
    order = {"strategy": "rbac-ema", "namespace": ns, "symbol": "BTC/USDT", "side": "buy", "quantity": 0.001,
             "price": 50000, "clientOrderId": "rbac-order-1"}
    collector = copy.deepcopy(COLLECTOR)
    slower = copy.deepcopy(COLLECTOR)
    slower["spec"]["replay"]["speed"] = 30
    alert = {"name": "rbac", "metric": "price", "target": "binance:BTC/USDT", "operator": ">", "threshold": 1}
    q = {"namespace": ns}
    return [
        ("GET", "/health", {}, {200}),
        ("GET", "/health/collectors", {}, {200}),
        ("POST", "/api/v1/strategies", {"json": STRATEGY, "params": q}, {201}),
        ("GET", "/api/v1/strategies", {"params": q}, {200}),
        ("GET", "/api/v1/strategies/{name}", {"name": "rbac-ema", "params": q}, {200}),
        ("PUT", "/api/v1/strategies/{name}", {"name": "rbac-ema", "json": changed, "params": q}, {200}),
        ("POST", "/api/v1/strategies/{name}/backtest", {"name": "rbac-ema", "params": q, "json": {"days": 30}},
         {202}),
        ("GET", "/api/v1/backtests", {}, {200}),
        ("GET", "/api/v1/backtests/{backtest_id}", {"backtest_id": "from-backtest"}, {200}),
        ("GET", "/api/v1/goals/summary", {"params": q}, {200}),
        ("POST", "/api/v1/position-sizing/calculate",
         {"params": q, "json": {"goal": "monthly-8pct", "equity": 10000, "price": 50000}}, {200}),
        ("POST", "/api/v1/collectors", {"json": collector, "params": q}, {201}),
        ("GET", "/api/v1/collectors", {"params": q}, {200}),
        ("GET", "/api/v1/collectors/{name}", {"name": "rbac-replay", "params": q}, {200}),
        ("PUT", "/api/v1/collectors/{name}", {"name": "rbac-replay", "json": slower, "params": q}, {200}),
        ("DELETE", "/api/v1/collectors/{name}", {"name": "rbac-replay", "params": q}, {202}),
        ("POST", "/api/v1/collectors/{name}/stop", {"name": "replay-binance", "params": q}, {200}),
        ("POST", "/api/v1/collectors/{name}/start", {"name": "replay-binance", "params": q}, {200}),
        ("POST", "/api/v1/risk/check", {"json": signal}, {200}),
        ("GET", "/api/v1/risk/metrics", {}, {200}),
        ("GET", "/api/v1/risk/limits", {}, {200}),
        ("PUT", "/api/v1/risk/limits", {"json": {"namespace": ns, "name": "default", "spec": {}}}, {409}),
        ("POST", "/api/v1/risk/breaker/reset", {"json": {}}, {200}),
        ("POST", "/api/v1/orders", {"json": order}, {202}),
        ("GET", "/api/v1/orders", {}, {200}),
        ("GET", "/api/v1/orders/{order_id}", {"order_id": "rbac-order-1"}, {200, 404}),
        ("DELETE", "/api/v1/orders/{order_id}", {"order_id": "rbac-order-1"}, {202, 404, 409}),
        ("GET", "/api/v1/positions", {}, {200}),
        ("GET", "/api/v1/trades", {}, {200}),
        ("POST", "/api/v1/admin/api-keys", {"json": {"name": "rbac", "scopes": ["read"]}}, {201}),
        ("GET", "/api/v1/admin/api-keys", {}, {200}),
        ("GET", "/api/v1/admin/api-keys/{key_id}", {"key_id": "from-key"}, {200}),
        ("DELETE", "/api/v1/admin/api-keys/{key_id}", {"key_id": "from-key"}, {200, 204}),
        ("POST", "/api/v1/alerts", {"json": alert}, {201}),
        ("GET", "/api/v1/alerts", {}, {200}),
        ("GET", "/api/v1/alerts/history", {}, {200}),
        ("GET", "/api/v1/alerts/{alert_id}", {"alert_id": "from-alert"}, {200}),
        ("PUT", "/api/v1/alerts/{alert_id}", {"alert_id": "from-alert", "json": {**alert, "threshold": 2}}, {200}),
        ("DELETE", "/api/v1/alerts/{alert_id}", {"alert_id": "from-alert"}, {200, 204}),
        ("GET", "/api/v1/alerts/channels", {}, {200}),
        ("GET", "/api/v1/alerts/deliveries", {}, {200}),
        ("POST", "/api/v1/alerts/deliveries/{delivery_id}/retry", {"delivery_id": "999999"}, {404}),
        # Alertmanager's webhooks take its bearer token, not an API key: refused, and never by the cluster
        ("POST", "/api/v1/alerts/receiver/record", {"json": {}}, {401}),
        ("POST", "/api/v1/alerts/receiver/copy/{channel}", {"channel": "slack", "json": {}}, {401}),
        ("POST", "/api/v1/alerts/receiver/sms", {"json": {}}, {401}),
        ("GET", "/api/v1/historical/{symbol}", {"symbol": "BTC-USDT", "params": {"timeframe": "5m"}}, {200}),
        ("GET", "/api/v1/market-data", {"params": {"symbols": "BTC/USDT", "timeframe": "5m"}}, {200}),
        ("POST", "/api/v1/indicators", {"json": {"symbol": "BTC/USDT", "timeframe": "5m",
                                                 "indicators": [{"name": "ema", "params": {"period": 20}}]}}, {200}),
        ("GET", "/api/v1/indicators", {"params": {"symbol": "BTC-USDT", "timeframe": "5m"}}, {200}),
        ("GET", "/api/v1/indicators/{symbol}", {"symbol": "BTC-USDT", "params": {"timeframe": "5m"}}, {200}),
        ("GET", "/api/v1/bulk", {"params": {"symbol": "BTC/USDT", "timeframe": "5m", "format": "csv"}}, {200}),
        ("DELETE", "/api/v1/strategies/{name}", {"name": "rbac-ema", "params": q}, {202}),
    ]


def _exercise(client: httpx.Client, calls) -> dict[str, tuple[int, str]]:
    """Call each operation; ids created by earlier calls fill in the later paths."""
    made: dict[str, str] = {}
    answers: dict[str, tuple[int, str]] = {}
    for method, template, request, _ in calls:
        request = dict(request)
        path = template
        for key in ("name", "order_id", "symbol", "delivery_id", "channel"):
            if key in request:
                path = path.replace(f"{{{key}}}", request.pop(key))
        for key, source in (("backtest_id", "backtest"), ("key_id", "key"), ("alert_id", "alert")):
            if key in request:
                request.pop(key)
                path = path.replace(f"{{{key}}}", made.get(source, "00000000-0000-0000-0000-000000000000"))
        got = client.request(method, path, **request)
        answers[f"{method} {template}"] = (got.status_code, got.text[:500])
        if template.endswith("/backtest") and got.status_code == 202:
            made["backtest"], made["job"] = got.json()["id"], got.json()["job"]
        if template == "/api/v1/admin/api-keys" and method == "POST" and got.status_code == 201:
            made["key"] = got.json()["id"]
        if template == "/api/v1/alerts" and method == "POST" and got.status_code == 201:
            made["alert"] = str(got.json()["id"])
    answers["job"] = (0, made.get("job") or "")
    return answers


def _bind(kube, helm, tmp_path: Path, watch: list[str]) -> Path:
    """The chart's RBAC for a release of its own, and a kubeconfig of its API ServiceAccount."""
    release = f"api{uuid.uuid4().hex[:6]}"
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(chart_rbac(helm, release, "default", watch)))
    return as_service_account(kube, f"{release}-api", "default", tmp_path / "api.kubeconfig")


def test_every_route_works_under_the_chart_s_rbac(pg_dsn, nats_url, kube, namespace, helm, cluster_env,
                                                   risk_manager, tmp_path) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(
        [example("riskpolicy.yaml"), example("goal.yaml"), example("collector-replay.yaml")]))
    _candles(pg_dsn)
    restricted = _bind(kube, helm, tmp_path, [])
    for verb, what in (("get", "secrets"), ("create", "deployments"), ("delete", "jobs"), ("patch", "goals"),
                       ("create", "rolebindings"), ("patch", "strategies/status")):
        assert not can_i(kube, restricted, verb, what, "-n", namespace), f"the API may {verb} {what}"
    cluster_env(restricted)

    settings = settings_for(pg_dsn, nats_url, namespace=namespace, image="kubetrade:test")
    admin = make_key(pg_dsn, ["read", "trade", "admin"])[1]
    calls = _calls(namespace)
    with serving(create_app(settings)) as url, httpx.Client(base_url=url, headers={"X-API-Key": admin},
                                                            timeout=60) as client:
        documented = {f"{m.upper()} {p}" for p, ops in client.get("/openapi.json").json()["paths"].items()
                      for m in ops}
        assert documented == {f"{m} {t}" for m, t, _, _ in calls}, "every operation is exercised here"
        answers = _exercise(client, calls)
    wrong = {op: answer for (m, t, _, ok) in calls if (answer := answers[op := f"{m} {t}"])[0] not in ok}
    assert not wrong, wrong
    # The cluster saw what the routes did: the Job was created (the API server named it; it goes
    # with its Strategy, whose deletion the garbage collector follows), the Strategy is deleted.
    assert answers["job"][1].startswith("backtest-"), answers["job"]
    assert kube.kubectl("get", "strategy", "rbac-ema", "-n", namespace, check=False).returncode != 0


def test_a_namespace_the_api_may_not_touch_is_a_clear_403(pg_dsn, nats_url, kube, namespace, helm, cluster_env,
                                                           tmp_path) -> None:
    """operator.watchNamespaces: the API gets a Role in each watched namespace and nothing elsewhere."""
    other = f"other-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", other)
    try:
        restricted = _bind(kube, helm, tmp_path, [namespace])
        assert can_i(kube, restricted, "create", "strategies", "-n", namespace)
        assert not can_i(kube, restricted, "create", "strategies", "-n", other)
        cluster_env(restricted)
        admin = make_key(pg_dsn, ["read", "trade", "admin"])[1]
        with serving(create_app(settings_for(pg_dsn, nats_url, namespace=namespace))) as url, httpx.Client(
            base_url=url, headers={"X-API-Key": admin}, timeout=60
        ) as client:
            assert client.post("/api/v1/strategies", json=STRATEGY).status_code == 201  # its own namespace
            for method, path, body in (
                ("POST", "/api/v1/strategies", STRATEGY),
                ("GET", "/api/v1/strategies", None),
                ("GET", "/api/v1/strategies/rbac-ema", None),
                ("DELETE", "/api/v1/strategies/rbac-ema", None),
                ("GET", "/api/v1/goals/summary", None),
                ("POST", "/api/v1/collectors/replay-binance/stop", None),
            ):
                got = client.request(method, path, params={"namespace": other}, json=body)
                assert got.status_code == 403, (method, path, got.status_code, got.text)
                detail = got.json()["detail"]
                assert "the cluster does not allow the API" in detail and other in detail, detail
    finally:
        kube.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_the_console_s_pages_and_actions_work_under_the_chart_s_rbac(
    pg_dsn, nats_url, kube, namespace, helm, cluster_env, tmp_path
) -> None:
    """The console's pages and forms write through the same routes, so the API's role must cover them
    too: every page renders and every action that changes the cluster is done, as the chart's
    ServiceAccount (no refusal shown, no 5xx)."""
    from tests.api.test_console_http import _csrf, _login

    kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(
        [example("riskpolicy.yaml"), example("goal.yaml"), example("collector-replay.yaml")]))
    _candles(pg_dsn)
    cluster_env(_bind(kube, helm, tmp_path, []))
    admin = make_key(pg_dsn, ["read", "trade", "admin"])[1]
    settings = settings_for(pg_dsn, nats_url, namespace=namespace, image="kubetrade:test")
    with serving(create_app(settings)) as url:
        with httpx.Client(base_url=url, headers={"X-API-Key": admin}, timeout=60) as api:
            assert api.post("/api/v1/strategies", json=STRATEGY).status_code == 201
        client = _login(url, admin)
        pages = ("/console/", "/console/strategies", "/console/strategies/rbac-ema", "/console/goals",
                 "/console/alerts", "/console/datasources")
        for path in pages:
            got = client.get(path)
            assert got.status_code == 200 and "does not allow" not in got.text, (path, got.status_code, got.text[:300])
        csrf = _csrf(client.get("/console/strategies/rbac-ema").text)

        def post(path: str, **form: str) -> httpx.Response:
            got = client.post(path, data={"csrf": csrf, **form})
            assert got.status_code == 303, (path, got.status_code, got.text[:500])
            return got

        post("/console/strategies/rbac-ema/pause")
        assert kube.get_json("strategy", "rbac-ema", "-n", namespace)["spec"]["paused"] is True
        post("/console/strategies/rbac-ema/resume")
        assert kube.get_json("strategy", "rbac-ema", "-n", namespace)["spec"]["paused"] is False
        post("/console/strategies/rbac-ema/backtest", days="30")
        jobs = kube.get_json("jobs", "-n", namespace)["items"]
        assert any(j["metadata"]["name"].startswith("backtest-") for j in jobs), [j["metadata"]["name"] for j in jobs]
        post("/console/strategies/rbac-ema/retire")
        assert kube.get_json("strategy", "rbac-ema", "-n", namespace)["spec"]["retired"] is True
        form = {"name": "rbac-console", "source": "replay", "provider": "bundled", "exchange": "binance",
                "symbols": "BTC/USDT", "timeframes": "5m", "replaySpeed": "120"}
        post("/console/datasources", **form)
        assert kube.get_json("collector", "rbac-console", "-n", namespace)["spec"]["replay"]["speed"] == 120
        post("/console/datasources/rbac-console/edit", **{**form, "replaySpeed": "30"})
        assert kube.get_json("collector", "rbac-console", "-n", namespace)["spec"]["replay"]["speed"] == 30
        post("/console/datasources/rbac-console/stop")
        assert kube.get_json("collector", "rbac-console", "-n", namespace)["spec"]["suspend"] is True
        post("/console/datasources/rbac-console/start")
        assert kube.get_json("collector", "rbac-console", "-n", namespace)["spec"]["suspend"] is False
        post("/console/datasources/rbac-console/delete")
        assert kube.kubectl("get", "collector", "rbac-console", "-n", namespace, check=False).returncode != 0
