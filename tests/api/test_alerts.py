"""User-defined alerts: the pure decision, the routes, and the evaluator over real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import nats

from kubetrade.alerts.conditions import RuleState, decide, from_status
from kubetrade.alerts.evaluator import matching, observations
from kubetrade.api import create_app
from kubetrade.messaging import subjects
from kubetrade.messaging.schemas import AlertEvent, StatusReport
from tests.api.conftest import settings_for
from tests.support.server import serving

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_condition_fires_once_then_resolves_and_respects_its_cooldown() -> None:
    calm = RuleState("<", -100.0, 300, firing=False, last_fired_at=None)
    assert decide(calm, -50.0, NOW) is None
    assert decide(calm, -150.0, NOW) == "fire"
    firing = RuleState("<", -100.0, 300, firing=True, last_fired_at=NOW)
    assert decide(firing, -200.0, NOW) is None  # still true: no repeat
    assert decide(firing, -10.0, NOW) == "resolve"
    cooling = RuleState("<", -100.0, 300, firing=False, last_fired_at=NOW)
    assert decide(cooling, -150.0, NOW + timedelta(seconds=299)) is None
    assert decide(cooling, -150.0, NOW + timedelta(seconds=300)) == "fire"
    assert decide(RuleState(">=", 0.1, 0, False, None), 0.1, NOW) == "fire"


def test_observations_come_from_status_reports_and_market_data() -> None:
    assert {(o.metric, o.value) for o in from_status("Strategy", "ns", "s", {"pnl": -3, "drawdown": 0.2,
                                                                             "trades": 5, "equity": True})} == {
        ("pnl", -3.0), ("drawdown", 0.2)}
    assert [o.metric for o in from_status("Goal", "ns", "g", {"progressPct": 0.4})] == ["goal_progress"]
    ticker = observations("md.binance.BTC_USDT.ticker",
                          json.dumps({"exchange": "binance", "symbol": "BTC/USDT", "last": 50000}).encode())
    assert [(o.metric, o.target, o.value) for o in ticker] == [("price", "binance:BTC/USDT", 50000.0)]
    assert observations("status.strategy.a.b", b"not json") == []
    assert observations("status.strategy.a.b", b"[1, 2]") == []
    rules = [{"metric": "price", "target": "binance:BTC/USDT", "namespace": "x"},
             {"metric": "pnl", "target": "s", "namespace": "other"}]
    assert matching(rules, ticker[0]) == rules[:1]
    assert matching(rules, from_status("Strategy", "ns", "s", {"pnl": 1})[0]) == []


def test_alert_routes_validate_paginate_and_filter(api) -> None:
    with httpx.Client(base_url=api.url, headers=api.headers(), timeout=30) as client:
        made = [client.post("/api/v1/alerts", json={"name": f"dd-{i}", "metric": "drawdown", "target": "btc-ema",
                                                    "operator": ">", "threshold": 0.1 * (i + 1),
                                                    "severity": "critical" if i else "warning"})
                for i in range(3)]
        assert [m.status_code for m in made] == [201] * 3
        rule = made[0].json()
        assert rule["firing"] is False and rule["namespace"] and rule["cooldownSeconds"] == 300
        first = client.get("/api/v1/alerts", params={"limit": 2, "target": "btc-ema"}).json()
        rest = client.get("/api/v1/alerts", params={"limit": 2, "target": "btc-ema", "after": first["next"]}).json()
        assert len(first["items"]) == 2 and len(rest["items"]) == 1 and rest["next"] is None
        assert len(client.get("/api/v1/alerts", params={"severity": "critical", "target": "btc-ema"}
                              ).json()["items"]) == 2
        replaced = client.put(f"/api/v1/alerts/{rule['id']}", json={
            "name": "price", "metric": "price", "target": "binance:BTC/USDT", "operator": "<", "threshold": 30000})
        assert replaced.status_code == 200 and replaced.json()["namespace"] == "*"
        assert client.get(f"/api/v1/alerts/{rule['id']}").json()["metric"] == "price"
        for bad in ({"name": "x", "metric": "price", "target": "btc-ema", "operator": "<", "threshold": 1},
                    {"name": "x", "metric": "pnl", "target": "Not A Name", "operator": "<", "threshold": 1},
                    {"name": "x", "metric": "pnl", "target": "s", "operator": "!=", "threshold": 1},
                    {"name": "x", "metric": "vibes", "target": "s", "operator": "<", "threshold": 1},
                    {"name": "x", "metric": "pnl", "target": "s", "operator": "<", "threshold": "high"}):
            answer = client.post("/api/v1/alerts", json=bad)
            assert answer.status_code == 422, (bad, answer.text)
        missing = "00000000-0000-0000-0000-000000000000"
        assert client.get(f"/api/v1/alerts/{missing}").status_code == 404
        assert client.put(f"/api/v1/alerts/{missing}", json={"name": "x", "metric": "pnl", "target": "s",
                                                              "operator": "<", "threshold": 1}).status_code == 404
        assert client.get("/api/v1/alerts/not-a-uuid").status_code == 422
        assert client.delete(f"/api/v1/alerts/{rule['id']}").status_code == 204
        assert client.delete(f"/api/v1/alerts/{rule['id']}").status_code == 404


def test_the_evaluator_raises_records_and_publishes_alerts(api, nats_url) -> None:
    ns = "alerts-e2e"
    with httpx.Client(base_url=api.url, headers=api.headers(), timeout=30) as client:
        rule = client.post("/api/v1/alerts", json={
            "name": "loss", "namespace": ns, "metric": "pnl", "target": "btc-ema", "operator": "<",
            "threshold": -100, "severity": "critical", "cooldownSeconds": 0}).json()

        async def scenario() -> list[AlertEvent]:
            nc = await nats.connect(nats_url)
            got: list[AlertEvent] = []

            async def collect(msg) -> None:
                event = AlertEvent.model_validate_json(msg.data)
                if event.namespace == ns:
                    got.append(event)

            sub = await nc.subscribe(subjects.alerts("critical"), cb=collect)

            async def report(pnl: float) -> None:
                msg = StatusReport(kind="Strategy", namespace=ns, name="btc-ema", status={"pnl": pnl}, time=1)
                await nc.publish(subjects.status_report("Strategy", ns, "btc-ema"),
                                 msg.model_dump_json(by_alias=True).encode())
                await nc.flush()

            # The evaluator subscribes once it leads and has read the rules: report until it answers.
            deadline = time.monotonic() + 60
            while not got:
                assert time.monotonic() < deadline, "no alert published"
                await report(-150.0)
                await asyncio.sleep(0.5)
            await report(-170.0)  # still below: no second alert
            await report(20.0)  # resolved
            deadline = time.monotonic() + 30
            while len(got) < 2:
                assert time.monotonic() < deadline, f"no resolution published: {got}"
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
            await sub.unsubscribe()
            await nc.drain()
            return got

        events = asyncio.run(scenario())
        assert [(e.status, e.value) for e in events] == [("firing", -150.0), ("resolved", 20.0)]
        assert events[0].rule_id == rule["id"] and "btc-ema" in events[0].message
        history = client.get("/api/v1/alerts/history", params={"rule_id": rule["id"]}).json()["items"]
        assert [h["status"] for h in history] == ["resolved", "firing"]  # newest first
        assert history[1]["value"] == -150.0 and history[1]["source"] == "rule"
        assert client.get(f"/api/v1/alerts/{rule['id']}").json()["firing"] is False
        page = client.get("/api/v1/alerts/history", params={"limit": 1, "severity": "critical"}).json()
        assert len(page["items"]) == 1 and page["next"]
        assert client.get("/api/v1/alerts/history", params={"limit": 0}).status_code == 422


def test_two_replicas_raise_an_alert_once(pg_dsn, nats_url, local_env) -> None:
    """Both replicas follow NATS, but only the advisory-lock holder evaluates: one alert, not two."""
    from kubetrade.api import create_app
    from tests.api.conftest import make_key, settings_for
    from tests.support.server import serving

    ns = "alerts-replicas"
    settings = settings_for(pg_dsn, nats_url)
    key = make_key(pg_dsn, ["read", "trade"])[1]
    with serving(create_app(settings)) as a, serving(create_app(settings)) as b:
        rule = httpx.post(f"{a}/api/v1/alerts", headers={"X-API-Key": key}, json={
            "name": "deep", "namespace": ns, "metric": "drawdown", "target": "eth-rsi", "operator": ">=",
            "threshold": 0.15, "severity": "warning", "cooldownSeconds": 3600}).json()

        async def report_until_fired() -> None:
            nc = await nats.connect(nats_url)
            msg = StatusReport(kind="Strategy", namespace=ns, name="eth-rsi", status={"drawdown": 0.2}, time=1)
            deadline = time.monotonic() + 60
            async with httpx.AsyncClient(base_url=b, headers={"X-API-Key": key}) as client:
                while not (await client.get(f"/api/v1/alerts/{rule['id']}")).json()["firing"]:
                    assert time.monotonic() < deadline, "the condition never fired"
                    await nc.publish(subjects.status_report("Strategy", ns, "eth-rsi"),
                                     msg.model_dump_json(by_alias=True).encode())
                    await asyncio.sleep(0.3)
            for _ in range(5):  # more reports while firing, seen by both replicas
                await nc.publish(subjects.status_report("Strategy", ns, "eth-rsi"),
                                 msg.model_dump_json(by_alias=True).encode())
            await nc.flush()
            await asyncio.sleep(1.0)
            await nc.drain()

        asyncio.run(report_until_fired())
        history = httpx.get(f"{a}/api/v1/alerts/history", headers={"X-API-Key": key},
                            params={"rule_id": rule["id"]}).json()["items"]
    assert [h["status"] for h in history] == ["firing"]


NOTIFICATION = {"version": "4", "groupKey": "{}:{}", "status": "firing", "receiver": "history",
                "alerts": [{"status": "firing", "labels": {"alertname": "Probe"}, "startsAt": "2026-01-01T00:00:00Z",
                            "fingerprint": "f00d"}]}


def test_the_receiver_refuses_webhooks_without_its_token(api, pg_dsn, nats_url, local_env) -> None:
    """No token configured: 503 with Retry-After (Alertmanager retries, nothing lost); configured: a wrong or
    missing bearer is 401, and an API key does not open it."""
    with serving(create_app(settings_for(pg_dsn, nats_url, alert_receiver_token=""))) as bare:
        unconfigured = httpx.post(f"{bare}/api/v1/alerts/receiver/record", json=NOTIFICATION,
                                  headers={"Authorization": "Bearer anything"})
    assert unconfigured.status_code == 503 and unconfigured.headers["retry-after"] == "30"
    assert "KUBETRADE_ALERT_RECEIVER_TOKEN" in unconfigured.json()["detail"]
    token = "receiver-token-for-this-test"
    with serving(create_app(settings_for(pg_dsn, nats_url, alert_receiver_token=token))) as url:
        for headers in ({}, {"Authorization": "Bearer wrong"}, api.headers()):
            r = httpx.post(f"{url}/api/v1/alerts/receiver/record", json=NOTIFICATION, headers=headers)
            assert r.status_code == 401, (headers.keys(), r.text)
        ok = httpx.post(f"{url}/api/v1/alerts/receiver/record", json=NOTIFICATION,
                        headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json()["recorded"] >= 1, ok.text
