"""Strategy -> a ConfigMap with the resolved config and a singleton runner Deployment.

Reconciliation is level-based: on create, update and resume, on a periodic resync and
whenever a runner Deployment changes, the desired children are applied again (repairing
anything deleted, edited or scaled by hand) and the status is recomputed from what is
observed.  A finalizer asks the executor to close the strategy's orders and positions
before the resource goes away.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import CloseStrategyRequest, CloseStrategyResult
from kubetrade.observability.metrics import export_status
from kubetrade.resources import GROUP, VERSION, StrategySpec
from kubetrade.resources.semantic import strategy_problems
from kubetrade_operator import builders, kube
from kubetrade_operator.metrics import reconciling
from kubetrade_operator.phases import StrategyObservation, judge
from kubetrade_operator.runtime import RUNTIME

log = logging.getLogger("kubetrade.operator.strategy")

SKIP_CLOSE = "kubetrade.io/skip-close-on-delete"

# What this process last applied to, and saw of, each runner: a watch event that shows the
# same owned fields and the same readiness needs no API call at all.  Empty after a restart,
# so the first event of every runner is reconciled in full.
_applied: dict[tuple[str, str], tuple[Any, ...]] = {}
_ready_seen: dict[tuple[str, str], bool] = {}


def _ready(dep: dict[str, Any] | None) -> bool:
    st = (dep or {}).get("status") or {}
    return (st.get("availableReplicas") or 0) >= 1 and (st.get("updatedReplicas") or 0) >= 1


def _breaker(policy: dict[str, Any] | None) -> tuple[bool, str]:
    if policy is None:
        return False, ""
    if (policy.get("spec", {}).get("circuitBreaker") or {}).get("killSwitch"):
        return True, "kill switch on"
    breaker = (policy.get("status") or {}).get("breaker") or {}
    if breaker.get("state") == "Open":
        return True, breaker.get("reason") or "tripped"
    return False, ""


def reconcile(body: dict[str, Any], seen: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply the children of one Strategy and return the status fields that change.

    ``seen`` is the runner Deployment as a watch event just delivered it: when it has not
    drifted from what it should be, nothing is written to it and only the status follows.
    """
    meta, status = body["metadata"], body.get("status") or {}
    name, namespace, uid, generation = meta["name"], meta["namespace"], meta["uid"], meta.get("generation", 1)
    with reconciling("Strategy"):
        kube.ensure_namespace(namespace, builders.namespace_accounts(namespace, RUNTIME.config))
        try:
            spec = StrategySpec.model_validate(body.get("spec") or {})
            problems = strategy_problems(spec)
        except ValidationError as exc:
            spec, problems = None, [f"invalid spec: {exc.errors()[0]['msg']}"]
        policy = kube.get_resource("riskpolicies", namespace, spec.risk_policy_ref.name) if spec else None
        breaker_open, breaker_reason = _breaker(policy)
        dep_name = builders.child_name("strategy", name)
        runnable = spec is not None and not problems and policy is not None
        if runnable:
            assert spec is not None
            configmap, deployment = builders.strategy_children(name, namespace, uid, generation, spec, RUNTIME.config)
            observed: dict[str, Any] | None
            if seen is not None and not builders.deployment_drifted(deployment, seen):
                observed = seen
            else:
                kube.apply(configmap)
                observed = kube.apply(deployment)
            _applied[(namespace, dep_name)] = builders.deployment_signature(deployment)
            _ready_seen[(namespace, dep_name)] = _ready(observed)
        else:
            observed = kube.get_deployment(namespace, dep_name)
            if observed and (observed.get("spec") or {}).get("replicas"):
                # A runner whose spec no longer runs is stopped; stops stay with the risk manager.
                kube.apply(
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {"name": dep_name, "namespace": namespace},
                        "spec": {"replicas": 0},
                    }
                )
        dep_status = (observed or {}).get("status") or {}
        verdict = judge(
            StrategyObservation(
                generation=generation,
                mode=spec.mode if spec else "paper",
                paused=bool(spec and spec.paused),
                retired=bool(spec and spec.retired),
                problems=problems,
                policy_found=policy is not None,
                breaker_open=breaker_open,
                breaker_reason=breaker_reason,
                desired_replicas=0 if spec and spec.retired else 1,
                available_replicas=dep_status.get("availableReplicas") or 0,
                updated_replicas=dep_status.get("updatedReplicas") or 0,
                runner_healthy=False
                if any(
                    c.get("reason") == "RunnerUnhealthy" and c.get("status") == "True"
                    for c in status.get("conditions") or []
                )
                else None,
            ),
            status.get("conditions"),
        )
        patch: dict[str, Any] = {
            "phase": verdict.phase,
            "message": verdict.message,
            "observedGeneration": generation,
            "runner": dep_name if runnable else None,
            "conditions": verdict.conditions,
        }
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if verdict.phase == "Paper" and not status.get("paperSince"):
            patch["paperSince"] = now
        if verdict.phase == "Live" and not status.get("liveSince"):
            patch["liveSince"] = now
        if verdict.phase != status.get("phase"):
            kind = "Warning" if verdict.phase == "Failed" else "Normal"
            kopf.event(kube.as_body(body), type=kind, reason=f"Phase{verdict.phase}", message=verdict.message)
        return {k: v for k, v in patch.items() if status.get(k) != v}


@kopf.on.create(GROUP, VERSION, "strategies")
@kopf.on.update(GROUP, VERSION, "strategies")
@kopf.on.resume(GROUP, VERSION, "strategies")
def on_change(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    patch.status.update(reconcile(dict(body)))


@kopf.timer(GROUP, VERSION, "strategies", interval=RUNTIME.config.resync_seconds, initial_delay=5, idle=5)
def resync(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    patch.status.update(reconcile(dict(body)))
    meta = body.get("metadata") or {}
    export_status(
        "Strategy",
        meta.get("namespace", ""),
        meta.get("name", ""),
        {**(body.get("status") or {}), **patch.status},
        body.get("spec"),
    )


def reconcile_by_name(namespace: str, name: str, seen: dict[str, Any] | None = None) -> None:
    body = kube.get_resource("strategies", namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    changes = reconcile(body, seen)
    if changes:
        kube.patch_status("strategies", namespace, name, changes)


@kopf.on.event(
    "apps",
    "v1",
    "deployments",
    labels={"app.kubernetes.io/managed-by": builders.MANAGED_BY, builders.OWNER_KIND: "Strategy"},
)
def on_runner_event(event: kopf.RawEvent, namespace: str | None, **_: Any) -> None:
    """A runner changed or vanished: reconcile its Strategy now rather than at the next resync."""
    obj: dict[str, Any] = dict(event.get("object") or {})
    seen = None if event.get("type") == "DELETED" else obj
    key = (namespace or "", (obj.get("metadata") or {}).get("name", ""))
    if (
        seen is not None
        and _applied.get(key) == builders.deployment_signature(obj)
        and _ready_seen.get(key) == _ready(obj)
    ):
        return  # nothing the operator owns changed, and readiness is as last recorded
    for owner in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == "Strategy" and namespace:
            reconcile_by_name(namespace, owner["name"], seen)


@kopf.on.delete(GROUP, VERSION, "strategies")
async def on_delete(
    body: kopf.Body, name: str, namespace: str | None, spec: kopf.Spec, meta: kopf.Meta, patch: kopf.Patch, **_: Any
) -> None:
    """Finalizer: the executor cancels the strategy's orders and closes its positions first."""
    if meta.get("annotations", {}).get(SKIP_CLOSE) == "true":
        kopf.warn(body, reason="CloseSkipped", message=f"{SKIP_CLOSE}=true: positions left as they are")
        return
    environment = spec.get("mode", "paper")
    nc = RUNTIME.nats
    if nc is None or not nc.is_connected:
        _blocked(body, patch, "NATS is not reachable; cannot ask the executor to close positions")
    request = CloseStrategyRequest(strategy=name, namespace=namespace or "default")
    try:
        reply = await nc.request(subjects.close_strategy(environment), codec.encode(request), timeout=15)
        result = codec.decode(CloseStrategyResult, reply.data)
    except TimeoutError:
        _blocked(body, patch, f"the {environment} executor did not answer within 15s")
    except Exception as exc:  # no responders, bad reply
        _blocked(body, patch, f"the {environment} executor could not be asked: {type(exc).__name__}: {exc}")
    if not result.ok:
        _blocked(body, patch, f"the {environment} executor could not close the strategy: {result.message}")
    kopf.info(
        body,
        reason="PositionsClosed",
        message=f"cancelled {result.cancelled_orders} orders, closed {result.closed_positions} positions",
    )


def _blocked(body: kopf.Body, patch: kopf.Patch, why: str) -> None:
    message = f"deletion waits: {why} (annotate {SKIP_CLOSE}=true to delete without closing)"
    patch.status["message"] = message
    kopf.warn(body, reason="CloseBlocked", message=message)
    raise kopf.TemporaryError(message, delay=15)
