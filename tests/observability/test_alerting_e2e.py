"""End to end with the real Prometheus and Alertmanager (Debian packages).

A real workload - ``kubetrade risk-manager`` started from the CLI, as the chart starts it,
with ``KUBETRADE_METRICS_PORT`` - is scraped by Prometheus, which loads the shipped alert
rules; signals that break the position limit fire ``KubetradePositionLimitBreached``, and
Alertmanager, running the shipped routing tree, delivers it to a local webhook receiver.
Platform events (a promotion to live) go to the same Alertmanager through its API and are
kept, once, in the alert history with their delivery state.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats.errors
import pytest
import yaml

from kubetrade.alerts import store as alert_store
from kubetrade.alerts.alertmanager import AlertmanagerClient, promoted_to_live, raise_event
from kubetrade.ledger import allocation, connection
from kubetrade.localstack.servers.processes import ManagedProcess, free_port
from kubetrade.messaging import codec, kv, subjects
from kubetrade.messaging.schemas import RiskDecision, Signal, Ticker
from kubetrade.messaging.streams import ensure_streams
from tests.observability.conftest import REPO, Alertmanager, Prometheus, WebhookReceiver, http_json

RULES = REPO / "charts" / "kubetrade" / "files" / "prometheus" / "kubetrade-rules.yaml"
AM_CONFIG = REPO / "charts" / "kubetrade" / "files" / "alertmanager" / "alertmanager.yaml"


def test_alertmanager_config(receiver_url: str) -> str:
    """The shipped routing tree, delivering to the local receiver, with short waits.

    Receivers that would reach the internet (Slack, Telegram, Discord, email) are dropped;
    the webhook and the SMS gateway go to the local receiver under their own paths, so the
    test sees which route an alert took.
    """
    config: dict[str, Any] = yaml.safe_load(AM_CONFIG.read_text())
    config["global"] = {"resolve_timeout": "5m"}
    for receiver in config["receivers"]:
        for key in ("slack_configs", "telegram_configs", "discord_configs", "email_configs"):
            receiver.pop(key, None)
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{receiver_url}/{'sms' if 'sms' in hook['url'] else 'kubetrade'}"

    def shorten(route: dict[str, Any]) -> None:
        route["group_wait"], route["group_interval"] = "1s", "1s"
        for child in route.get("routes", []):
            shorten(child)

    shorten(config["route"])
    return yaml.safe_dump(config)


# not a test itself: pytest must not collect the helper above
test_alertmanager_config.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def monitoring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebhookReceiver, Alertmanager]]:
    receiver = WebhookReceiver()
    am = Alertmanager(tmp_path_factory.mktemp("alertmanager"), test_alertmanager_config(receiver.url))
    am.start()
    try:
        yield receiver, am
    finally:
        am.process.stop()
        receiver.close()


async def until(predicate: Any, timeout: float = 90.0, what: str = "condition") -> Any:  # noqa: ASYNC109
    """Poll until truthy (a bound on a hang, not a timing claim)."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.2)


def _signal(coid: str, qty: float) -> Signal:
    return Signal(strategy="alpha", client_order_id=coid, exchange="binance", symbol="BTC/USDT", side="buy",
                  quantity=qty, price=50_000.0, time=int(time.time() * 1000))


@pytest.mark.slow
async def test_a_rule_fires_on_a_real_workload_and_reaches_the_webhook(
    monitoring: tuple[WebhookReceiver, Alertmanager], obs_dsn: str, own_nats: Any, obs_nc: Any, tmp_path: Path
) -> None:
    receiver, am = monitoring
    nc = obs_nc
    js = nc.jetstream()
    await ensure_streams(js)
    conn = await connection.connect(obs_dsn)
    await allocation.allocate(conn, "paper", "alpha", 10_000.0, risk_policy="default")
    await conn.close()
    bucket = await kv.policy_bucket(js)
    await bucket.put(kv.policy_key("default", "default"),
                 json.dumps({"namespace": "default", "name": "default", "generation": 1, "spec": {}}).encode())

    metrics_port = free_port()
    workload = ManagedProcess(
        "risk-manager",
        [sys.executable, "-m", "kubetrade.cli", "risk-manager", "--database-url", obs_dsn, "--nats-url", own_nats.url,
         "--refresh-seconds", "0.2"],
        tmp_path / "risk-manager.log",
        env={**os.environ, "KUBETRADE_METRICS_PORT": str(metrics_port)},
    )
    prometheus = Prometheus(tmp_path / "prometheus", yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am.port}"]}]}]},
        "scrape_configs": [{"job_name": "kubetrade-risk-manager",
                            "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }))
    workload.start()
    prometheus.start()
    try:
        await until(lambda: prometheus.query('up{job="kubetrade-risk-manager"} == 1'), what="workload scraped")
        assert prometheus.query('kubetrade_build_info{role="risk-manager"}')

        async def ask(coid: str, qty: float) -> RiskDecision:
            reply = await nc.request(subjects.RISK_CHECK, codec.encode(_signal(coid, qty)), timeout=10)
            return codec.decode(RiskDecision, reply.data)

        # 1 BTC at 50,000 on 10,000 of capital: reduced to the 20 % position limit
        attempt = 0

        async def reduced() -> bool:
            nonlocal attempt
            attempt += 1
            await nc.publish(subjects.ticker("binance", "BTC/USDT"), codec.encode(
                Ticker(exchange="binance", symbol="BTC/USDT", time=int(time.time() * 1000), last=50_000.0)))
            try:
                d = await ask(f"e2e-{attempt}", 1.0)
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                return False  # scraped already, but not yet subscribed to risk.check
            return d.approved and d.rule == "maxPositionPct"

        await until(reduced, what="a signal reduced by maxPositionPct")
        await until(lambda: prometheus.query('kubetrade_risk_decisions_total{rule="maxPositionPct"}'),
                    what="the decision scraped")
        # at the limit now: the next buy is refused by the same rule, and the counter grows
        refused = await ask("e2e-more", 0.01)
        assert not refused.approved and refused.rule == "maxPositionPct"

        await until(lambda: "KubetradePositionLimitBreached" in receiver.alertnames("/kubetrade"), timeout=120,
                    what="KubetradePositionLimitBreached delivered to the webhook")
        firing = prometheus.query('ALERTS{alertname="KubetradePositionLimitBreached", alertstate="firing"}')
        assert firing[0]["metric"]["rule"] == "maxPositionPct" and firing[0]["metric"]["severity"] == "warning"
        # warning: not on the critical route, so nothing went to the SMS gateway
        assert "KubetradePositionLimitBreached" not in receiver.alertnames("/sms")
    finally:
        prometheus.process.stop()
        workload.stop()


async def test_platform_events_reach_alertmanager_once_and_stay_in_the_history(
    monitoring: tuple[WebhookReceiver, Alertmanager], obs_dsn: str
) -> None:
    import psycopg

    receiver, am = monitoring
    event = promoted_to_live("prod", "ema-7", "monthly-8", "Sharpe 2.1 over 14 days of paper trading")
    async with await psycopg.AsyncConnection.connect(obs_dsn, autocommit=True) as conn:
        row = await raise_event(conn, event, AlertmanagerClient(am.url))
        assert row is not None
        # raised again (a repeated review): neither recorded nor sent twice
        assert await raise_event(conn, event, AlertmanagerClient(am.url)) is None

        active = http_json(f"{am.url}/api/v2/alerts?filter=alertname%3D%22KubetradePromotedToLive%22")
        assert len(active) == 1 and active[0]["labels"]["strategy"] == "ema-7"
        assert active[0]["annotations"]["description"] == "Sharpe 2.1 over 14 days of paper trading"
        await until(lambda: "KubetradePromotedToLive" in receiver.alertnames("/kubetrade"),
                    what="the event delivered to the webhook")

        # Alertmanager unreachable: the event is still recorded, marked failed
        down = promoted_to_live("prod", "rsi-2", "monthly-8", "reason")
        failed = await raise_event(conn, down, AlertmanagerClient(f"http://127.0.0.1:{free_port()}", timeout=2))
        assert failed is not None

        # what GET /api/v1/alerts/history lists (the API's own query), newest first
        rows = await alert_store.history(conn, {"source": "platform"}, 10, None)
        assert [r["target"] for r in rows] == ["rsi-2", "ema-7"]
        assert rows[1]["labels"]["alertname"] == "KubetradePromotedToLive" and rows[1]["severity"] == "info"
        cur = await conn.execute("SELECT target, delivery, delivery_error FROM alert_history ORDER BY id")
        states = {target: (delivery, error) for target, delivery, error in await cur.fetchall()}
        assert states["ema-7"] == ("delivered", None)
        assert states["rsi-2"][0] == "failed" and "ConnectError" in states["rsi-2"][1]
