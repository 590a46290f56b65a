"""Goal -> the evolution CronJob, and the periodic review that promotes and retires strategies.

The review's rules live in :mod:`kubetrade.lifecycle.review` (pure, documented there);
this module gathers what they need from the cluster, applies their decisions to the
Strategy resources, and leaves an Event and a status change for each one so that every
promotion or retirement can be audited.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from kubetrade.alerts.alertmanager import emit_in_background, goal_reached, promoted_to_live
from kubetrade.lifecycle.progress import progress
from kubetrade.lifecycle.review import PolicyGate, StrategyView, review
from kubetrade.messaging import kv
from kubetrade.observability.metrics import export_status
from kubetrade.resources import GROUP, VERSION, GoalSpec, RiskPolicySpec
from kubetrade.resources.strategy import PaperCheck
from kubetrade.sizing.goal import goal_sizing_multiplier
from kubetrade_operator import builders, cache, kube
from kubetrade_operator.conditions import invalid_spec, newly_refused, parse_spec, refusal, set_condition, warn
from kubetrade_operator.metrics import LIFECYCLE_ACTIONS, reconciling
from kubetrade_operator.runtime import RUNTIME, submit

log = logging.getLogger("kubetrade.operator.goal")

GOAL_LABEL = "kubetrade.io/goal"
PHASES = ("Pending", "Paper", "Live", "Paused", "Retired", "Failed")


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def selector(spec: GoalSpec, name: str) -> str:
    sel = spec.strategy_selector
    if sel is None or (not sel.match_labels and not sel.match_expressions):
        return f"{GOAL_LABEL}={name}"
    parts = [f"{k}={v}" for k, v in sel.match_labels.items()]
    for expr in sel.match_expressions:
        if expr.operator == "In":
            parts.append(f"{expr.key} in ({','.join(expr.values)})")
        elif expr.operator == "NotIn":
            parts.append(f"{expr.key} notin ({','.join(expr.values)})")
        elif expr.operator == "Exists":
            parts.append(expr.key)
        else:
            parts.append(f"!{expr.key}")
    return ",".join(parts)


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


def _gate(namespace: str, policy_name: str) -> PolicyGate:
    policy = cache.riskpolicy(namespace, policy_name)
    if policy is None:
        return PolicyGate(False, f"RiskPolicy {policy_name} not found")
    if (policy.get("spec", {}).get("circuitBreaker") or {}).get("killSwitch"):
        return PolicyGate(False, "kill switch on")
    breaker = (policy.get("status") or {}).get("breaker") or {}
    if breaker.get("state") == "Open":
        return PolicyGate(False, f"circuit breaker open ({breaker.get('reason') or 'tripped'})")
    return PolicyGate(True)


def run_review(body: dict[str, Any], spec: GoalSpec, now: datetime) -> dict[str, Any]:
    """Review the goal's strategies, apply the decisions, return the goal's status fields."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    members = kube.list_resources("strategies", namespace, selector(spec, name))
    views = [_view(s) for s in members]
    decisions = review(
        views,
        spec.review,
        spec.evolution,
        spec.target.max_drawdown_pct,
        _gate(namespace, spec.risk_policy_ref.name),
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
            kube.patch_spec(
                "strategies", namespace, d.name, {"spec": {"mode": "live", "credentialsSecretRef": ref.to_k8s()}}
            )
            kopf.info(kube.as_body(target), reason="PromotedToLive", message=f"by goal {name}: {d.reason}")
            kopf.info(kube.as_body(body), reason="PromotedToLive", message=f"{d.name}: {d.reason}")
            emit_in_background(promoted_to_live(namespace, d.name, name, d.reason))
            promoted += 1
        elif d.action == "retire":
            kube.patch_spec("strategies", namespace, d.name, {"spec": {"retired": True}})
            kopf.info(kube.as_body(target), reason="Retired", message=f"by goal {name}: {d.reason}")
            kopf.info(kube.as_body(body), reason="Retired", message=f"{d.name}: {d.reason}")
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
    status: dict[str, Any] = {"phaseCounts": counts, "lastReview": summary}
    equity = _goal_equity(members, spec)
    if equity is not None:
        created = _parse_time(meta.get("creationTimestamp")) or now
        start = spec.target.start_date or created.date()
        p = progress(spec.target, equity, start, now)
        peak = max(equity, (body.get("status") or {}).get("peakEquity") or equity)
        multiplier = _sizing(namespace, name, spec, equity, peak, now, start)
        status.update(
            {
                "equity": p.equity,
                "peakEquity": peak,
                "returnPct": p.return_pct,
                "progressPct": p.progress_pct,
                "onTrack": p.on_track,
                "sizingMultiplier": multiplier,
            }
        )
        if p.return_pct >= spec.target.return_pct:
            period = (spec.target.start_date or created.date()).isoformat()
            emit_in_background(goal_reached(namespace, name, p.return_pct, spec.target.return_pct, period))
    return status


def _sizing(namespace: str, name: str, spec: GoalSpec, equity: float, peak: float, now: datetime, start: Any) -> float:
    """The goal-oriented sizing multiplier, published where the goal's runners read it (NATS KV)."""
    policy_body = cache.riskpolicy(namespace, spec.risk_policy_ref.name)
    policy = RiskPolicySpec.model_validate(policy_body["spec"]) if policy_body else None
    multiplier = goal_sizing_multiplier(spec, equity, peak, now, start, policy)
    try:
        submit(_publish_sizing(namespace, name, multiplier))
    except Exception as exc:  # the status still shows it; runners keep their last value or 1.0
        log.warning("sizing multiplier not published", extra={"goal": f"{namespace}/{name}", "error": repr(exc)})
    return multiplier


async def _publish_sizing(namespace: str, name: str, multiplier: float) -> None:
    nc = RUNTIME.nats
    if nc is None or not nc.is_connected:
        raise RuntimeError("NATS not connected")
    bucket = await kv.goal_sizing_bucket(nc.jetstream())
    await bucket.put(kv.goal_sizing_key(namespace, name), kv.encode(kv.GoalSizingEntry(multiplier=multiplier)))


def _goal_equity(members: list[dict[str, Any]], spec: GoalSpec) -> float | None:
    """The target capital grown by the counted strategies' combined return on their allocation.

    None while no Paper or Live strategy has reported a PnL yet.
    """
    alloc = pnl = 0.0
    for s in members:
        st = s.get("status") or {}
        if st.get("phase") in ("Paper", "Live") and st.get("pnl") is not None:
            alloc += ((s.get("spec") or {}).get("capital") or {}).get("amount") or 0.0
            pnl += st["pnl"]
    if not alloc:
        return None
    return spec.target.capital.amount * (1 + pnl / alloc)


def reconcile(body: dict[str, Any], review_due: bool) -> dict[str, Any]:
    meta, status = body["metadata"], body.get("status") or {}
    name, namespace, uid, gen = meta["name"], meta["namespace"], meta["uid"], meta.get("generation", 1)
    with reconciling("Goal"):
        kube.ensure_namespace(namespace, builders.namespace_accounts(namespace, RUNTIME.config))
        conds = status.get("conditions")
        spec, problems = parse_spec("Goal", body)
        if spec is None or problems:
            return _refused(body, conds, problems, gen, "InvalidSpec")
        cronjob = builders.goal_cronjob(name, namespace, uid, spec, RUNTIME.config)
        try:
            kube.apply(cronjob)
        except Exception as exc:
            why = refusal(exc)
            if why is None:
                raise  # transient: kopf retries
            return _refused(body, conds, [f"the API server refused the evolution CronJob: {why}"], gen, "ChildRefused")
        out: dict[str, Any] = {"observedGeneration": gen, "cronJob": cronjob["metadata"]["name"]}
        conds = set_condition(
            conds, "Ready", True, "Scheduled", f"evolution scheduled '{spec.evolution.schedule}'", gen
        )
        conds = set_condition(conds, "Degraded", False, "AsExpected", "", gen)
        if review_due:
            try:
                out.update(run_review(body, spec, datetime.now(UTC)))
            except Exception as exc:
                why = refusal(exc)
                if why is None:
                    raise
                message = f"review failed: {why}"
                if newly_refused(status.get("conditions"), "ReviewFailed", message, "Degraded"):
                    warn(body, "ReviewFailed", message)
                conds = set_condition(conds, "Degraded", True, "ReviewFailed", message, gen)
                # The review is retried at its next interval, not on every tick.
                out["lastReview"] = {"time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "message": message}
            if "onTrack" in out:
                conds = set_condition(
                    conds, "OnTrack", bool(out["onTrack"]), "Progress", f"return {out['returnPct']:.2%} of capital", gen
                )
        out["conditions"] = conds
        return out


def _refused(body: dict[str, Any], conds: Any, problems: list[str], gen: int, reason: str) -> dict[str, Any]:
    """Status of a Goal that cannot run: not Ready with the reason, and one Warning Event per change."""
    message = "; ".join(problems)
    if newly_refused(conds, reason, message):
        warn(body, reason, message)
    _, conds = invalid_spec(conds, problems, gen, reason)
    return {"observedGeneration": gen, "conditions": conds}


def _review_due(body: dict[str, Any]) -> bool:
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
    patch.status.update(reconcile(dict(body), review_due=_review_due(dict(body))))
    meta = body.get("metadata") or {}
    export_status(
        "Goal",
        meta.get("namespace", ""),
        meta.get("name", ""),
        {**(body.get("status") or {}), **patch.status},
        body.get("spec"),
    )
