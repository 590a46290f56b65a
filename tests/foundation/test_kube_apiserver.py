"""The CRDs against a real kube-apiserver (etcd, controller manager, scheduler, kwok nodes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.kube


def test_examples_apply(kube, namespace) -> None:
    out = kube.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples")).stdout
    assert out.count("created") == len(list((REPO / "examples").glob("*.yaml"))), out
    listed = kube.kubectl("get", "kubetrade", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(x.split("/")[0] for x in listed) == sorted(
        ["collector.kubetrade.io"] * 3
        + ["goal.kubetrade.io", "riskpolicy.kubetrade.io"]
        + ["strategy.kubetrade.io"] * 2
    )


def test_server_applies_defaults(kube, namespace) -> None:
    kube.kubectl(
        "apply", "-n", namespace, "-f", "-",
        input="apiVersion: kubetrade.io/v1alpha1\nkind: RiskPolicy\nmetadata: {name: bare}\n",
    )
    spec = kube.get_json("riskpolicy", "bare", "-n", namespace)["spec"]
    assert spec["strategyLimits"]["maxPositionPct"] == 0.2
    assert spec["strategyLimits"]["maxRiskPerTradePct"] == 0.05
    assert spec["portfolioLimits"]["maxDrawdownPct"] == 0.15
    assert spec["circuitBreaker"]["killSwitch"] is False


def _strategy(**changes) -> str:
    doc = yaml.safe_load((REPO / "examples" / "strategy-ema-rsi.yaml").read_text())
    for dotted, value in changes.items():
        target = doc
        *path, last = dotted.split(".")
        for key in path:
            target = target[key]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"spec.mode": "sideways"}, 'spec.mode: Unsupported value: "sideways"'),
        ({"spec.capital": {"amount": -100}}, "spec.capital.amount: Invalid value: -100"),
        ({"spec.symbols": None}, "spec.symbols: Required value"),
        ({"spec.riskPolicyRef": None}, "spec.riskPolicyRef: Required value"),
        ({"spec.leverage": 5}, 'unknown field "spec.leverage"'),
        ({"spec.timeframe": "7m"}, 'spec.timeframe: Unsupported value: "7m"'),
        ({"spec.symbols": ["btc-usdt"]}, "spec.symbols[0]: Invalid value"),
        ({"spec.mode": "live"}, "mode live needs credentialsSecretRef"),
        ({"spec.template": "ema-crossover"}, "exactly one of genome or template must be set"),
        ({"spec.genome.entry.rules": []}, "spec.genome.entry.rules: Invalid value"),
        (
            {"spec.genome.entry.rules": [{"left": {"price": "close", "value": 1}, "op": "gt", "right": {"value": 2}}]},
            "exactly one of indicator, price, alt or value must be set",
        ),
    ],
    ids=[
        "wrong-enum", "negative-capital", "missing-symbols", "missing-policy", "unknown-field", "bad-timeframe",
        "bad-symbol", "live-without-secret", "genome-and-template", "empty-rules", "two-operand-sources",
    ],
)
def test_invalid_strategies_are_rejected(kube, namespace, changes, expected) -> None:
    proc = kube.kubectl("apply", "-n", namespace, "-f", "-", input=_strategy(**changes), check=False)
    assert proc.returncode != 0, f"accepted: {changes}"
    assert expected in proc.stderr, proc.stderr


def test_invalid_goal_and_collector_are_rejected(kube, namespace) -> None:
    goal = yaml.safe_load((REPO / "examples" / "goal.yaml").read_text())
    goal["spec"]["evolution"]["minPaperDays"] = 20
    goal["spec"]["evolution"]["maxPaperDays"] = 5
    goal["spec"]["evolution"]["walkForward"] = {"windows": 10, "outOfSampleFraction": 0.1, "blocks": 7}
    proc = kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(goal), check=False)
    assert "minPaperDays must not exceed maxPaperDays" in proc.stderr
    assert "windows x outOfSampleFraction must leave at least 10 % of the history in sample" in proc.stderr
    assert "blocks must be even" in proc.stderr
    collector = {
        "apiVersion": "kubetrade.io/v1alpha1",
        "kind": "Collector",
        "metadata": {"name": "replay-without-settings"},
        "spec": {"source": "replay", "provider": "bundled", "symbols": ["BTC/USDT"]},
    }
    proc = kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(collector), check=False)
    assert "source replay needs replay settings" in proc.stderr


def test_status_subresource_and_printer_columns(kube, namespace) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "strategy-ema-rsi.yaml"))
    status = {
        "status": {
            "phase": "Paper",
            "pnl": 12.5,
            "sharpe": 1.7,
            "drawdown": 0.031,
            "trades": 4,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "RunnerReady",
                    "message": "runner is up",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                    "observedGeneration": 1,
                }
            ],
        }
    }
    kube.kubectl(
        "patch", "strategy", "btc-ema-rsi", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps(status),
    )
    table = kube.kubectl("get", "strategies", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:8] == ["NAME", "MODE", "PHASE", "PNL", "SHARPE", "DRAWDOWN", "TRADES", "READY"]
    assert row.split()[:8] == ["btc-ema-rsi", "paper", "Paper", "12.5", "1.7", "0.031", "4", "True"]
    # A spec change through the main resource does not touch status, and vice versa.
    got = kube.get_json("strategy", "btc-ema-rsi", "-n", namespace)
    assert got["status"]["conditions"][0]["observedGeneration"] == 1
    assert got["metadata"]["generation"] == 1
    # Status fields the schema does not declare are pruned, so typos cannot hide.
    kube.kubectl(
        "patch", "strategy", "btc-ema-rsi", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"phaes": "Live"}}),
        check=False,
    )
    assert "phaes" not in kube.get_json("strategy", "btc-ema-rsi", "-n", namespace)["status"]


def test_short_names_and_category(kube, namespace) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "riskpolicy.yaml"))
    assert "default" in kube.kubectl("get", "rp", "-n", namespace).stdout
    assert "riskpolicy.kubetrade.io/default" in kube.kubectl("get", "kubetrade", "-n", namespace, "-o", "name").stdout


def test_kubectl_explain_shows_documented_fields(kube) -> None:
    out = kube.kubectl("explain", "strategy.spec").stdout
    for field in ("genome", "symbols", "timeframe", "mode", "capital", "riskPolicyRef", "goalRef",
                  "credentialsSecretRef"):
        assert field in out
    assert "paper: simulated fills against live market data" in out
    deep = kube.kubectl("explain", "riskpolicy.spec.portfolioLimits.maxDrawdownPct").stdout
    assert "Drawdown from the equity peak that trips the circuit breaker" in deep


def test_deployments_get_ready_pods(kube, namespace) -> None:
    """The control plane is complete: a Deployment reaches availableReplicas on kwok nodes."""
    kube.kubectl("create", "deployment", "probe", "-n", namespace, "--image=busybox", "--replicas=2")
    kube.wait_for(
        lambda: kube.get_json("deployment", "probe", "-n", namespace).get("status", {}).get("availableReplicas") == 2,
        60,
        "two available replicas",
    )
