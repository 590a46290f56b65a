"""The operator's pure decisions: review rules, phases, child objects, cron checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from kubetrade.lifecycle.progress import progress
from kubetrade.lifecycle.review import PolicyGate, StrategyView, review
from kubetrade.resources import Collector, Goal, Strategy
from kubetrade.resources.strategy import PaperCheck, PeriodResult
from kubetrade.validation.semantic import cron_problems, strategy_problems
from kubetrade_operator import builders
from kubetrade_operator.conditions import set_condition
from kubetrade_operator.config import OperatorConfig
from kubetrade_operator.phases import StrategyObservation, judge
from kubetrade_operator.runnerpods import RunnerState

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def goal(**evolution) -> Goal:
    doc = yaml.safe_load((REPO / "examples" / "goal.yaml").read_text())
    doc["spec"]["evolution"].update(evolution)
    return Goal.parse(doc)


def view(name: str, phase: str = "Paper", days: float = 10, *, check: bool = True, check_days: float | None = None,
         backtest: dict | None = None, matched: int | None = None, **kw) -> StrategyView:
    """A strategy whose paper period, by default, agrees trade for trade with a backtest of the same bars."""
    base = {"sharpe": 1.5, "max_drawdown": 0.05, "trades": 20, "return_pct": 0.03, "backtest_sharpe": 1.8}
    base.update(kw)
    paper = PeriodResult(trades=base["trades"], return_pct=base["return_pct"], sharpe=base["sharpe"],
                         max_drawdown=base["max_drawdown"])
    same = paper.model_copy(update=backtest or {})
    pc = PaperCheck(since=NOW - timedelta(days=days if check_days is None else check_days), bars=2000, paper=paper,
                    backtest=same, matched_trades=base["trades"] if matched is None else matched) if check else None
    return StrategyView(name=name, phase=phase, since=NOW - timedelta(days=days), paper_check=pc, **base)


OPEN = PolicyGate(True)


def decide(views, gate=OPEN, credentials=True, **evolution):
    g = goal(**evolution).spec
    return {d.name: (d.action, d.reason) for d in review(views, g.review, g.evolution, 0.15, gate, credentials, NOW)}


def test_best_candidates_fill_the_live_slots_in_sharpe_order() -> None:
    out = decide([view("a", sharpe=1.2), view("b", sharpe=2.5), view("c", sharpe=1.9)], maxLive=2)
    assert out["b"][0] == "promote" and out["c"][0] == "promote"
    assert out["a"] == ("candidate", out["a"][1]) and "maxLive 2 reached" in out["a"][1]


def test_live_strategies_take_slots_and_weak_ones_retire() -> None:
    views = [view("live-ok", "Live", sharpe=1.1), view("live-bad", "Live", sharpe=-0.4), view("p", sharpe=2.0)]
    out = decide(views, maxLive=2)
    assert out["live-ok"][0] == "keep"
    assert out["live-bad"][0] == "retire" and "live Sharpe -0.40" in out["live-bad"][1]
    assert out["p"][0] == "promote"  # the retired one freed a slot


def test_live_drawdown_beyond_tolerance_retires() -> None:
    out = decide([view("deep", "Live", sharpe=2.0, max_drawdown=0.2)])
    assert out["deep"][0] == "retire" and "drawdown 20.0%" in out["deep"][1]


def test_young_paper_strategies_keep_trading() -> None:
    out = decide([view("young", days=2, sharpe=5)], minPaperDays=7)
    assert out["young"] == ("keep", "paper for 2.0 of 7 days")


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"sharpe": 0.5}, "paper Sharpe 0.50 < 1.00"),
        ({"max_drawdown": 0.12}, "paper drawdown 12.0% > 10.0%"),
        ({"trades": 3}, "3 paper trades < 10"),
        ({"return_pct": -0.01}, "paper return -1.00% < +0.00%"),
        ({"sharpe": 1.1, "backtest_sharpe": 3.0}, "trails the Sharpe it was selected on (3.00)"),
        ({"sharpe": None}, "no paper Sharpe ratio yet"),
        # the paper period must agree with a backtest of the same bars
        ({"check": False}, "no paper check yet"),
        ({"matched": 18}, "paper made 20 trades and the backtest of the same bars 20, 18 alike: 2 unmatched"),
        ({"backtest": {"trades": 23}, "matched": 20}, "3 unmatched > maxTradeMismatch 0"),
        ({"backtest": {"return_pct": 0.06}}, "paper return +3.00% and the backtest's +6.00% are more than 2.00% "
                                             "apart"),
        ({"check_days": 3}, "covers 3.0 days < minCheckDays 7"),
    ],
)
def test_each_promotion_criterion_blocks(kw, why) -> None:
    action, reason = decide([view("x", **kw)])["x"]
    assert action == "keep" and why in reason


def test_paper_period_ends_in_retirement() -> None:
    out = decide([view("old", days=15, sharpe=0.5)], maxPaperDays=14)
    assert out["old"][0] == "retire" and "paper period over" in out["old"][1]
    out = decide([view("losing", days=8, sharpe=-1.0)])
    assert out["losing"][0] == "retire" and "paper Sharpe -1.00 < 0.0" in out["losing"][1]


@pytest.mark.parametrize(
    ("gate", "credentials", "why"),
    [
        (PolicyGate(False, "kill switch on"), True, "risk policy does not allow live trading: kill switch on"),
        (PolicyGate(True), False, "no liveCredentialsSecretRef"),
    ],
)
def test_promotion_needs_policy_and_credentials(gate, credentials, why) -> None:
    action, reason = decide([view("best", sharpe=3)], gate=gate, credentials=credentials)["best"]
    assert action == "candidate" and why in reason


def test_other_phases_are_left_alone() -> None:
    assert decide([view("p", "Paused"), view("r", "Retired"), view("f", "Failed")]) == {}


def test_progress_against_compounding_target() -> None:
    target = goal().spec.target  # +8 % a month on 10,000
    start = (NOW - timedelta(days=365.25 / 12)).date()
    on = progress(target, 10_800, start, NOW)
    assert on.expected_return_pct == pytest.approx(0.08, abs=0.003)  # start is a date: up to a day more
    assert on.on_track and on.progress_pct == pytest.approx(1.0, abs=0.05)
    behind = progress(target, 10_300, start, NOW)  # 3 % of an expected 8 %, tolerance 25 %
    assert not behind.on_track
    fresh = progress(target, 9_990, NOW.date(), NOW)
    assert fresh.on_track and fresh.progress_pct is None


def test_phase_judgement() -> None:
    base = {"generation": 3, "mode": "paper", "paused": False, "retired": False}
    assert judge(StrategyObservation(**base, available_replicas=1, updated_replicas=1), None).phase == "Paper"
    assert judge(StrategyObservation(**base), None).phase == "Pending"
    failed = judge(StrategyObservation(**base, problems=["genome does not compile: x"]), None)
    assert failed.phase == "Failed" and failed.message == "genome does not compile: x"
    assert {c["type"]: c["status"] for c in failed.conditions} == {
        "Ready": "False",
        "Degraded": "True",
        "RunnerReady": "False",
        "Progressing": "False",
    }
    paused = judge(
        StrategyObservation(
            **base, breaker_open=True, breaker_reason="maxDrawdownPct", available_replicas=1, updated_replicas=1
        ),
        None,
    )
    assert paused.phase == "Paused" and "maxDrawdownPct" in paused.message
    assert all(c["observedGeneration"] == 3 for c in paused.conditions)


def test_a_runner_pod_fault_is_the_strategys_message_and_conditions() -> None:
    """What the runner's pods say (runnerpods.RunnerState) reaches the phase message, Ready,
    Degraded and RunnerReady while the runner is not available - and nothing once it is."""
    base = {"generation": 2, "mode": "paper", "paused": False, "retired": False}
    missing = RunnerState("SecretMissing", "pod p-1: Secret ns/kt-db not found (needed by KUBETRADE_DATABASE_URL)")
    verdict = judge(StrategyObservation(**base, runner_pod=missing), None)
    conds = {c["type"]: c for c in verdict.conditions}
    assert verdict.phase == "Pending" and verdict.message == f"runner cannot run: {missing.message}"
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "SecretMissing")
    assert (conds["Degraded"]["status"], conds["Degraded"]["reason"], conds["Degraded"]["message"]) == (
        "True", "SecretMissing", missing.message)
    assert (conds["RunnerReady"]["status"], conds["RunnerReady"]["reason"]) == ("False", "SecretMissing")

    starting = judge(StrategyObservation(**base, runner_pod=RunnerState("Starting", "pod p-1 is starting")), None)
    conds = {c["type"]: c for c in starting.conditions}
    assert starting.message == "waiting for the runner to become ready"  # a state, not a fault
    assert conds["Degraded"]["status"] == "False" and conds["RunnerReady"]["reason"] == "Starting"

    fixed = judge(StrategyObservation(**base, available_replicas=1, updated_replicas=1), verdict.conditions)
    conds = {c["type"]: c for c in fixed.conditions}
    assert fixed.phase == "Paper" and conds["Degraded"]["status"] == "False"
    assert (conds["RunnerReady"]["status"], conds["RunnerReady"]["reason"]) == ("True", "PodReady")


def test_condition_transition_time_moves_only_on_change() -> None:
    first = set_condition(None, "Ready", True, "A", "", 1, now="2026-01-01T00:00:00Z")
    same = set_condition(first, "Ready", True, "B", "again", 2, now="2026-02-01T00:00:00Z")
    flipped = set_condition(same, "Ready", False, "C", "", 3, now="2026-03-01T00:00:00Z")
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z" and same[0]["reason"] == "B"
    assert flipped[0]["lastTransitionTime"] == "2026-03-01T00:00:00Z"


def test_long_names_stay_valid_for_kubernetes() -> None:
    name = "s-" + "x" * 120
    assert len(builders.child_name("strategy", name)) <= 52
    assert len(builders.label_value(name)) <= 63
    assert builders.child_name("strategy", name) != builders.child_name("strategy", name + "y")


def test_paused_runner_keeps_running_and_retired_one_stops() -> None:
    doc = yaml.safe_load((REPO / "examples" / "strategy-ema-rsi.yaml").read_text())
    cfg = OperatorConfig()
    doc["spec"]["paused"] = True
    _, dep = builders.strategy_children("s", "ns", "uid-1", 1, Strategy.parse(doc).spec, cfg)
    assert dep["spec"]["replicas"] == 1
    doc["spec"]["retired"] = True
    _, dep = builders.strategy_children("s", "ns", "uid-1", 2, Strategy.parse(doc).spec, cfg)
    assert dep["spec"]["replicas"] == 0


def test_a_runner_that_streams_its_genome_is_sized_for_it() -> None:
    """The scheduler packs pods by their requests: a streamed runner (no numba) asks for what it uses
    (bench runner_footprint, bench node), so 200 fit an 8 GiB node; a kernel runner keeps the larger size."""
    doc = yaml.safe_load((REPO / "examples" / "strategy-ema-rsi.yaml").read_text())
    spec = Strategy.parse(doc).spec
    assert builders.runner_streams(spec)
    _, dep = builders.strategy_children("s", "ns", "uid-1", 1, spec, OperatorConfig())
    res = dep["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res == {"requests": {"cpu": "10m", "memory": "40Mi"}, "limits": {"memory": "256Mi"}}
    assert 8 * 1024 // int(res["requests"]["memory"].removesuffix("Mi")) >= 200
    doc["spec"]["genome"] = {"entry": {"rules": [{"left": {"indicator": "prediction"}, "op": "gt",
                                                  "right": {"value": 0.001}}]}}
    doc["spec"]["model"] = {"uri": "file:///models/m.onnx"}
    doc["spec"].pop("template", None)
    kernel = Strategy.parse(doc).spec
    assert not builders.runner_streams(kernel)
    _, dep = builders.strategy_children("s", "ns", "uid-1", 1, kernel, OperatorConfig())
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"] == builders.DEFAULT_RESOURCES
    _, collector = builders.collector_children("c", "ns", "uid-2", 1, _collector_spec(), OperatorConfig())
    assert collector["spec"]["template"]["spec"]["containers"][0]["resources"] == builders.DEFAULT_RESOURCES


def _collector_spec():  # type: ignore[no-untyped-def]
    return Collector.parse(yaml.safe_load((REPO / "examples" / "collector-replay.yaml").read_text())).spec


def test_semantic_checks() -> None:
    assert cron_problems("0 3 * * *") == []
    assert cron_problems("0 25 * * *") == ["hour '25': 25 outside 0-23"]
    assert cron_problems("TZ=UTC 0 3 * * *") == ["time zones go in timeZone, not in the schedule"]
    doc = yaml.safe_load((REPO / "examples" / "strategy-ema-rsi.yaml").read_text())
    assert strategy_problems(Strategy.parse(doc).spec) == []
    doc["spec"]["genome"]["entry"]["rules"][0]["left"] = {"indicator": "rsi", "params": {"period": 0}}
    problems = strategy_problems(Strategy.parse(doc).spec)
    assert len(problems) == 1 and problems[0].startswith("genome does not compile") and "period" in problems[0]


def test_admission_reviews() -> None:
    from kubetrade_operator.admission import ENDPOINTS, SPEC_CHANGED, configuration, review

    doc = yaml.safe_load((REPO / "examples" / "strategy-ema-rsi.yaml").read_text())

    def ask(path: str, obj: dict) -> dict:
        request = {"uid": "u1", "operation": "CREATE", "object": obj}
        return review(path, {"apiVersion": "admission.k8s.io/v1", "request": request})["response"]

    assert ask("/validate/strategies", doc) == {"uid": "u1", "allowed": True}
    bad = {**doc, "spec": {**doc["spec"], "exchange": "notanexchange"}}
    refused = ask("/validate/strategies", bad)
    assert not refused["allowed"] and "unknown exchange 'notanexchange'" in refused["status"]["message"]
    assert refused["status"]["code"] == 422

    config = configuration("https://127.0.0.1:9443", "Q0E=")
    urls = {w["clientConfig"]["url"] for w in config["webhooks"]}
    assert urls == {f"https://127.0.0.1:9443{e}" for e in ENDPOINTS} and len(ENDPOINTS) == 4
    assert all(w["matchConditions"][0]["expression"] == SPEC_CHANGED for w in config["webhooks"])


def test_strategy_change_detection_follows_the_observed_generation() -> None:
    import kopf

    from kubetrade_operator.persistence import ObservedGenerationDiffBase

    store = ObservedGenerationDiffBase(kopf.AnnotationsDiffBaseStorage(prefix="kubetrade.io", key="last-handled"))

    def body(generation: int, observed: int | None, **meta) -> kopf.Body:
        status = {} if observed is None else {"observedGeneration": observed}
        metadata = {"name": "s", "generation": generation, **meta}
        return kopf.Body(
            {"apiVersion": "kubetrade.io/v1alpha1", "kind": "Strategy", "metadata": metadata, "status": status}
        )

    assert store.fetch(body=body(1, None)) is None  # never handled: a creation
    same = body(2, 2, labels={"edited": "yes"})
    assert store.fetch(body=same) == store.build(body=same)  # labels alone: no change
    edited = body(3, 2)
    assert store.fetch(body=edited) != store.build(body=edited)  # a new generation: an update
    goal = kopf.Body(
        {"apiVersion": "kubetrade.io/v1alpha1", "kind": "Goal", "metadata": {"generation": 1}, "spec": {"y": 2}}
    )
    assert store.build(body=goal)["spec"] == {"y": 2}  # the other kubetrade kinds keep the full essence
    runner = kopf.Body({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generation": 4}, "spec": {}})
    assert store.build(body=runner) == {"generation": 4}  # only watched: nothing compares it


def test_children_connect_to_nats_as_their_own_role() -> None:
    """Runners and collectors read their role's NATS password from that role's Secret, nothing else."""
    from dataclasses import replace

    from kubetrade.resources import Collector
    from kubetrade_operator.config import OperatorConfig

    cfg = replace(OperatorConfig(), nats_secret_prefix="kt-nats-")
    doc = yaml.safe_load((REPO / "examples" / "strategy-ema-rsi.yaml").read_text())
    _, runner = builders.strategy_children("s", "ns", "uid-1", 1, Strategy.parse(doc).spec, cfg)
    col = yaml.safe_load((REPO / "examples" / "collector-replay.yaml").read_text())
    _, collector = builders.collector_children("c", "ns", "uid-2", 1, Collector.parse(col).spec, cfg)
    for dep, role in ((runner, "runner"), (collector, "collector")):
        env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["KUBETRADE_NATS_USER"]["value"] == role
        assert env["KUBETRADE_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": f"kt-nats-{role}",
                                                                             "key": "password"}
    _, open_nats = builders.strategy_children("s", "ns", "uid-1", 1, Strategy.parse(doc).spec, OperatorConfig())
    names = {e["name"] for e in open_nats["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "KUBETRADE_NATS_USER" not in names
