"""Collectors through the API: create, read, page, replace, start/stop and delete the Collector
resources of a real kube-apiserver, or of the local database, through the same routes."""

from __future__ import annotations

import copy

import httpx

from kubetrade.api import create_app
from tests.api.conftest import make_key, settings_for
from tests.support.server import serving

COLLECTOR = {
    "apiVersion": "kubetrade.io/v1alpha1",
    "kind": "Collector",
    "metadata": {"name": "replay-btc", "labels": {"team": "data"}},
    "spec": {"source": "replay", "provider": "bundled", "exchange": "binance", "symbols": ["BTC/USDT"],
             "timeframes": ["5m"], "replay": {"path": "bundled", "speed": 600}},
}


def _crud(client: httpx.Client, ns: str, read_only: str) -> dict:
    """The same conversation with either store; returns the last object read."""
    params = {"namespace": ns}
    made = client.post("/api/v1/collectors", json=COLLECTOR, params=params)
    assert made.status_code == 201, made.text
    obj = made.json()
    assert obj["metadata"]["name"] == "replay-btc" and obj["metadata"]["uid"]
    assert obj["spec"]["replay"]["speed"] == 600 and obj["spec"]["intervalSeconds"] == 60  # defaults filled
    assert made.headers["location"].startswith("/api/v1/collectors/replay-btc")
    assert client.post("/api/v1/collectors", json=COLLECTOR, params=params).status_code == 409

    changed = copy.deepcopy(COLLECTOR)
    changed["spec"]["symbols"] = ["BTC/USDT", "ETH/USDT"]
    changed["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
    put = client.put("/api/v1/collectors/replay-btc", json=changed, params=params)
    assert put.status_code == 200, put.text
    assert put.json()["spec"]["symbols"] == ["BTC/USDT", "ETH/USDT"]
    assert put.json()["metadata"]["generation"] == obj["metadata"]["generation"] + 1
    assert client.put("/api/v1/collectors/replay-btc", json=changed, params=params).status_code == 409  # stale

    second = copy.deepcopy(COLLECTOR)
    second["metadata"] = {"name": "glassnode"}
    second["spec"] = {"source": "onchain", "provider": "glassnode", "topics": ["mvrv"]}
    assert client.post("/api/v1/collectors", json=second, params=params).status_code == 201
    page = client.get("/api/v1/collectors", params={**params, "limit": 1}).json()
    assert [c["metadata"]["name"] for c in page["items"]] == ["glassnode"] and page["next"] == "glassnode"
    rest = client.get("/api/v1/collectors", params={**params, "after": page["next"]}).json()
    assert [c["metadata"]["name"] for c in rest["items"]] == ["replay-btc"] and rest["next"] is None

    stopped = client.post("/api/v1/collectors/replay-btc/stop", params=params)
    assert stopped.status_code == 200 and stopped.json()["suspend"] is True
    assert client.get("/api/v1/collectors/replay-btc", params=params).json()["spec"]["suspend"] is True

    # Bad input: a clear 4xx naming the problem, and nothing stored.
    for spec, words in (({"source": "replay", "provider": "bundled", "symbols": ["BTC/USDT"]}, "replay settings"),
                        ({"source": "onchain", "provider": "twitter"}, "provider 'twitter'"),
                        ({"source": "exchange", "provider": "binance", "symbols": ["btc"]}, "symbols"),
                        ({"source": "exchange", "provider": "binance", "symbols": ["BTC/USDT"],
                          "intervalSeconds": 0}, "intervalSeconds")):
        bad = {**COLLECTOR, "metadata": {"name": "bad"}, "spec": spec}
        refused = client.post("/api/v1/collectors", json=bad, params=params)
        assert refused.status_code == 422 and words in refused.text, (spec, refused.text)
    assert client.get("/api/v1/collectors/bad", params=params).status_code == 404
    assert client.put("/api/v1/collectors/other", json=COLLECTOR, params=params).status_code == 422
    assert client.get("/api/v1/collectors/Not_A_Name", params=params).status_code == 422

    # A read-only key reads but cannot write (the writes need admin, like start/stop).
    ro = {"X-API-Key": read_only}
    assert client.get("/api/v1/collectors", params=params, headers=ro).status_code == 200
    assert client.post("/api/v1/collectors", json=second, params=params, headers=ro).status_code == 403
    assert client.delete("/api/v1/collectors/glassnode", params=params, headers=ro).status_code == 403

    gone = client.delete("/api/v1/collectors/glassnode", params=params)
    assert gone.status_code == 202, gone.text
    assert client.get("/api/v1/collectors/glassnode", params=params).status_code == 404
    assert client.delete("/api/v1/collectors/glassnode", params=params).status_code == 404
    return client.get("/api/v1/collectors/replay-btc", params=params).json()


def test_collectors_live_in_the_database_without_kubernetes(api) -> None:
    read_only = make_key(api.dsn, ["read"], "ro")[1]
    with httpx.Client(base_url=api.url, headers=api.headers(), timeout=60) as client:
        obj = _crud(client, "local", read_only)
    assert obj["spec"]["suspend"] is True and obj["metadata"]["labels"] == {"team": "data"}


def test_collectors_are_custom_resources_on_kubernetes(pg_dsn, nats_url, kube, namespace, monkeypatch) -> None:
    from kubetrade import cluster

    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    cluster.api_client.cache_clear()
    try:
        admin = make_key(pg_dsn, ["read", "trade", "admin"])[1]
        read_only = make_key(pg_dsn, ["read"], "ro")[1]
        with serving(create_app(settings_for(pg_dsn, nats_url, namespace=namespace))) as url, \
                httpx.Client(base_url=url, headers={"X-API-Key": admin}, timeout=60) as client:
            _crud(client, namespace, read_only)
            stored = kube.get_json("collector", "replay-btc", "-n", namespace)  # the cluster is the source of truth
            assert stored["spec"]["symbols"] == ["BTC/USDT", "ETH/USDT"] and stored["spec"]["suspend"] is True
            kube.kubectl("patch", "collector", "replay-btc", "-n", namespace, "--type=merge",
                         "-p", '{"spec": {"backfillDays": 3}}')
            assert client.get("/api/v1/collectors/replay-btc").json()["spec"]["backfillDays"] == 3
        assert kube.kubectl("get", "collector", "glassnode", "-n", namespace, check=False).returncode != 0
    finally:
        cluster.api_client.cache_clear()
