"""Each of the six channels, from the condition becoming true to the message arriving.

Every alert takes the one path: raised (a Prometheus rule on a real workload's metrics, a
platform event, a rule created through the API) -> Alertmanager's API v2 (two real
replicas in a cluster, configured by the chart) -> the channel's own integration, or for
SMS the API's notifier -> the local endpoint that speaks the provider's protocol
(:mod:`tests.alerts.providers`), which accepts only what the provider documents.

* e-mail: a Prometheus rule (KubetradePositionLimitBreached, warning) on a real risk
  manager's metrics, over STARTTLS with AUTH to a real SMTP server; the test reads the
  subject and the text body;
* Slack: a platform event the operator raises (a promotion to live), after Slack answered
  500 once (Alertmanager retries);
* Discord: a platform event (a goal reached), after Discord answered 429 with Retry-After;
* Telegram: a rule created through the API, made true by real candles from a real replay
  collector process;
* webhook: a rule on a Strategy's PnL, from status reports, firing then resolving;
* SMS: a circuit breaker tripped in a real risk manager (a burst of exchange errors),
  published on NATS as a platform event, sent by Twilio's API after a 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetrade.alerts.alertmanager import emit_in_background, goal_reached, promoted_to_live, raise_event
from kubetrade.ledger import allocation, connection
from kubetrade.localstack.servers.processes import ManagedProcess, free_port
from kubetrade.messaging import codec, kv, subjects
from kubetrade.messaging.schemas import OrderEvent, RiskDecision, Signal, StatusReport, Ticker
from kubetrade.messaging.streams import ensure_streams
from tests.alerts.conftest import SMS_TO, SMTP_USER, Stack, until
from tests.alerts.providers import Answer, text_of
from tests.observability.conftest import Prometheus

RULES = Path(__file__).resolve().parents[2] / "charts" / "kubetrade" / "files" / "prometheus" / "kubetrade-rules.yaml"


def rule(stack: Stack, **fields: Any) -> dict[str, Any]:
    resp = stack.api("POST", "/api/v1/alerts", {"operator": ">", "severity": "warning", **fields})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def history(stack: Stack, **params: Any) -> list[dict[str, Any]]:
    import httpx

    resp = httpx.get(stack.api_url + "/api/v1/alerts/history", params=params, headers={"X-API-Key": stack.key},
                     timeout=30)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


async def _publish(stack: Stack, subject: str, data: bytes, times: int = 1, every: float = 0.0) -> None:
    import nats

    nc = await nats.connect(stack.nats.url)
    try:
        for _ in range(times):
            await nc.publish(subject, data)
            if every:
                await asyncio.sleep(every)
        await nc.flush()
    finally:
        await nc.drain()


def report(stack: Stack, namespace: str, strategy: str, **status: float) -> None:
    """A Strategy's status report, as its runner publishes it."""
    msg = StatusReport(kind="Strategy", namespace=namespace, name=strategy, status=status, time=int(time.time() * 1e3))
    asyncio.run(_publish(stack, subjects.status_report("Strategy", namespace, strategy), codec.encode(msg)))


class RiskSide:
    """A real risk manager scraped by a real Prometheus that loads the shipped rules and scrapes Alertmanager."""

    def __init__(self, stack: Stack, tmp: Path) -> None:
        self.stack = stack
        self.metrics_port = free_port()
        asyncio.run(self._prepare())
        self.process = ManagedProcess(
            "risk-manager",
            [sys.executable, "-m", "kubetrade.cli", "risk-manager", "--database-url", stack.dsn,
             "--nats-url", stack.nats.url, "--refresh-seconds", "0.2"],
            tmp / "risk-manager.log", env={**os.environ, "KUBETRADE_METRICS_PORT": str(self.metrics_port)})
        self.prometheus = Prometheus(tmp / "prometheus", yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am.url[7:] for am in stack.ams]}]}]},
            "scrape_configs": [
                {"job_name": "kubetrade-risk-manager",
                 "static_configs": [{"targets": [f"127.0.0.1:{self.metrics_port}"]}]},
                {"job_name": "alertmanager", "static_configs": [{"targets": [am.url[7:] for am in stack.ams]}]},
            ],
        }))
        self.process.start()
        self.prometheus.start()

    async def _prepare(self) -> None:
        import nats

        nc = await nats.connect(self.stack.nats.url)
        js = nc.jetstream()
        await ensure_streams(js)
        conn = await connection.connect(self.stack.dsn)
        await allocation.allocate(conn, "paper", "alpha", 10_000.0, risk_policy="default")
        await conn.close()
        bucket = await kv.policy_bucket(js)
        await bucket.put(kv.policy_key("default", "default"), json.dumps(
            {"namespace": "default", "name": "default", "generation": 1,
             "spec": {"circuitBreaker": {"exchangeErrorBurst": 5, "errorWindowSeconds": 600}}}).encode())
        await nc.drain()

    def close(self) -> None:
        self.prometheus.process.stop()
        self.process.stop()


@pytest.fixture(scope="module")
def risk(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RiskSide]:
    side = RiskSide(stack, tmp_path_factory.mktemp("risk"))
    try:
        until(lambda: side.prometheus.query('up{job="kubetrade-risk-manager"} == 1'), what="risk manager scraped")
        yield side
    finally:
        side.close()


@pytest.mark.slow
def test_email_a_prometheus_rule_on_a_real_risk_manager(stack: Stack, risk: RiskSide) -> None:
    import nats.errors

    async def breach() -> None:
        import nats as nats_client

        nc = await nats_client.connect(stack.nats.url)
        try:
            for attempt in range(200):
                await nc.publish(subjects.ticker("binance", "BTC/USDT"), codec.encode(
                    Ticker(exchange="binance", symbol="BTC/USDT", time=int(time.time() * 1000), last=50_000.0)))
                signal = Signal(strategy="alpha", client_order_id=f"mail-{attempt}", exchange="binance",
                                symbol="BTC/USDT", side="buy", quantity=1.0, price=50_000.0,
                                time=int(time.time() * 1000))
                try:
                    reply = await nc.request(subjects.RISK_CHECK, codec.encode(signal), timeout=10)
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    await asyncio.sleep(0.3)
                    continue
                decision = codec.decode(RiskDecision, reply.data)
                if decision.rule == "maxPositionPct":
                    # the counter exists now; once scraped, one more refusal makes it increase (the rule's condition)
                    await asyncio.sleep(3)
                    again = signal.model_copy(update={"client_order_id": f"mail-more-{attempt}", "quantity": 0.01})
                    reply = await nc.request(subjects.RISK_CHECK, codec.encode(again), timeout=10)
                    assert codec.decode(RiskDecision, reply.data).rule == "maxPositionPct"
                    return
                await asyncio.sleep(0.3)
            raise AssertionError("no signal was reduced by maxPositionPct")
        finally:
            await nc.drain()

    asyncio.run(breach())
    got = stack.smtp.wait_for(lambda m: "KubetradePositionLimitBreached" in str(m["message"]["Subject"]), 180)
    mail = got[0]
    assert mail["tls"] and mail["to"] == ["trader@example.org"] and mail["from"] == "kubetrade@example.org"
    assert str(mail["message"]["Subject"]) == "[FIRING:1] KubetradePositionLimitBreached (warning)"
    body = text_of(mail["message"])
    assert "[FIRING] KubetradePositionLimitBreached (warning): Signals hit the maxPositionPct limit in paper" in body
    assert stack.smtp.auth_failures == 0
    assert mail["authenticated"] and mail["login"] == SMTP_USER
    # Prometheus' own alert is in kubetrade's history too, with the channels it went to
    rows = until(lambda: [r for r in history(stack, source="prometheus")
                          if r["name"] == "KubetradePositionLimitBreached"
                          and "email" in {d["channel"] for d in r["deliveries"]}], 60, "history of the e-mail")
    assert rows[0]["severity"] == "warning" and rows[0]["labels"]["rule"] == "maxPositionPct"
    time.sleep(4)  # two replicas, group intervals of 2 s: still one e-mail
    assert len(stack.smtp.wait_for(lambda m: "KubetradePositionLimitBreached" in str(m["message"]["Subject"]))) == 1


def test_slack_a_promotion_the_operator_raises_after_slack_failed_once(stack: Stack, monkeypatch) -> None:
    slack = stack.providers.slack
    slack.plan(Answer(500, "rollup_error"))
    before = len(slack.requests)
    monkeypatch.setenv("KUBETRADE_DATABASE_URL", stack.dsn)
    monkeypatch.setenv("KUBETRADE_ALERTMANAGER_URL", ",".join(am.url for am in stack.ams))
    event = promoted_to_live("prod", "ema-slack", "monthly-8", "Sharpe 2.1 over 14 days of paper trading")
    thread = emit_in_background(event)  # what the operator's goal review calls
    assert thread is not None
    thread.join(30)
    emit_in_background(event).join(30)  # the same review again: recorded and sent once
    got = slack.wait_for(lambda m: "ema-slack" in m["text"], 120, "the promotion on Slack")
    assert got[0]["channel"] == "#kubetrade-alerts"
    assert "[FIRING] KubetradePromotedToLive" in got[0]["text"]
    assert "info: Strategy prod/ema-slack was promoted to live trading by goal monthly-8" in got[0]["text"]
    assert len(slack.requests) - before >= 2, "Slack's 500 was not retried"
    time.sleep(4)
    assert len(slack.matching(lambda m: "ema-slack" in m["text"])) == 1
    row = [r for r in history(stack, source="platform") if r["target"] == "ema-slack"]
    assert len(row) == 1 and row[0]["delivery"] == "accepted"
    assert "slack" in {d["channel"] for d in row[0]["deliveries"]}


def test_discord_a_goal_reached_after_discord_rate_limited_it(stack: Stack) -> None:
    import psycopg

    discord = stack.providers.discord
    discord.plan(Answer(429, {"message": "You are being rate limited.", "retry_after": 1.0, "global": False},
                        {"Retry-After": "1", "X-RateLimit-Remaining": "0"}))

    async def raise_it() -> None:
        async with await psycopg.AsyncConnection.connect(stack.dsn, autocommit=True) as conn:
            await raise_event(conn, goal_reached("prod", "discord-goal", 0.083, 0.08, "2026-11"))

    asyncio.run(raise_it())
    got = discord.wait_for(lambda m: "discord-goal" in m["text"], 120, "the goal on Discord")
    embed = got[0]["body"]["embeds"][0]
    assert embed["title"] == "[FIRING] KubetradeGoalReached"
    assert "Goal prod/discord-goal reached its target: 8.30% (target 8.00%)" in embed["description"]
    assert embed["color"] == 0x992D22  # red: firing
    assert len(discord.requests) >= 2, "Discord's 429 was not retried"


@pytest.mark.slow
def test_telegram_a_rule_created_through_the_api_made_true_by_real_candles(stack: Stack, tmp_path: Path) -> None:
    """The trader's own condition: created through the API, made true by real BTC/USDT candles (from
    59,000 on 1 September 2024 to below 57,000 on the 4th, replayed by a real collector process from
    the bundled data), delivered to Telegram."""
    made = rule(stack, name="btc below 57k", metric="price", target="binance:BTC/USDT", operator="<",
                threshold=57_000,
                channels=["telegram"], cooldownSeconds=3600)
    collector = tmp_path / "collector.yaml"
    collector.write_text(yaml.safe_dump({
        "apiVersion": "kubetrade.io/v1alpha1", "kind": "Collector", "metadata": {"name": "btc-replay",
                                                                                 "namespace": "alerts"},
        "spec": {"source": "replay", "provider": "bundled", "symbols": ["BTC/USDT"], "timeframes": ["1h"],
                 "replay": {"path": "bundled", "speed": 20_000, "loop": True, "start": "2024-09-01T00:00:00Z"}}}))
    time.sleep(3)  # the evaluator reads new rules every 2 s
    process = ManagedProcess("collector", [sys.executable, "-m", "kubetrade.cli", "collect", "--config",
                                           str(collector), "--no-store", "--metrics-port", "0"],
                             tmp_path / "collector.log", env={**os.environ, "KUBETRADE_NATS_URL": stack.nats.url})
    process.start()
    try:
        got = stack.providers.telegram.wait_for(lambda m: "btc below 57k" in m["text"], 180, "the rule on Telegram")
    except AssertionError:
        print(stack.api("GET", f"/api/v1/alerts/{made['id']}").json(), history(stack, rule_id=made["id"]),
              [am.alerts() for am in stack.ams], (tmp_path / "collector.log").read_text()[-2000:])
        raise
    finally:
        process.stop()
    params = got[0]["params"]
    assert params["parse_mode"] == "HTML" and str(params["chat_id"]) == str(stack.providers.telegram.chat_id)
    assert "[FIRING] KubetradeUserAlert" in got[0]["text"]
    assert "btc below 57k: price of binance:BTC/USDT crossed &lt; 57000" not in got[0]["text"]
    assert "btc below 57k: price of binance:BTC/USDT crossed < 57000" in got[0]["text"]
    rows = history(stack, rule_id=made["id"])
    firing = [r for r in rows if r["status"] == "firing"]
    assert len(firing) == 1 and 55_000 < firing[0]["value"] < 57_000 and firing[0]["delivery"] == "accepted"
    assert firing[0]["labels"]["channels"] == "telegram"
    assert {d["channel"] for d in firing[0]["deliveries"]} == {"telegram"}
    # it named one channel: nobody else was told
    assert not stack.providers.slack.matching(lambda m: "btc below 57k" in m["text"])


def test_webhook_a_pnl_rule_fires_and_resolves(stack: Stack) -> None:
    made = rule(stack, name="loss on gamma", namespace="alerts", metric="pnl", target="gamma", operator="<",
                threshold=-100, severity="critical", channels=["webhook"], cooldownSeconds=0)
    hook = stack.providers.webhook

    def seen(status: str) -> list[dict[str, Any]]:
        return hook.matching(lambda m: any(a["labels"].get("rule_id") == made["id"] and a["status"] == status
                                           for a in m["body"]["alerts"]))

    until(lambda: (report(stack, "alerts", "gamma", pnl=-150.0), seen("firing"))[1], 120, "the loss on the webhook",
          every=1.0)
    alert = next(a for a in seen("firing")[0]["body"]["alerts"] if a["labels"]["rule_id"] == made["id"])
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["channels"] == "webhook"
    assert alert["annotations"]["summary"] == "loss on gamma: pnl of gamma crossed < -100 (now -150)"
    until(lambda: (report(stack, "alerts", "gamma", pnl=25.0), seen("resolved"))[1], 120, "the resolution",
          every=1.0)
    assert len(seen("firing")) == 1
    rows = history(stack, rule_id=made["id"])
    assert [r["status"] for r in rows] == ["resolved", "firing"]
    assert rows[0]["fingerprint"] == rows[1]["fingerprint"] and rows[0]["startsAt"] == rows[1]["startsAt"]


@pytest.mark.slow
def test_sms_a_breaker_tripped_in_a_real_risk_manager_after_twilio_said_429(stack: Stack, risk: RiskSide) -> None:
    twilio = stack.providers.twilio
    twilio.plan(Answer(429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {"Retry-After": "2"}))
    errors = [OrderEvent(client_order_id=f"err-{i}", strategy="alpha", environment="paper", exchange="binance",
                         symbol="BTC/USDT", side="buy", status="rejected", quantity=0.1, exchange_error=True,
                         reason="binance: -1003 TOO_MANY_REQUESTS", time=int(time.time() * 1000)) for i in range(6)]

    async def burst() -> None:
        import nats

        nc = await nats.connect(stack.nats.url)
        for e in errors:
            await nc.publish(subjects.exchange_errors("paper"), codec.encode(e))
        await nc.drain()

    asyncio.run(burst())
    got = twilio.wait_for(lambda m: "Circuit breaker of default/default (paper) tripped" in m["body"], 180,
                          "the breaker by SMS")
    until(lambda: len(twilio.matching(lambda m: "tripped" in m["body"])) == 2, 60, "both recipients")
    assert sorted(m["to"] for m in twilio.matching(lambda m: "tripped" in m["body"])) == sorted(SMS_TO)
    assert got[0]["from"] == twilio.sender and got[0]["body"].startswith("[FIRING] critical Circuit breaker")
    assert "exchange errors" in got[0]["body"]
    # the recipient that got the 429 was sent to again no sooner than Retry-After said
    posts = [(r.time, r.body) for r in twilio.requests if r.method == "POST"]
    first = posts[0]
    to = urllib.parse.parse_qs(first[1].decode())["To"][0]
    again = [t for t, b in posts[1:] if urllib.parse.parse_qs(b.decode())["To"][0] == to]
    assert again and again[0] - first[0] >= 1.9, "Retry-After was not honoured"
    # the metric rule on the same breaker is inhibited by the event that explains it
    metric = until(lambda: [a for am in stack.ams for a in am.alerts("KubetradeCircuitBreakerTripped")], 120,
                   "the metric alert in Alertmanager")
    assert all(a["status"]["inhibitedBy"] for a in metric)
    rows = until(lambda: [r for r in history(stack, source="platform") if r["name"] == "KubetradeBreakerTripped"
                          and len([d for d in r["deliveries"] if d["channel"] == "sms"]) == 2], 60, "SMS history")
    sms = [d for d in rows[0]["deliveries"] if d["channel"] == "sms"]
    assert {d["state"] for d in sms} == {"sent"} and all(d["providerId"].startswith("SM") for d in sms)
    assert all(d["recipient"].startswith("+49") and "…" in d["recipient"] for d in sms)  # masked
    time.sleep(4)
    assert len(twilio.matching(lambda m: "tripped" in m["body"])) == 2  # one per recipient, once
