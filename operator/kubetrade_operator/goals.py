"""Goal -> the evolution CronJob, and the periodic review that promotes and retires strategies.

The review's rules live in :mod:`kubetrade.lifecycle.review` (pure, documented there);
this module gathers what they need from the cluster, applies their decisions to the
Strategy resources, and leaves an Event and a status change for each one so that every
promotion or retirement can be audited.  The goal's figures (equity, progress, the sizing
multiplier) are the goal manager's (:mod:`kubetrade.goalmanager`): they arrive in the status
through the status feed, and the OnTrack condition reflects them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from kubetrade.alerts.alertmanager import emit_in_background, goal_reached, promoted_to_live
from kubetrade.lifecycle import goalfigures
from kubetrade.lifecycle.review import PolicyGate, StrategyView, review
from kubetrade.observability.metrics import export_status
from kubetrade.resources import GROUP, VERSION, GoalSpec
from kubetrade.resources.strategy import PaperCheck
from kubetrade_operator import builders
from kubetrade_operator.cluster import KUBE, Cluster
from kubetrade_operator.conditions import invalid_spec, newly_refused, parse_spec, refusal, set_condition
from kubetrade_operator.metrics import LIFECYCLE_ACTIONS, reconciling
from kubetrade_operator.runtime import RUNTIME
from kubetrade_operator.status import typed

log = logging.getLogger("kubetrade.operator.goal")

GOAL_LABEL = goalfigures.GOAL_LABEL
PHASES = ("Pending", "Paper", "Live", "Paused", "Retired", "Failed")


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _view(s: dict[str, Any]) -> StrategyView:
    st = s.get("status") or {}
    phase = st.get("phase", "Pending")
    capital = ((s.get("spec") or {}).get("capital") or {}).get("amount") or 0
    pnl = st.get("pnl")
    return StrategyView(
        name=s["metadata"]["name"],
        phase=phase,
        since=_parse_time(st.get("liveSince") if phase == "Live" else st.get("paperSince")),
        sharpe=st.get("sharpe"),
        max_drawdown=st.get("maxDrawdown"),
        trades=st.get("trades") or 0,
        return_pct=(pnl / capital) if pnl is not None and capital else None,
        backtest_sharpe=((st.get("evidence") or {}).get("sharpe") if st.get("evidence")
                         else (st.get("backtest") or {}).get("sharpe")),
        paper_check=_paper_check(st.get("paperCheck")),
    )


def _paper_check(raw: Any) -> PaperCheck | None:
    """The runner's paper/backtest comparison, or None when there is none (or it does not parse: no promotion)."""
    if not raw:
        return None
    try:
        return PaperCheck.model_validate(raw)
    except ValueError:
        log.warning("paperCheck in status does not parse; the strategy cannot be promoted", extra={"raw": str(raw)})
        return None


def _gate(policy: dict[str, Any] | None, policy_name: str) -> PolicyGate:
    if policy is None:
        return PolicyGate(False, f"RiskPolicy {policy_name} not found")
    if (policy.get("spec", {}).get("circuitBreaker") or {}).get("killSwitch"):
        return PolicyGate(False, "kill switch on")
    breaker = (policy.get("status") or {}).get("breaker") or {}
    if breaker.get("state") == "Open":
        return PolicyGate(False, f"circuit breaker open ({breaker.get('reason') or 'tripped'})")
    return PolicyGate(True)


def run_review(body: dict[str, Any], spec: GoalSpec, now: datetime, cluster: Cluster = KUBE) -> dict[str, Any]:
    """Review the goal's strategies, apply the decisions, return the goal's status fields.

    The goal's figures (equity, progress, sizing) are the goal manager's, reported into the status;
    the review reads them there (a goal reached raises its alert here, once per review)."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    members = goalfigures.members(spec, name, cluster.list("strategies", namespace))
    views = [_view(s) for s in members]
    decisions = review(
        views,
        spec.review,
        spec.evolution,
        spec.target.max_drawdown_pct,
        _gate(cluster.riskpolicy(namespace, spec.risk_policy_ref.name), spec.risk_policy_ref.name),
        spec.live_credentials_secret_ref is not None,
        now,
    )
    by_name = {s["metadata"]["name"]: s for s in members}
    promoted = retired = 0
    for d in decisions:
        target = by_name[d.name]
        if d.action == "promote":
            ref = spec.live_credentials_secret_ref
            assert ref is not None
            cluster.patch_spec(
                "strategies", namespace, d.name, {"spec": {"mode": "live", "credentialsSecretRef": ref.to_k8s()}}
            )
            cluster.event(target, "Normal", "PromotedToLive", f"by goal {name}: {d.reason}")
            cluster.event(body, "Normal", "PromotedToLive", f"{d.name}: {d.reason}")
            emit_in_background(promoted_to_live(namespace, d.name, name, d.reason))
            promoted += 1
        elif d.action == "retire":
            cluster.patch_spec("strategies", namespace, d.name, {"spec": {"retired": True}})
            cluster.event(target, "Normal", "Retired", f"by goal {name}: {d.reason}")
            cluster.event(body, "Normal", "Retired", f"{d.name}: {d.reason}")
            retired += 1
        LIFECYCLE_ACTIONS.labels(d.action).inc()
    counts = {p.lower(): 0 for p in PHASES}
    for v in views:
        counts[v.phase.lower()] = counts.get(v.phase.lower(), 0) + 1
    counts["live"] += promoted
    counts["paper"] -= promoted
    candidates = sum(1 for d in decisions if d.action == "candidate")
    summary = {
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "promoted": promoted,
        "retired": retired,
        "message": f"{len(views)} strategies reviewed, {candidates} candidates waiting",
    }
    achieved = (body.get("status") or {}).get("returnPct")
    if achieved is not None and achieved >= spec.target.return_pct:
        created = _parse_time(meta.get("creationTimestamp")) or now
        period = (spec.target.start_date or created.date()).isoformat()
        emit_in_background(goal_reached(namespace, name, achieved, spec.target.return_pct, period))
    return {"phaseCounts": counts, "lastReview": summary}


def reconcile(body: dict[str, Any], review_due: bool, cluster: Cluster = KUBE) -> dict[str, Any]:
    meta, status = body["metadata"], body.get("status") or {}
    name, namespace, uid, gen = meta["name"], meta["namespace"], meta["uid"], meta.get("generation", 1)
    with reconciling("Goal"):
        cluster.ensure_namespace(namespace, builders.namespace_accounts(namespace, RUNTIME.config))
        conds = status.get("conditions")
        spec, problems = parse_spec("Goal", body)
        if spec is None or problems:
            return _refused(body, conds, problems, gen, "InvalidSpec", cluster)
        if builders.trains(spec) and not RUNTIME.config.train_image:
            return _refused(body, conds, [f"spec.evolution trains {builders.training_needs(spec)}, but the operator "
                                          "has no training image (chart value image.train.repository, operator "
                                          "variable KUBETRADE_TRAIN_IMAGE): training needs JAX, which the runtime "
                                          "image leaves out"],
                            gen, "NoTrainingImage", cluster)
        cronjob = builders.goal_cronjob(name, namespace, uid, spec, RUNTIME.config)
        try:
            cluster.apply(cronjob)
        except Exception as exc:
            why = refusal(exc)
            if why is None:
                raise  # transient: kopf retries
            return _refused(body, conds, [f"the API server refused the evolution CronJob: {why}"], gen, "ChildRefused",
                            cluster)
        out: dict[str, Any] = {"observedGeneration": gen, "cronJob": cronjob["metadata"]["name"]}
        what = f"evolution training {builders.training_needs(spec)}" if builders.trains(spec) else "evolution"
        conds = set_condition(
            conds, "Ready", True, "Scheduled", f"{what} scheduled '{spec.evolution.schedule}'", gen
        )
        conds = set_condition(conds, "Degraded", False, "AsExpected", "", gen)
        if review_due:
            try:
                out.update(run_review(body, spec, datetime.now(UTC), cluster))
            except Exception as exc:
                why = refusal(exc)
                if why is None:
                    raise
                message = f"review failed: {why}"
                if newly_refused(status.get("conditions"), "ReviewFailed", message, "Degraded"):
                    cluster.event(body, "Warning", "ReviewFailed", message[:1024])
                conds = set_condition(conds, "Degraded", True, "ReviewFailed", message, gen)
                # The review is retried at its next interval, not on every tick.
                out["lastReview"] = {"time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "message": message}
        if status.get("onTrack") is not None and status.get("returnPct") is not None:
            # the goal manager's figures, reflected as a condition a person sees in kubectl describe
            conds = set_condition(
                conds, "OnTrack", bool(status["onTrack"]), "Progress", f"return {status['returnPct']:.2%} of capital",
                gen,
            )
        out["conditions"] = conds
        return typed("Goal", out)


def _refused(body: dict[str, Any], conds: Any, problems: list[str], gen: int, reason: str,
             cluster: Cluster) -> dict[str, Any]:
    """Status of a Goal that cannot run: not Ready with the reason, and one Warning Event per change."""
    message = "; ".join(problems)
    if newly_refused(conds, reason, message):
        cluster.event(body, "Warning", reason, message[:1024])
    _, conds = invalid_spec(conds, problems, gen, reason)
    return typed("Goal", {"observedGeneration": gen, "conditions": conds})


def review_due(body: dict[str, Any]) -> bool:
    """Whether the goal's review interval has passed since its last review (or it never had one)."""
    status = body.get("status") or {}
    last = _parse_time((status.get("lastReview") or {}).get("time"))
    interval = ((body.get("spec") or {}).get("review") or {}).get("intervalSeconds", 3600)
    return last is None or (datetime.now(UTC) - last).total_seconds() >= interval


@kopf.on.create(GROUP, VERSION, "goals")
@kopf.on.update(GROUP, VERSION, "goals")
@kopf.on.resume(GROUP, VERSION, "goals")
def on_change(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    patch.status.update(reconcile(dict(body), review_due=False))


@kopf.timer(GROUP, VERSION, "goals", interval=min(30.0, RUNTIME.config.resync_seconds), initial_delay=2)
def tick(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    """Resync the CronJob and, when the review interval has passed, run the review."""
    patch.status.update(reconcile(dict(body), review_due=review_due(dict(body))))
    meta = body.get("metadata") or {}
    export_status(
        "Goal",
        meta.get("namespace", ""),
        meta.get("name", ""),
        {**(body.get("status") or {}), **patch.status},
        body.get("spec"),
    )
