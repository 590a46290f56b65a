"""Strategies through the API: the Strategy resources of a real kube-apiserver, or of the
local database, through the same routes; backtests as Jobs on the cluster, in-process locally."""

from __future__ import annotations

import asyncio
import copy
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from kubetrade.api import create_app
from kubetrade.candles import load_csv
from kubetrade.storage.candles import SeriesKey, ingest
from tests.api.conftest import make_key, settings_for
from tests.support.server import serving

SAMPLE = Path(__file__).resolve().parents[2] / "workloads" / "kubetrade" / "data" / "sample" / "BTC_USDT-5m.csv.gz"

STRATEGY = {
    "apiVersion": "kubetrade.io/v1alpha1",
    "kind": "Strategy",
    "metadata": {"name": "btc-ema", "labels": {"team": "quant"}},
    "spec": {
        "template": "ema-crossover",
        "parameters": {"fast": 12, "slow": 26},
        "symbols": ["BTC/USDT"],
        "timeframe": "5m",
        "capital": {"amount": 1000, "currency": "USDT"},
        "riskPolicyRef": {"name": "default"},
    },
}


@pytest.fixture(scope="module")
def candles_loaded(pg_dsn) -> tuple[int, int]:
    """The bundled real BTC/USDT 5m candles in the session database; returns (first, last) ms."""
    candles = load_csv(SAMPLE, symbol="BTC/USDT", timeframe="5m")

    async def load() -> None:
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            await ingest(conn, SeriesKey("binance", "BTC/USDT", "5m"), candles)

    asyncio.run(load())
    return int(candles.time[0]), int(candles.time[-1])


@pytest.fixture
def kube_env(kube, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    from kubetrade import cluster

    cluster.api_client.cache_clear()
    yield kube
    cluster.api_client.cache_clear()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _crud(client: httpx.Client, ns: str) -> dict:
    """The same conversation with either store; returns the last object read."""
    params = {"namespace": ns}
    made = client.post("/api/v1/strategies", json=STRATEGY, params=params)
    assert made.status_code == 201, made.text
    obj = made.json()
    assert obj["metadata"]["name"] == "btc-ema" and obj["metadata"]["uid"] and obj["metadata"]["namespace"] == ns
    assert made.headers["location"].startswith("/api/v1/strategies/btc-ema")
    assert client.post("/api/v1/strategies", json=STRATEGY, params=params).status_code == 409

    changed = copy.deepcopy(STRATEGY)
    changed["spec"]["parameters"] = {"fast": 10, "slow": 30}
    changed["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
    put = client.put("/api/v1/strategies/btc-ema", json=changed, params=params)
    assert put.status_code == 200, put.text
    assert put.json()["spec"]["parameters"] == {"fast": 10, "slow": 30}
    assert put.json()["metadata"]["generation"] == obj["metadata"]["generation"] + 1
    stale = client.put("/api/v1/strategies/btc-ema", json=changed, params=params)  # old resourceVersion
    assert stale.status_code == 409, stale.text

    second = copy.deepcopy(STRATEGY)
    second["metadata"] = {"name": "eth-rsi"}
    second["spec"].update(template="rsi-reversion", parameters={}, symbols=["ETH/USDT"], mode="paper")
    assert client.post("/api/v1/strategies", json=second, params=params).status_code == 201
    page = client.get("/api/v1/strategies", params={**params, "limit": 1}).json()
    assert [s["metadata"]["name"] for s in page["items"]] == ["btc-ema"] and page["next"] == "btc-ema"
    rest = client.get("/api/v1/strategies", params={**params, "after": page["next"]}).json()
    assert [s["metadata"]["name"] for s in rest["items"]] == ["eth-rsi"] and rest["next"] is None
    by_symbol = client.get("/api/v1/strategies", params={**params, "symbol": "ETH/USDT"}).json()
    assert [s["metadata"]["name"] for s in by_symbol["items"]] == ["eth-rsi"]
    assert client.get("/api/v1/strategies", params={**params, "mode": "live"}).json()["items"] == []

    # Bad input: clear 4xx, naming the problem.
    bad_template = copy.deepcopy(STRATEGY)
    bad_template["metadata"]["name"] = "bad"
    bad_template["spec"]["template"] = "no-such-template"
    refused = client.post("/api/v1/strategies", json=bad_template, params=params)
    assert refused.status_code == 422 and "spec.template" in refused.text
    perp_on_spot = copy.deepcopy(STRATEGY)
    perp_on_spot["metadata"]["name"] = "bad"
    perp_on_spot["spec"]["symbols"] = ["BTC/USDT:USDT"]
    assert "perpetual" in client.post("/api/v1/strategies", json=perp_on_spot, params=params).text
    assert client.post("/api/v1/strategies", content=b"{not json", params=params,
                       headers={"Content-Type": "application/json"}).status_code == 422
    assert client.put("/api/v1/strategies/other", json=STRATEGY, params=params).status_code == 422
    assert client.get("/api/v1/strategies/nope", params=params).status_code == 404
    assert client.get("/api/v1/strategies/Not_A_Name", params=params).status_code == 422
    assert client.get("/api/v1/strategies", params={**params, "limit": 100000}).status_code == 422
    return client.get("/api/v1/strategies/btc-ema", params=params).json()


def test_strategies_live_in_the_database_without_kubernetes(api, candles_loaded) -> None:
    ns = "local"
    with httpx.Client(base_url=api.url, headers=api.headers(), timeout=60) as client:
        obj = _crud(client, ns)
        assert obj["spec"]["parameters"] == {"fast": 10, "slow": 30}
        first, last = candles_loaded
        asked = client.post("/api/v1/strategies/btc-ema/backtest", params={"namespace": ns},
                            json={"start": _iso(first), "end": _iso(last), "initialCash": 5000})
        assert asked.status_code == 202, asked.text
        assert asked.json()["job"] is None  # runs in the API process
        deadline = time.monotonic() + 120
        while (bt := client.get(asked.headers["location"]).json())["status"] in ("pending", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert bt["status"] == "succeeded", bt
        metrics = bt["result"]["BTC/USDT"]
        assert metrics["bars"] > 1000 and metrics["trades"] > 0
        listed = client.get("/api/v1/backtests", params={"strategy": "btc-ema", "status": "succeeded"}).json()
        assert bt["id"] in [b["id"] for b in listed["items"]]
        assert client.get("/api/v1/backtests/00000000-0000-0000-0000-000000000000").status_code == 404
        assert client.post("/api/v1/strategies/btc-ema/backtest", params={"namespace": ns},
                           json={"start": _iso(last), "end": _iso(first)}).status_code == 422
        assert client.post("/api/v1/strategies/nope/backtest", params={"namespace": ns}).status_code == 404

        assert client.delete("/api/v1/strategies/btc-ema", params={"namespace": ns}).status_code == 202
        assert client.get("/api/v1/strategies/btc-ema", params={"namespace": ns}).status_code == 404
        assert client.delete("/api/v1/strategies/btc-ema", params={"namespace": ns}).status_code == 404


@pytest.mark.kube
def test_strategies_are_custom_resources_on_kubernetes(pg_dsn, nats_url, kube_env, namespace, candles_loaded
                                                       ) -> None:
    kube = kube_env
    settings = settings_for(pg_dsn, nats_url, namespace=namespace, image="kubetrade:test",
                            job_env_secret="kubetrade-env")
    admin = make_key(pg_dsn, ["read", "trade", "admin"])[1]
    with serving(create_app(settings)) as url, httpx.Client(base_url=url, headers={"X-API-Key": admin},
                                                            timeout=60) as client:
        _crud(client, namespace)
        stored = kube.get_json("strategy", "btc-ema", "-n", namespace)  # the cluster is the source of truth
        assert stored["spec"]["parameters"] == {"fast": 10, "slow": 30}
        assert stored["metadata"]["labels"] == {"team": "quant"}
        kube.kubectl("patch", "strategy", "btc-ema", "-n", namespace, "--type=merge",
                     "-p", '{"spec": {"paused": true}}')
        assert client.get("/api/v1/strategies/btc-ema").json()["spec"]["paused"] is True  # default namespace

        first, last = candles_loaded
        asked = client.post("/api/v1/strategies/btc-ema/backtest",
                            json={"start": _iso(first), "end": _iso(last)})
        assert asked.status_code == 202, asked.text
        backtest = asked.json()
        job = kube.get_json("job", backtest["job"], "-n", namespace)
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["backtest-job", backtest["id"]] and container["image"] == "kubetrade:test"
        assert container["envFrom"] == [{"secretRef": {"name": "kubetrade-env"}}]
        assert job["metadata"]["ownerReferences"][0]["uid"] == stored["metadata"]["uid"]
        assert client.get(f"/api/v1/backtests/{backtest['id']}").json()["status"] == "pending"

    # What the Job's pod runs (kwok nodes do not run containers): the same command, here.
    env = {**os.environ, "KUBETRADE_DATABASE_URL": pg_dsn}
    ran = subprocess.run([sys.executable, "-m", "kubetrade.cli", "backtest-job", backtest["id"]], env=env,
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    again = subprocess.run([sys.executable, "-m", "kubetrade.cli", "backtest-job", backtest["id"]], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.stdout.strip() == "skipped"  # a retried pod does not run it twice
    with serving(create_app(settings)) as url:
        done = httpx.get(f"{url}/api/v1/backtests/{backtest['id']}", headers={"X-API-Key": admin}).json()
        assert done["status"] == "succeeded" and done["result"]["BTC/USDT"]["trades"] > 0
        gone = httpx.delete(f"{url}/api/v1/strategies/eth-rsi", headers={"X-API-Key": admin})
        assert gone.status_code == 202
    assert kube.kubectl("get", "strategy", "eth-rsi", "-n", namespace, check=False).returncode != 0
