"""A Strategy's phase and conditions, from what the operator observed (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubetrade_operator.conditions import set_condition
from kubetrade_operator.runnerpods import RunnerState

RUNNER_REPORTED = ("RunnerUnhealthy", "ModelRefused")
"""Degraded reasons the runner's own reports set (through the status feed): a reconcile keeps them until the
runner reports healthy again, since only the runner knows."""


@dataclass(frozen=True)
class StrategyObservation:
    generation: int
    mode: str
    paused: bool
    retired: bool
    problems: list[str] = field(default_factory=list)
    """Why the spec cannot run (genome does not compile, ...); empty when it can."""
    child_refused: str = ""
    """Why the API server refused the runner's objects (a quota, a policy), if it did."""
    policy_found: bool = True
    breaker_open: bool = False
    breaker_reason: str = ""
    desired_replicas: int = 1
    available_replicas: int = 0
    updated_replicas: int = 0
    runner_healthy: bool | None = None
    """What the runner last reported about itself (None: nothing yet)."""
    runner_refused: str | None = None
    """Why the cluster does not run this runner (None: it does, or is trying to)."""
    runner_refused_for_good: bool = False
    """The refusal holds until the spec changes (a runner config that cannot load)."""
    runner_pod: RunnerState | None = None
    """What the runner's pods say (:func:`~kubetrade_operator.runnerpods.runner_state`): None when
    they were not read (the runner is available, or the cluster has no pods)."""


@dataclass(frozen=True)
class StrategyVerdict:
    phase: str
    message: str
    conditions: list[dict[str, Any]]


def judge(obs: StrategyObservation, conditions: list[dict[str, Any]] | None, now: str | None = None) -> StrategyVerdict:
    gen = obs.generation
    ready = obs.available_replicas >= 1 and obs.updated_replicas >= 1
    if obs.problems:
        phase, message = "Failed", "; ".join(obs.problems)
    elif obs.child_refused:
        phase, message = "Failed", obs.child_refused
    elif not obs.policy_found:
        phase, message = "Pending", "RiskPolicy not found: no runner starts without one"
    elif obs.retired:
        phase, message = "Retired", "retired: runner removed"
    elif obs.paused or obs.breaker_open:
        phase = "Paused"
        message = f"circuit breaker open: {obs.breaker_reason}" if obs.breaker_open else "paused by spec"
    elif not ready and obs.runner_refused:
        phase = "Failed" if obs.runner_refused_for_good else "Pending"
        message = obs.runner_refused
    elif not ready and obs.runner_pod is not None and obs.runner_pod.fault:
        phase, message = "Pending", f"runner cannot run: {obs.runner_pod.message}"
    elif not ready:
        phase, message = "Pending", "waiting for the runner to become ready"
    else:
        phase, message = ("Live" if obs.mode == "live" else "Paper"), f"{obs.mode} trading"

    conds = conditions
    if phase == "Failed":
        reason = "InvalidSpec" if obs.problems else "ChildRefused"
        conds = set_condition(conds, "Ready", False, reason, message, gen, now)
        conds = set_condition(conds, "Degraded", True, reason, message, gen, now)
        conds = set_condition(conds, "RunnerReady", False, reason, "no runner: " + message, gen, now)
        conds = set_condition(conds, "Progressing", False, reason, "fix the spec" if obs.problems else message,
                              gen, now)
        return StrategyVerdict(phase, message, conds)
    if not obs.policy_found:
        conds = set_condition(conds, "Ready", False, "RiskPolicyMissing", message, gen, now)
        conds = set_condition(conds, "Degraded", True, "RiskPolicyMissing", message, gen, now)
        conds = set_condition(conds, "RunnerReady", False, "RiskPolicyMissing", "no runner: " + message, gen, now)
        conds = set_condition(conds, "Progressing", False, "RiskPolicyMissing", message, gen, now)
        return StrategyVerdict(phase, message, conds)
    if obs.retired:
        conds = set_condition(conds, "Ready", False, "Retired", message, gen, now)
        conds = set_condition(conds, "RunnerReady", False, "Retired", "no runner: " + message, gen, now)
        conds = set_condition(conds, "Progressing", False, "Retired", message, gen, now)
        conds = set_condition(conds, "Degraded", False, "Retired", "", gen, now)
        return StrategyVerdict(phase, message, conds)

    pod = obs.runner_pod
    fault = pod if pod is not None and pod.fault and not ready else None
    if fault is not None:
        conds = set_condition(conds, "Ready", False, fault.reason, fault.message, gen, now)
    else:
        conds = set_condition(
            conds,
            "Ready",
            ready,
            "RunnerReady" if ready else "RunnerNotReady",
            "runner available" if ready else "runner not available yet",
            gen,
            now,
        )
    if ready:
        conds = set_condition(conds, "RunnerReady", True, "PodReady", "runner available", gen, now)
    elif pod is not None:
        conds = set_condition(conds, "RunnerReady", pod.ready, pod.reason, pod.message, gen, now)
    elif obs.runner_refused:
        conds = set_condition(conds, "RunnerReady", False, "RunnerRefused", obs.runner_refused, gen, now)
    else:
        conds = set_condition(conds, "RunnerReady", False, "RunnerNotReady", "runner not available yet", gen, now)
    rolling = obs.updated_replicas < obs.desired_replicas or not ready
    conds = set_condition(
        conds,
        "Progressing",
        rolling,
        "RollingOut" if rolling else "RolloutComplete",
        "runner rolling out" if rolling else "runner up to date",
        gen,
        now,
    )
    if fault is not None:
        conds = set_condition(conds, "Degraded", True, fault.reason, fault.message, gen, now)
    elif obs.runner_healthy is False:
        previous = next((c for c in conds if c["type"] == "Degraded"), {})
        reason = str(previous.get("reason")) if previous.get("reason") in RUNNER_REPORTED else "RunnerUnhealthy"
        conds = set_condition(conds, "Degraded", True, reason, previous.get("message") or "runner unhealthy", gen, now)
    elif obs.breaker_open:
        conds = set_condition(conds, "Degraded", True, "BreakerOpen", message, gen, now)
    else:
        conds = set_condition(conds, "Degraded", False, "AsExpected", "", gen, now)
    return StrategyVerdict(phase, message, conds)
