"""The market-data routes served by real uvicorn over the session's PostgreSQL and NATS."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import Iterator

import httpx
import numpy as np
import psycopg
import pyarrow.parquet as pq
import pytest

from kubetrade.api import create_app
from kubetrade.candles import Candles
from kubetrade.collector.health import Health, HealthReporter
from kubetrade.engine import indicators
from kubetrade.storage.candles import SeriesKey, ingest
from tests.api.conftest import make_key, settings_for
from tests.support.server import serving

from .conftest import START

EXCHANGE = "apitest"
N = 20_000  # about 70 days of 5m candles


@pytest.fixture(scope="module")
def stored(pg_dsn: str, btc_5m: Candles) -> Candles:
    part = btc_5m.slice(0, N)

    async def load() -> None:
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            await ingest(conn, SeriesKey(EXCHANGE, "BTC/USDT", "5m"), part)

    asyncio.run(load())
    return part


@pytest.fixture(scope="module")
def api(pg_dsn: str, nats_url: str, stored: Candles) -> Iterator[tuple[str, dict[str, str], str]]:
    settings = settings_for(pg_dsn, nats_url)
    with serving(create_app(settings)) as url:
        yield url, {"X-API-Key": make_key(pg_dsn, ["read", "admin"], "md")[1]}, settings.namespace


def test_historical_pages_through_every_candle_exactly_once(api, stored: Candles) -> None:
    url, headers, _ = api
    times: list[int] = []
    params = {"exchange": EXCHANGE, "timeframe": "5m", "start": START, "end": int(stored.time[2999]) + 1,
              "limit": 1000}
    while True:
        r = httpx.get(f"{url}/api/v1/historical/BTC-USDT", params=params, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["source"] == "stored" and body["symbol"] == "BTC/USDT"
        times += [c["time"] for c in body["candles"]]
        if "next" not in body:
            break
        params["start"] = body["next"]
    assert times == [int(t) for t in stored.time[:3000]]
    last = body["candles"][-1]
    assert (last["open"], last["close"]) == (float(stored.open[2999]), float(stored.close[2999]))


def test_historical_rolls_up_what_is_not_stored(api, stored: Candles) -> None:
    url, headers, _ = api
    r = httpx.get(f"{url}/api/v1/historical/BTC_USDT", headers=headers,
                  params={"exchange": EXCHANGE, "timeframe": "1d", "start": "2024-01-01T00:00:00Z",
                          "end": "2024-01-03T00:00:00Z"})
    body = r.json()
    assert body["source"] == "date_bin:5m" and len(body["candles"]) == 2
    day = body["candles"][1]
    assert day["high"] == pytest.approx(float(stored.high[288:576].max()))
    assert day["volume"] == pytest.approx(float(stored.volume[288:576].sum()))


def test_historical_refuses_bad_input_with_a_reason(api) -> None:
    url, headers, _ = api
    r = httpx.get(f"{url}/api/v1/historical/BTCUSDT", headers=headers)
    assert r.status_code == 422 and "BASE-QUOTE" in r.text
    r = httpx.get(f"{url}/api/v1/historical/BTC-USDT", headers=headers,
                  params={"start": "2024-02-01T00:00:00Z", "end": "2024-01-01T00:00:00Z"})
    assert r.status_code == 422 and "must be after" in r.text
    r = httpx.get(f"{url}/api/v1/historical/BTC-USDT", params={"timeframe": "7m"}, headers=headers)
    assert r.status_code == 422


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_bulk_export_streams_every_row(api, stored: Candles, fmt: str) -> None:
    url, headers, _ = api
    chunks = 0
    data = io.BytesIO()
    with httpx.stream("GET", f"{url}/api/v1/bulk", headers=headers, timeout=60,
                      params={"exchange": EXCHANGE, "symbol": "BTC/USDT", "timeframe": "5m", "format": fmt}) as r:
        assert r.status_code == 200
        assert r.headers.get("transfer-encoding") == "chunked"
        for chunk in r.iter_raw():
            chunks += 1
            data.write(chunk)
    assert chunks > 1
    data.seek(0)
    if fmt == "csv":
        rows = list(csv.DictReader(io.TextIOWrapper(data)))
        times = [int(r["time"]) for r in rows]
        closes = [float(r["close"]) for r in rows]
    else:
        table = pq.read_table(data)
        assert table.num_rows == N and len(pq.ParquetFile(io.BytesIO(data.getvalue())).metadata.to_dict()
                                          ["row_groups"]) >= 2, "one row group per streamed chunk"
        times = [int(t.timestamp() * 1000) for t in table.column("time").to_pylist()]
        closes = table.column("close").to_pylist()
    assert times == [int(t) for t in stored.time]
    assert closes == [float(x) for x in stored.close]


def test_indicators_match_the_engine_on_the_same_candles(api, stored: Candles) -> None:
    url, headers, _ = api
    r = httpx.post(f"{url}/api/v1/indicators", headers=headers, json={
        "exchange": EXCHANGE, "symbol": "BTC/USDT", "timeframe": "5m", "limit": 50,
        "indicators": [{"name": "ema", "params": {"period": 20}}, {"name": "rsi", "params": {"period": 14}}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["time"] == [int(t) for t in stored.time[-50:]]
    window = stored.slice(N - 50 - indicators.lookback("ema", {"period": 20}), N)
    ema = next(iter(indicators.compute("ema", window, {"period": 20}).values()))
    got = next(iter(body["values"]["ema"].values()))
    assert np.allclose(got, ema[-50:])
    bad = httpx.post(f"{url}/api/v1/indicators", headers=headers, json={
        "symbol": "BTC/USDT", "indicators": [{"name": "nope"}]})
    assert bad.status_code == 422 and "nope" in bad.text


def test_get_indicators_of_a_symbol_match_the_engine(api, stored: Candles) -> None:
    """The seed's GET /api/v1/indicators/{symbol}: the same numbers as the engine on the same candles."""
    url, headers, _ = api
    params = {"exchange": EXCHANGE, "timeframe": "5m", "limit": 50,
              "indicator": ["ema:period=20", "rsi:period=14", "macd"]}
    r = httpx.get(f"{url}/api/v1/indicators/BTC-USDT", headers=headers, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["symbol"] == "BTC/USDT" and body["time"] == [int(t) for t in stored.time[-50:]]
    assert set(body["values"]) == {"ema:period=20", "rsi:period=14", "macd"}
    asked = (("ema:period=20", "ema", {"period": 20}), ("rsi:period=14", "rsi", {"period": 14}), ("macd", "macd", {}))
    warmup = max(indicators.lookback(name, p) for _, name, p in asked)  # one window, warm for the longest
    window = stored.slice(N - 50 - warmup, N)
    for label, name, p in asked:
        want = indicators.compute(name, window, p)
        for output, values in want.items():
            assert np.allclose(body["values"][label][output], values[-50:]), (label, output)
    # the query-parameter form of the seed's GET /api/v1/indicators gives the same document
    same = httpx.get(f"{url}/api/v1/indicators", headers=headers, params={**params, "symbol": "BTC/USDT"})
    assert same.status_code == 200 and same.json() == body
    # without a list: the default set, every value finite after warm-up
    default = httpx.get(f"{url}/api/v1/indicators/BTC_USDT", headers=headers,
                        params={"exchange": EXCHANGE, "timeframe": "5m", "limit": 10}).json()
    assert set(default["values"]) == {"sma:period=20", "ema:period=20", "rsi:period=14", "macd", "bbands:period=20",
                                      "atr:period=14"}
    assert all(v is not None for outs in default["values"].values() for vals in outs.values() for v in vals)


@pytest.mark.parametrize(("params", "status", "message"), [
    ({"indicator": "ema:period=x"}, 422, "write NAME or NAME:K=V"),
    ({"indicator": "nope"}, 422, "unknown indicator 'nope'"),
    ({"indicator": "ema:period=nan"}, 422, "must be a finite number"),
    ({"indicator": "ema:period=0"}, 422, "period"),
    ({"timeframe": "7m"}, 422, ""),
    ({"limit": 0}, 422, ""),
    ({"end": "2024-01-01T00:00:00"}, 422, "time zone"),
])
def test_get_indicators_refuses_bad_input(api, params: dict, status: int, message: str) -> None:
    url, headers, _ = api
    r = httpx.get(f"{url}/api/v1/indicators/BTC-USDT", headers=headers,
                  params={"exchange": EXCHANGE, "timeframe": "5m", **params})
    assert r.status_code == status and message in r.text, r.text


def test_get_indicators_of_a_symbol_without_candles(api) -> None:
    url, headers, _ = api
    r = httpx.get(f"{url}/api/v1/indicators/DOGE-USDT", headers=headers, params={"exchange": EXCHANGE})
    assert r.status_code == 404 and "no 1h candles stored for DOGE/USDT" in r.text


def test_market_data_reports_the_newest_candle_and_its_age(api, stored: Candles) -> None:
    url, headers, _ = api
    r = httpx.get(f"{url}/api/v1/market-data", headers=headers,
                  params={"exchange": EXCHANGE, "symbols": "BTC/USDT,ETH-USDT", "timeframe": "5m"})
    btc, eth = r.json()
    assert btc["candle"]["time"] == int(stored.time[-1]) and btc["ageSeconds"] > 86_400
    assert eth == {"symbol": "ETH/USDT", "candle": None, "ageSeconds": None}


async def test_collector_health_shows_stale_and_disabled_collectors(api, nats_client) -> None:
    url, headers, _ = api
    fresh = Health("md-ns", "fresh", "exchange", "binance")
    fresh.set_phase("Running")
    fresh.sample(0, end_ms=int(time.time() * 1000))
    stale = Health("md-ns", "stale", "replay", "bundled")
    stale.set_phase("Running")
    stale.sample(START, end_ms=START + 300_000)
    off = Health("md-ns", "glassnode", "onchain", "glassnode")
    off.set_phase("Disabled", "NoCredentials")
    for h in (fresh, stale, off):
        await HealthReporter(nats_client, h).report()
    async with httpx.AsyncClient() as client:
        body = (await client.get(f"{url}/health/collectors", headers=headers)).json()
    mine = {c["health"]["name"]: c for c in body["collectors"] if c["health"]["namespace"] == "md-ns"}
    assert body["status"] == "unhealthy"
    assert (mine["fresh"]["stale"], mine["stale"]["stale"], mine["glassnode"]["stale"]) == (False, True, False)
    assert mine["glassnode"]["health"]["phase"] == "Disabled"
    assert mine["glassnode"]["health"]["reason"] == "NoCredentials"


async def test_stop_and_start_set_the_collector_suspend_flag(api, pg_dsn: str, nats_client, monkeypatch) -> None:
    from psycopg_pool import AsyncConnectionPool

    from kubetrade.cluster.database import DatabaseStore

    monkeypatch.delenv("KUBECONFIG", raising=False)  # no cluster: Collectors live in the database
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    url, headers, ns = api
    async with AsyncConnectionPool(pg_dsn, min_size=1, max_size=2) as pool:
        store = DatabaseStore(pool)
        await store.create("collectors", ns, {
            "apiVersion": "kubetrade.io/v1alpha1", "kind": "Collector", "metadata": {"name": "btc", "namespace": ns},
            "spec": {"source": "replay", "provider": "bundled", "symbols": ["BTC/USDT"], "replay": {}}})
        control = await nats_client.subscribe(f"control.collector.{ns}.btc")
        async with httpx.AsyncClient() as client:
            r = await client.post(f"{url}/api/v1/collectors/btc/stop", headers=headers)
            assert r.status_code == 200, r.text
            assert (await store.get("collectors", ns, "btc"))["spec"]["suspend"] is True
            assert (await control.next_msg(timeout=5)).data == b"stop"
            await client.post(f"{url}/api/v1/collectors/btc/start", headers=headers)
            assert (await store.get("collectors", ns, "btc"))["spec"]["suspend"] is False
            assert (await client.post(f"{url}/api/v1/collectors/nope/stop", headers=headers)).status_code == 404
        await control.unsubscribe()


@pytest.mark.kube
def test_stop_sets_suspend_on_the_collector_resource_in_kubernetes(pg_dsn: str, nats_url: str, kube, namespace: str,
                                                                 monkeypatch) -> None:
    from kubetrade import cluster

    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    cluster.api_client.cache_clear()  # the cached client may belong to another kubeconfig
    manifest = {"apiVersion": "kubetrade.io/v1alpha1", "kind": "Collector",
                "metadata": {"name": "binance-btc", "namespace": namespace},
                "spec": {"source": "exchange", "provider": "binance", "symbols": ["BTC/USDT"]}}
    kube.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    try:
        settings = settings_for(pg_dsn, nats_url, namespace=namespace)
        with serving(create_app(settings)) as url:
            headers = {"X-API-Key": make_key(pg_dsn, ["admin"], "md-kube")[1]}
            r = httpx.post(f"{url}/api/v1/collectors/binance-btc/stop", headers=headers, timeout=30)
            assert r.status_code == 200, r.text
            assert kube.get_json("collector", "binance-btc", "-n", namespace)["spec"]["suspend"] is True
            r = httpx.post(f"{url}/api/v1/collectors/binance-btc/start", headers=headers, timeout=30)
            assert r.status_code == 200, r.text
            assert kube.get_json("collector", "binance-btc", "-n", namespace)["spec"]["suspend"] is False
    finally:
        cluster.api_client.cache_clear()
