"""The operator against the real control plane: children, status, drift, deletion, policies, goals."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path

import nats
import pytest
import yaml

from kubetrade.executor.executor import Executor
from kubetrade.executor.venues import PaperVenue
from kubetrade.ledger import allocation, connection, paperbatch, record
from kubetrade.localstack.servers.processes import ManagedProcess
from kubetrade.localstack.services import kubetrade_argv
from kubetrade.messaging import codec, kv, subjects
from kubetrade.messaging.schemas import OrderRequest, StatusReport
from kubetrade.storage import migrate
from tests.operator.conftest import wait_status

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.kube


def apply(kube, namespace: str, *docs: dict | str) -> None:
    text = "\n---\n".join(d if isinstance(d, str) else yaml.safe_dump(d) for d in docs)
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=text)


def example(name: str) -> dict:
    return yaml.safe_load((REPO / "examples" / name).read_text())


def strategy(name: str, **spec) -> dict:
    doc = example("strategy-ema-rsi.yaml")
    doc["metadata"] = {"name": name}
    doc["spec"].pop("goalRef", None)
    doc["spec"].update(spec)
    return doc


def ready(status: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


def test_strategy_gets_singleton_runner_and_configmap(kube, namespace, operator) -> None:
    apply(kube, namespace, example("riskpolicy.yaml"), strategy("alpha"))
    body = wait_status(kube, "strategy", "alpha", namespace, lambda s, _: s.get("phase") == "Paper" and ready(s))
    status = body["status"]
    assert status["observedGeneration"] == body["metadata"]["generation"]
    assert status["paperSince"]
    assert {c["type"] for c in status["conditions"]} == {"Ready", "Progressing", "Degraded", "RunnerReady"}
    assert "kubetrade.io/finalizer" in body["metadata"]["finalizers"]

    dep = kube.get_json("deployment", "strategy-alpha", "-n", namespace)
    owner = dep["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Strategy",
        "alpha",
        body["metadata"]["uid"],
        True,
    )
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and not pod["automountServiceAccountToken"]
    container = pod["containers"][0]
    assert container["args"] == ["runner", "--config", "/etc/kubetrade/strategy.json"]
    assert container["securityContext"]["readOnlyRootFilesystem"]
    env = {e["name"] for e in container["env"]}
    assert "EXCHANGE_API_KEY" not in env, "paper runners never see exchange credentials"

    cm = kube.get_json("configmap", "strategy-alpha", "-n", namespace)
    resolved = json.loads(cm["data"]["strategy.json"])
    assert resolved["spec"]["symbols"] == ["BTC/USDT"] and resolved["spec"]["execution"]["feeRate"] == 0.001
    assert cm["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]

    events = kube.kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=alpha").stdout
    assert "PhasePaper" in events


def test_live_strategy_mounts_credentials_only_by_secret_reference(kube, namespace, operator) -> None:
    apply(kube, namespace, example("riskpolicy.yaml"), example("strategy-live-eth.yaml"))
    wait_status(kube, "strategy", "eth-ema-crossover", namespace, lambda s, _: s.get("phase") == "Live")
    dep = kube.get_json("deployment", "strategy-eth-ema-crossover", "-n", namespace)
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["EXCHANGE_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "binance-credentials", "key": "apiKey"}
    assert env["EXCHANGE_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "binance-credentials", "key": "secret"}
    assert "value" not in env["EXCHANGE_API_KEY"]


def test_edit_rolls_the_runner(kube, namespace, operator) -> None:
    apply(kube, namespace, example("riskpolicy.yaml"), strategy("beta"))
    wait_status(kube, "strategy", "beta", namespace, lambda s, _: s.get("phase") == "Paper")
    before = kube.get_json("deployment", "strategy-beta", "-n", namespace)
    hash_before = before["spec"]["template"]["metadata"]["annotations"]["kubetrade.io/config-hash"]
    kube.kubectl("patch", "strategy", "beta", "-n", namespace, "--type=merge", "-p", '{"spec":{"timeframe":"15m"}}')
    body = wait_status(kube, "strategy", "beta", namespace, lambda s, b: s.get("observedGeneration") == 2)
    assert body["metadata"]["generation"] == 2
    after = kube.get_json("deployment", "strategy-beta", "-n", namespace)
    assert after["spec"]["template"]["metadata"]["annotations"]["kubetrade.io/config-hash"] != hash_before
    cm = json.loads(kube.get_json("configmap", "strategy-beta", "-n", namespace)["data"]["strategy.json"])
    assert cm["spec"]["timeframe"] == "15m"
    kube.wait_for(
        lambda: len(kube.get_json("replicasets", "-n", namespace, "-l", "kubetrade.io/owner-name=beta")["items"]) == 2,
        30,
        "a second ReplicaSet for the new config",
    )


def test_drift_in_children_is_repaired(kube, namespace, operator) -> None:
    apply(kube, namespace, example("riskpolicy.yaml"), strategy("gamma"))
    wait_status(kube, "strategy", "gamma", namespace, lambda s, _: s.get("phase") == "Paper")
    kube.kubectl("scale", "deployment", "strategy-gamma", "-n", namespace, "--replicas=3")
    kube.wait_for(
        lambda: kube.get_json("deployment", "strategy-gamma", "-n", namespace)["spec"]["replicas"] == 1,
        30,
        "replicas back to 1",
    )
    kube.kubectl(
        "patch", "configmap", "strategy-gamma", "-n", namespace, "--type=merge", "-p", '{"data":{"strategy.json":"{}"}}'
    )
    kube.wait_for(
        lambda: kube.get_json("configmap", "strategy-gamma", "-n", namespace)["data"]["strategy.json"] != "{}",
        30,
        "configmap restored",
    )
    kube.kubectl("delete", "deployment", "strategy-gamma", "-n", namespace)
    kube.wait_for(
        lambda: kube.kubectl("get", "deployment", "strategy-gamma", "-n", namespace, check=False).returncode == 0,
        30,
        "deployment recreated",
    )
    wait_status(kube, "strategy", "gamma", namespace, lambda s, _: s.get("phase") == "Paper" and ready(s))


def test_invalid_semantics_are_rejected_by_the_webhook(kube, namespace, operator) -> None:
    apply(kube, namespace, example("riskpolicy.yaml"))
    cases = [
        (
            strategy(
                "bad-ind",
                genome={"entry": {"rules": [{"left": {"indicator": "nosuch"}, "op": "gt", "right": {"value": 1}}]}},
            ),
            "nosuch",
        ),
        (strategy("bad-exchange", exchange="notanexchange"), "unknown exchange 'notanexchange'"),
        (strategy("bad-perp", market="perpetual"), "is a spot symbol; perpetuals are BASE/QUOTE:SETTLE"),
        (strategy("bad-template", genome=None, template="nosuchtemplate"), "unknown strategy template"),
    ]
    goal = example("goal.yaml")
    goal["spec"]["evolution"]["schedule"] = "61 3 * * *"
    cases.append((goal, "61 outside 0-59"))
    zone = example("goal.yaml")
    zone["spec"]["evolution"]["timeZone"] = "Mars/Olympus"
    cases.append((zone, "unknown time zone"))
    for doc, expected in cases:
        if doc["spec"].get("genome", 1) is None:
            del doc["spec"]["genome"]
        proc = kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc), check=False)
        assert proc.returncode != 0, f"accepted {doc['metadata']['name']}"
        assert "denied the request" in proc.stderr and expected in proc.stderr, proc.stderr


def test_missing_policy_holds_the_runner_back(kube, namespace, operator) -> None:
    apply(kube, namespace, strategy("orphan", riskPolicyRef={"name": "absent"}))
    body = wait_status(
        kube,
        "strategy",
        "orphan",
        namespace,
        lambda s, _: (
            s.get("phase") == "Pending" and any(c["reason"] == "RiskPolicyMissing" for c in s.get("conditions", []))
        ),
    )
    assert "RiskPolicy not found" in body["status"]["message"]
    assert kube.kubectl("get", "deployment", "strategy-orphan", "-n", namespace, check=False).returncode != 0
    policy = example("riskpolicy.yaml")
    policy["metadata"]["name"] = "absent"
    apply(kube, namespace, policy)
    wait_status(kube, "strategy", "orphan", namespace, lambda s, _: s.get("phase") == "Paper")


def test_collector_deployment_and_suspend(kube, namespace, operator) -> None:
    apply(kube, namespace, example("collector-replay.yaml"))
    wait_status(kube, "collector", "replay-binance", namespace, lambda s, _: s.get("phase") == "Running")
    dep = kube.get_json("deployment", "collector-replay-binance", "-n", namespace)
    assert dep["spec"]["template"]["spec"]["containers"][0]["args"][0] == "collect"
    kube.kubectl(
        "patch", "collector", "replay-binance", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":true}}'
    )
    wait_status(kube, "collector", "replay-binance", namespace, lambda s, _: s.get("phase") == "Suspended")
    assert kube.get_json("deployment", "collector-replay-binance", "-n", namespace)["spec"]["replicas"] == 0


def test_goal_gets_its_evolution_cronjob(kube, namespace, operator) -> None:
    apply(kube, namespace, example("riskpolicy.yaml"), example("goal.yaml"))
    wait_status(kube, "goal", "monthly-8pct", namespace, lambda s, _: s.get("cronJob") == "evolve-monthly-8pct")
    cj = kube.get_json("cronjob", "evolve-monthly-8pct", "-n", namespace)
    assert cj["spec"]["schedule"] == "0 3 * * *" and cj["spec"]["timeZone"] == "Etc/UTC"
    assert cj["spec"]["concurrencyPolicy"] == "Forbid"
    args = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["goal-evolution", "--goal", f"{namespace}/monthly-8pct"]
    kube.kubectl(
        "patch",
        "goal",
        "monthly-8pct",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"evolution":{"schedule":"30 4 * * 1-5","suspend":true}}}',
    )
    kube.wait_for(
        lambda: kube.get_json("cronjob", "evolve-monthly-8pct", "-n", namespace)["spec"]["schedule"] == "30 4 * * 1-5",
        30,
        "schedule updated",
    )
    assert kube.get_json("cronjob", "evolve-monthly-8pct", "-n", namespace)["spec"]["suspend"] is True
    binding = kube.get_json("rolebinding", "kubetrade-evolution", "-n", namespace)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "kubetrade-evolution",
    }
    assert binding["subjects"][0]["name"] == "kubetrade-evolution"


async def _kv_value(nats_url: str, key: str):
    nc = await nats.connect(nats_url)
    try:
        kv = await nc.jetstream().key_value(subjects.RISK_POLICY_BUCKET)
        try:
            entry = await kv.get(key)
        except Exception:
            return None
        return json.loads(entry.value)
    finally:
        await nc.close()


async def _report(nats_url: str, report: StatusReport) -> None:
    nc = await nats.connect(nats_url)
    await nc.publish(subjects.status_report(report.kind, report.namespace, report.name), codec.encode(report))
    await nc.flush()
    await nc.close()


def test_risk_policy_is_published_hot_and_breaker_pauses_strategies(kube, namespace, operator, nats_url) -> None:
    apply(kube, namespace, example("riskpolicy.yaml"), strategy("delta"))
    wait_status(kube, "riskpolicy", "default", namespace, lambda s, _: s.get("publishedRevision"))
    key = f"{namespace}.default"
    value = asyncio.run(_kv_value(nats_url, key))
    assert value["generation"] == 1 and value["spec"]["strategyLimits"]["maxPositionPct"] == 0.2

    kube.kubectl(
        "patch",
        "riskpolicy",
        "default",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"strategyLimits":{"maxPositionPct":0.1}}}',
    )
    wait_status(kube, "riskpolicy", "default", namespace, lambda s, _: s.get("observedGeneration") == 2)
    assert asyncio.run(_kv_value(nats_url, key))["spec"]["strategyLimits"]["maxPositionPct"] == 0.1

    wait_status(kube, "strategy", "delta", namespace, lambda s, _: s.get("phase") == "Paper")
    asyncio.run(
        _report(
            nats_url,
            StatusReport(
                kind="RiskPolicy",
                namespace=namespace,
                name="default",
                time=int(time.time() * 1000),
                status={
                    "breaker": {"state": "Open", "reason": "maxDrawdownPct", "since": "2026-01-01T00:00:00Z"},
                    "currentDrawdown": 0.16,
                },
            ),
        )
    )
    body = wait_status(kube, "strategy", "delta", namespace, lambda s, _: s.get("phase") == "Paused")
    assert "maxDrawdownPct" in body["status"]["message"]
    assert kube.get_json("riskpolicy", "default", "-n", namespace)["status"]["currentDrawdown"] == 0.16
    asyncio.run(
        _report(
            nats_url,
            StatusReport(
                kind="RiskPolicy",
                namespace=namespace,
                name="default",
                time=int(time.time() * 1000),
                status={"breaker": {"state": "Closed"}},
            ),
        )
    )
    wait_status(kube, "strategy", "delta", namespace, lambda s, _: s.get("phase") == "Paper")

    kube.kubectl(
        "patch",
        "riskpolicy",
        "default",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"circuitBreaker":{"killSwitch":true}}}',
    )
    body = wait_status(kube, "strategy", "delta", namespace, lambda s, _: s.get("phase") == "Paused")
    assert "kill switch" in body["status"]["message"]

    kube.kubectl("delete", "riskpolicy", "default", "-n", namespace)
    kube.wait_for(lambda: asyncio.run(_kv_value(nats_url, key)) is None, 30, "policy unpublished")


def test_runner_reports_reach_the_status_and_bad_reports_are_dead_lettered(kube, namespace, operator, nats_url) -> None:
    apply(kube, namespace, example("riskpolicy.yaml"), strategy("epsilon"))
    wait_status(kube, "strategy", "epsilon", namespace, lambda s, _: s.get("phase") == "Paper")
    asyncio.run(
        _report(
            nats_url,
            StatusReport(
                kind="Strategy",
                namespace=namespace,
                name="epsilon",
                time=int(time.time() * 1000),
                status={"pnl": 42.5, "sharpe": 1.9, "drawdown": 0.02, "trades": 7, "phase": "Live", "equity": 2042.5},
            ),
        )
    )
    body = wait_status(kube, "strategy", "epsilon", namespace, lambda s, _: s.get("trades") == 7)
    assert body["status"]["pnl"] == 42.5 and body["status"]["phase"] == "Paper", "phase is the operator's"
    row = kube.kubectl("get", "strategy", "epsilon", "-n", namespace, "--no-headers").stdout.split()
    assert row[1:7] == ["paper", "Paper", "42.5", "1.9", "0.02", "7"]

    async def bad_report() -> tuple[bytes, dict]:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        sub = await js.subscribe("dlq.status.>", ordered_consumer=True)
        await nc.publish(subjects.status_report("Strategy", namespace, "epsilon"), b'{"kind":"Strategy","oops":1}')
        msg = await sub.next_msg(timeout=20)
        await nc.close()
        return msg.data, dict(msg.headers or {})

    data, headers = asyncio.run(bad_report())
    assert data == b'{"kind":"Strategy","oops":1}'
    assert "StatusReport" in headers["Kubetrade-Dlq-Reason"]
    assert 'kubetrade_operator_status_reports_total{kind="Strategy",result="applied"}' in operator.metrics()


def _order(coid: str, namespace: str, kind: str, price: float) -> OrderRequest:
    return OrderRequest(
        client_order_id=coid,
        strategy="zeta",
        namespace=namespace,
        environment="paper",
        exchange="binance",
        symbol="BTC/USDT",
        side="buy",
        type=kind,
        quantity=0.01,
        price=price,
        time=int(time.time() * 1000),
    )


def test_deletion_closes_positions_through_the_executor(kube, namespace, operator, nats_url, pg_server) -> None:
    """Deleting a Strategy closes its positions through a real paper executor (real NATS and PostgreSQL):
    its resting order cancelled, its position closed by a reduce-only order that took the ordinary path."""
    apply(kube, namespace, example("riskpolicy.yaml"), strategy("zeta"), strategy("eta"))
    wait_status(kube, "strategy", "zeta", namespace, lambda s, _: s.get("phase") == "Paper")
    wait_status(kube, "strategy", "eta", namespace, lambda s, _: s.get("phase") == "Paper")

    # No executor answers: deletion waits and says why, in the status and in an Event.
    kube.kubectl("delete", "strategy", "eta", "-n", namespace, "--wait=false")
    body = wait_status(kube, "strategy", "eta", namespace, lambda s, _: "deletion waits" in (s.get("message") or ""))
    assert body["metadata"]["deletionTimestamp"]
    kube.wait_for(
        lambda: (
            "CloseBlocked"
            in kube.kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=eta").stdout
        ),
        30,
        "CloseBlocked event",
    )

    async def scenario() -> dict[str, str]:
        # a real paper executor with its own database: zeta holds a filled position and a resting order
        dsn = pg_server.create_database(f"kt_close_{uuid.uuid4().hex[:8]}")
        migrate.apply(dsn)
        conn = await connection.connect(dsn)
        await allocation.allocate(conn, "paper", "zeta", 10_000.0, namespace=namespace, risk_policy="default")
        venue = PaperVenue()
        venue.on_price("binance", "BTC/USDT", 50_000.0)
        held = _order("zeta-entry", namespace, "market", 50_000.0)
        assert await paperbatch.record_and_fill(conn, venue, held, int(time.time() * 1000)) is not None
        await record.record_new(conn, _order("zeta-resting", namespace, "limit", 40_000.0))
        executor = Executor("paper", dsn, nats_url, venue, sync_seconds=0.3)
        serving = asyncio.create_task(executor.run())
        try:
            while not executor.ready.is_set():
                assert not serving.done(), serving.exception()
                await asyncio.sleep(0.05)
            await asyncio.to_thread(kube.kubectl, "delete", "strategy", "zeta", "-n", namespace, "--timeout=60s")
            for _ in range(300):  # the close goes through JetStream and the executor like any order
                cur = await conn.execute(
                    "SELECT client_order_id, status FROM orders WHERE strategy = 'zeta' ORDER BY id"
                )
                statuses = {r["client_order_id"]: r["status"] for r in await cur.fetchall()}
                position = await (
                    await conn.execute("SELECT quantity FROM positions WHERE strategy = 'zeta'")
                ).fetchone()
                if len(statuses) == 3 and position is not None and position["quantity"] == 0:
                    return statuses
                await asyncio.sleep(0.1)
            raise AssertionError(f"zeta not closed: {statuses}, position {position}")
        finally:
            executor.stopping.set()
            await asyncio.wait_for(serving, 30)
            await conn.close()

    statuses = asyncio.run(scenario())
    assert statuses["zeta-entry"] == "filled" and statuses["zeta-resting"] == "cancelled"
    (close,) = (c for c in statuses if c.startswith("close-"))
    assert statuses[close] == "filled"
    assert kube.kubectl("get", "strategy", "zeta", "-n", namespace, check=False).returncode != 0
    kube.wait_for(
        lambda: (
            "cancelled 1 orders, closed 1 positions"
            in kube.kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=zeta").stdout
        ),
        30,
        "PositionsClosed",
    )
    kube.wait_for(
        lambda: kube.kubectl("get", "deployment", "strategy-zeta", "-n", namespace, check=False).returncode != 0,
        60,
        "the runner garbage-collected with its Strategy",
    )

    # The escape hatch, for an executor that is gone for good.
    kube.kubectl("annotate", "strategy", "eta", "-n", namespace, "kubetrade.io/skip-close-on-delete=true")
    kube.wait_for(
        lambda: kube.kubectl("get", "strategy", "eta", "-n", namespace, check=False).returncode != 0,
        60,
        "eta deleted after the skip annotation",
    )


def test_goal_review_promotes_and_retires_by_the_rules(kube, namespace, operator, nats_url, tmp_path) -> None:
    """A controlled set of paper strategies with known performance; the review applies the documented rules,
    and the goal manager (its own process, as in a deployment) reports the goal's figures into its status.

    Each runner report carries its paper check (paper against a backtest of the same bars): "drifting"
    has the best paper Sharpe, but its trades do not match the backtest's, so the live gate keeps it
    in paper.
    """
    manager = ManagedProcess("goal-manager", kubetrade_argv("goal-manager", "--interval", "2"),
                             tmp_path / "goal-manager.log",
                             env={**os.environ, "KUBECONFIG": str(kube.kubeconfig), "KUBETRADE_NATS_URL": nats_url})
    manager.start()
    try:
        _goal_review(kube, namespace, nats_url)
    finally:
        manager.stop()


def _goal_review(kube, namespace, nats_url) -> None:
    apply(kube, namespace, example("riskpolicy.yaml"))
    perf = {
        "star": {"sharpe": 2.6, "trades": 14, "maxDrawdown": 0.04, "pnl": 90.0},
        "solid": {"sharpe": 1.8, "trades": 11, "maxDrawdown": 0.06, "pnl": 40.0},
        "third": {"sharpe": 1.4, "trades": 12, "maxDrawdown": 0.05, "pnl": 20.0},
        "loser": {"sharpe": -0.7, "trades": 12, "maxDrawdown": 0.08, "pnl": -60.0},
        "unsure": {"sharpe": 0.6, "trades": 4, "maxDrawdown": 0.02, "pnl": 3.0},
        "drifting": {"sharpe": 3.0, "trades": 12, "maxDrawdown": 0.03, "pnl": 70.0},
    }
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 10 * 86400))
    for name, fields in perf.items():
        paper = {"trades": fields["trades"], "returnPct": fields["pnl"] / 1000, "sharpe": fields["sharpe"],
                 "maxDrawdown": fields["maxDrawdown"]}
        backtest = paper | ({"trades": 15} if name == "drifting" else {})
        fields["paperCheck"] = {"since": since, "bars": 2880, "paper": paper, "backtest": backtest,
                                "matchedTrades": 10 if name == "drifting" else fields["trades"]}
    for name in perf:
        doc = strategy(name)
        doc["metadata"]["labels"] = {"kubetrade.io/goal": "review-me"}
        apply(kube, namespace, doc)
    for name, fields in perf.items():
        wait_status(kube, "strategy", name, namespace, lambda s, _: s.get("phase") == "Paper")
        asyncio.run(
            _report(
                nats_url,
                StatusReport(
                    kind="Strategy",
                    namespace=namespace,
                    name=name,
                    time=int(time.time() * 1000),
                    status=fields,
                ),
            )
        )
        wait_status(kube, "strategy", name, namespace, lambda s, _, t=fields["trades"]: s.get("trades") == t)

    goal = example("goal.yaml")
    goal["metadata"] = {"name": "review-me"}
    goal["spec"]["strategySelector"] = {"matchLabels": {"kubetrade.io/goal": "review-me"}}
    goal["spec"]["evolution"].update({"minPaperDays": 0, "maxLive": 2})
    goal["spec"]["review"] = {
        "intervalSeconds": 3600,
        "promote": {"minSharpe": 1.0, "maxDrawdownPct": 0.1, "minTrades": 10},
    }
    goal["spec"]["liveCredentialsSecretRef"] = {"name": "binance-credentials"}
    apply(kube, namespace, goal)

    body = wait_status(kube, "goal", "review-me", namespace,
                       lambda s, _: s.get("lastReview") and s.get("sizingMultiplier") is not None)
    review_status = body["status"]["lastReview"]
    assert (review_status["promoted"], review_status["retired"]) == (2, 1), review_status

    def spec_of(name: str) -> dict:
        return kube.get_json("strategy", name, "-n", namespace)["spec"]

    assert (
        spec_of("star")["mode"] == "live" and spec_of("star")["credentialsSecretRef"]["name"] == "binance-credentials"
    )
    assert spec_of("solid")["mode"] == "live"
    assert spec_of("third")["mode"] == "paper", "maxLive 2 leaves the third candidate in paper"
    assert spec_of("loser")["retired"] is True
    assert spec_of("unsure")["mode"] == "paper" and not spec_of("unsure").get("retired")
    assert spec_of("drifting")["mode"] == "paper" and not spec_of("drifting").get("retired")
    assert kube.get_json("strategy", "drifting", "-n", namespace)["status"]["paperCheck"]["matchedTrades"] == 10

    wait_status(kube, "strategy", "star", namespace, lambda s, _: s.get("phase") == "Live")
    wait_status(kube, "strategy", "loser", namespace, lambda s, _: s.get("phase") == "Retired")
    kube.wait_for(
        lambda: kube.get_json("deployment", "strategy-loser", "-n", namespace)["spec"]["replicas"] == 0,
        30,
        "the retired runner scaled to zero",
    )
    events = kube.kubectl("get", "events", "-n", namespace).stdout
    assert events.count("PromotedToLive") >= 4  # one on each strategy, one on the goal, per promotion
    assert "Retired" in events and "paper Sharpe -0.70 < 0.0" in events
    counts = body["status"]["phaseCounts"]
    assert counts["live"] == 2 and counts["paper"] == 4
    assert body["status"]["returnPct"] is not None and "onTrack" in body["status"]
    multiplier = body["status"]["sizingMultiplier"]
    assert 0 < multiplier <= 1.5

    async def published() -> float:
        nc = await nats.connect(nats_url)
        try:
            bucket = await nc.jetstream().key_value(kv.GOAL_SIZING_BUCKET)
            entry = await bucket.get(kv.goal_sizing_key(namespace, "review-me"))
            return codec.decode(kv.GoalSizingEntry, entry.value).multiplier
        finally:
            await nc.close()

    # the goal manager publishes every round: the status and the bucket agree once both show one round
    kube.wait_for(lambda: asyncio.run(published()) == kube.get_json("goal", "review-me", "-n", namespace)[
        "status"]["sizingMultiplier"], 30, "the bucket's multiplier equal to the status's")
    assert multiplier > 0, "runners read the same multiplier the status shows"


def test_a_goal_asking_for_rl_policies_trains_them_in_the_training_image(kube, namespace, operator) -> None:
    """sources [genomes, rl]: the Goal's evolution job is its training job - the training image (JAX), more
    memory and time (one CPU requested, as for the evolution: schedulable on a two-CPU node), component label
    training - in the Goal's namespace, owned by it; back to [genomes], the runtime image again."""
    goal = example("goal.yaml")
    goal["metadata"]["name"] = "learns"
    goal["spec"]["evolution"]["sources"] = ["genomes", "rl"]
    goal["spec"]["evolution"]["rl"] = {"timesteps": 8192, "checkpoints": 8}
    apply(kube, namespace, example("riskpolicy.yaml"), goal)
    body = wait_status(kube, "goal", "learns", namespace, lambda s, _: s.get("cronJob") == "evolve-learns")
    ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["message"].startswith(
        "evolution training PPO policies (sources: rl) scheduled")
    cj = kube.get_json("cronjob", "evolve-learns", "-n", namespace)
    assert cj["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
    assert cj["metadata"]["labels"]["app.kubernetes.io/component"] == "training"
    job = cj["spec"]["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "kubetrade-train:test"
    assert container["args"] == ["goal-evolution", "--goal", f"{namespace}/learns"]
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert container["resources"]["limits"] == {"memory": "6Gi"}
    assert job["activeDeadlineSeconds"] == 6 * 3600
    assert pod["serviceAccountName"] == "kubetrade-evolution" and pod["securityContext"]["runAsNonRoot"] is True
    kube.kubectl("patch", "goal", "learns", "-n", namespace, "--type=json", "-p",
                 '[{"op": "replace", "path": "/spec/evolution/sources", "value": ["genomes"]},'
                 ' {"op": "remove", "path": "/spec/evolution/rl"}]')
    kube.wait_for(lambda: kube.get_json("cronjob", "evolve-learns", "-n", namespace)["spec"]["jobTemplate"]["spec"][
        "template"]["spec"]["containers"][0]["image"] == "kubetrade:test", 30, "back to the runtime image")
    cj = kube.get_json("cronjob", "evolve-learns", "-n", namespace)
    assert cj["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 3 * 3600
    # a Goal the API server refuses: rl settings without rl among the sources, or too few timesteps
    for evolution, message in ((({"rl": {"checkpoints": 4}}), "evolution.rl is set but evolution.sources"),
                               ({"sources": ["rl"], "rl": {"timesteps": 512, "checkpoints": 8}},
                                "timesteps must be at least checkpoints x 128"),
                               ({"sources": ["rl", "rl"]}, "Duplicate value")):
        bad = example("goal.yaml")
        bad["metadata"]["name"] = "refused"
        bad["spec"]["evolution"].update(evolution)
        out = kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
        assert out.returncode != 0 and message in out.stderr, (evolution, out.stderr)


def test_a_goal_with_a_predictor_trains_it_in_the_training_image(kube, namespace, operator) -> None:
    """spec.evolution.predictor (genomes only otherwise): the evolution job trains the LSTM-Transformer, so it is
    the training job from the training image; without the predictor, the runtime image again.  Nonsense
    combinations are refused by the API server, naming the field."""
    goal = example("goal.yaml")
    goal["metadata"]["name"] = "predicts"
    goal["spec"]["evolution"]["predictor"] = {"window": 8, "hidden": 8, "epochs": 4}
    apply(kube, namespace, example("riskpolicy.yaml"), goal)
    body = wait_status(kube, "goal", "predicts", namespace, lambda s, _: s.get("cronJob") == "evolve-predicts")
    ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["message"].startswith(
        "evolution training the LSTM-Transformer predictor (predictor) scheduled"), ready
    cj = kube.get_json("cronjob", "evolve-predicts", "-n", namespace)
    assert cj["metadata"]["labels"]["app.kubernetes.io/component"] == "training"
    job = cj["spec"]["jobTemplate"]["spec"]
    (container,) = job["template"]["spec"]["containers"]
    assert container["image"] == "kubetrade-train:test"
    assert container["args"] == ["goal-evolution", "--goal", f"{namespace}/predicts"]
    assert job["activeDeadlineSeconds"] == 6 * 3600
    stored = kube.get_json("goal", "predicts", "-n", namespace)["spec"]["evolution"]["predictor"]
    assert stored == {"window": 8, "hidden": 8, "heads": 2, "layers": 1, "horizon": 1, "epochs": 4}  # defaults filled
    kube.kubectl("patch", "goal", "predicts", "-n", namespace, "--type=json", "-p",
                 '[{"op": "remove", "path": "/spec/evolution/predictor"}]')
    kube.wait_for(lambda: kube.get_json("cronjob", "evolve-predicts", "-n", namespace)["spec"]["jobTemplate"][
        "spec"]["template"]["spec"]["containers"][0]["image"] == "kubetrade:test", 30, "back to the runtime image")
    for evolution, message in (({"sources": ["rl"], "predictor": {}}, "a predictor needs genomes in sources"),
                               ({"predictor": {"hidden": 6, "heads": 4}}, "must be a multiple of heads"),
                               ({"predictor": {"window": 1000}}, "spec.evolution.predictor.window"),
                               ({"predictor": {"epochs": 0}}, "spec.evolution.predictor.epochs"),
                               ({"predictor": {"lstm": 3}}, "lstm"),
                               ({"sources": ["genomes", "rl"], "rl": {"observePrediction": True}},
                                "observePrediction")):
        bad = example("goal.yaml")
        bad["metadata"]["name"] = "refused-predictor"
        bad["spec"]["evolution"].update(evolution)
        out = kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
        assert out.returncode != 0 and message in out.stderr, (evolution, out.stderr)
