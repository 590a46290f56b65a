"""Strategy -> a ConfigMap with the resolved config and a singleton runner Deployment.

Reconciliation is level-based: on create, update and resume, on a periodic resync and
whenever a runner Deployment changes, the desired children are applied again (repairing
anything deleted, edited or scaled by hand) and the status is recomputed from what is
observed - with, while the runner is not available, what its pods say about why
(:mod:`kubetrade_operator.runnerpods`: an image that cannot be pulled, a missing Secret, a crash
loop).  A finalizer asks the executor to close the strategy's orders and positions
before the resource goes away.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import CloseStrategyRequest, CloseStrategyResult
from kubetrade.observability.metrics import export_status
from kubetrade.resources import GROUP, VERSION, StrategySpec
from kubetrade_operator import builders, runnerpods
from kubetrade_operator.cluster import KUBE, Cluster
from kubetrade_operator.conditions import parse_spec, refusal
from kubetrade_operator.metrics import reconciling
from kubetrade_operator.phases import RUNNER_REPORTED, StrategyObservation, judge
from kubetrade_operator.runtime import RUNTIME
from kubetrade_operator.status import typed

log = logging.getLogger("kubetrade.operator.strategy")

SKIP_CLOSE = "kubetrade.io/skip-close-on-delete"

# What this process last applied to, and saw of, each runner: a watch event that shows the
# same owned fields and the same readiness needs no API call at all.  Empty after a restart,
# so the first event of every runner is reconciled in full.
_applied: dict[tuple[str, str], tuple[Any, ...]] = {}
_ready_seen: dict[tuple[str, str], bool] = {}

# What each Strategy's last reconcile in this process made of its RiskPolicy (found, breaker
# open, why), None while one is under way: a policy change or breaker report reconciles only
# the Strategies for which it changes something (see ``policy_changes``).
_policy_seen: dict[tuple[str, str], tuple[bool, bool, str] | None] = {}

# What each runner's pods last said, by (namespace, owner-name label): a pod watch event that
# says the same needs no reconcile (see ``on_runner_pod_event``).
_pods_seen: dict[tuple[str, str], tuple[str, str] | None] = {}


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


def _refused(dep: dict[str, Any] | None) -> tuple[str, bool] | None:
    """Why the cluster will not run this runner at all, and whether for good: the local cluster's
    ``RunnerRefused`` condition (``kubetrade up`` does not trade live; a runner config that cannot
    load), or a Deployment's own ``ReplicaFailure`` (a quota, say: it may pass)."""
    for c in ((dep or {}).get("status") or {}).get("conditions") or []:
        if c.get("status") == "True" and c.get("type") in ("RunnerRefused", "ReplicaFailure"):
            permanent = c.get("type") == "RunnerRefused" and c.get("reason") != "NotRunHere"
            return str(c.get("message") or c.get("reason") or c["type"]), permanent
    return None


def _runner_pods(
    cluster: Cluster, namespace: str, name: str, deployment: dict[str, Any]
) -> runnerpods.RunnerState | None:
    """What the runner's pods say, or None when the cluster has none to read (or cannot be asked)."""
    selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    try:
        pods = cluster.runner_pods(namespace, selector)
    except Exception as exc:  # the status still follows the Deployment; the next reconcile asks again
        log.warning("cannot read runner pods", extra={"strategy": f"{namespace}/{name}", "error": repr(exc)[:300]})
        return None
    state = None if pods is None else runnerpods.runner_state(pods)
    fault = (state.reason, state.message) if state is not None and state.fault else None
    _pods_seen[(namespace, builders.label_value(name))] = fault
    return state


def _fault_event(cluster: Cluster, body: dict[str, Any], before: list[dict[str, Any]] | None,
                 pod: runnerpods.RunnerState | None) -> None:
    """A Warning Event when the runner's pods show a new fault (not at every restart of the same one)."""
    if pod is None or not pod.fault:
        return
    previous = next((c for c in before or [] if c.get("type") == "RunnerReady"), {})
    if (previous.get("reason"), previous.get("message")) != (pod.reason, pod.message):
        cluster.event(body, "Warning", f"Runner{pod.reason}", pod.message)


def reconcile(
    body: dict[str, Any], seen: dict[str, Any] | None = None, policy: dict[str, Any] | None = None,
    cluster: Cluster = KUBE,
) -> dict[str, Any]:
    """Apply the children of one Strategy and return the status fields that change.

    ``seen`` is the runner Deployment as a watch event just delivered it: when it has not
    drifted from what it should be, nothing is written to it and only the status follows.
    ``policy`` is the Strategy's RiskPolicy when the caller has just written it (fresher than
    the index); otherwise it comes from the index the RiskPolicy watch keeps.
    """
    meta, status = body["metadata"], body.get("status") or {}
    name, namespace, uid, generation = meta["name"], meta["namespace"], meta["uid"], meta.get("generation", 1)
    with reconciling("Strategy"):
        _policy_seen[(namespace, name)] = None  # before the policy is read: a change from now on counts
        cluster.ensure_namespace(namespace, builders.namespace_accounts(namespace, RUNTIME.config))
        parsed, problems = parse_spec("Strategy", body)
        spec = cast(StrategySpec | None, parsed)
        child_refused = ""
        if spec is None:
            policy = None
        elif policy is None or (policy.get("metadata") or {}).get("name") != spec.risk_policy_ref.name:
            policy = cluster.riskpolicy(namespace, spec.risk_policy_ref.name)
        breaker_open, breaker_reason = _breaker(policy)
        seen_policy = (policy is not None, breaker_open, breaker_reason)
        dep_name = builders.child_name("strategy", name)
        runnable = spec is not None and not problems and policy is not None
        if runnable:
            assert spec is not None
            configmap, deployment = builders.strategy_children(name, namespace, uid, generation, spec, RUNTIME.config)
            observed: dict[str, Any] | None
            # Recorded before applying: the watch event of this very write may arrive before
            # the answer does, and must not look like drift.
            _applied[(namespace, dep_name)] = builders.deployment_signature(deployment)
            if seen is not None and not builders.deployment_drifted(deployment, seen):
                observed = seen
            else:
                _ready_seen.setdefault((namespace, dep_name), False)
                try:
                    cluster.apply(configmap)
                    observed = cluster.apply(deployment)
                except Exception as exc:
                    why = refusal(exc)
                    if why is None:
                        raise  # transient: kopf retries
                    _applied.pop((namespace, dep_name), None)
                    child_refused = f"the API server refused the runner: {why}"
                    observed = None
            _ready_seen[(namespace, dep_name)] = _ready(observed)
        if not runnable:
            observed = cluster.get_deployment(namespace, dep_name)
            if observed and (observed.get("spec") or {}).get("replicas"):
                # A runner whose spec no longer runs is stopped; stops stay with the risk manager.
                cluster.apply(
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {"name": dep_name, "namespace": namespace},
                        "spec": {"replicas": 0},
                    }
                )
        dep_status = (observed or {}).get("status") or {}
        refused = _refused(observed) if runnable else None
        pod = None
        if runnable and refused is None and not _ready(observed):
            pod = _runner_pods(cluster, namespace, name, deployment)
        verdict = judge(
            StrategyObservation(
                generation=generation,
                mode=spec.mode if spec else "paper",
                paused=bool(spec and spec.paused),
                retired=bool(spec and spec.retired),
                problems=problems,
                child_refused=child_refused,
                policy_found=policy is not None,
                breaker_open=breaker_open,
                breaker_reason=breaker_reason,
                desired_replicas=0 if spec and spec.retired else 1,
                available_replicas=dep_status.get("availableReplicas") or 0,
                updated_replicas=dep_status.get("updatedReplicas") or 0,
                runner_healthy=False
                if any(
                    c.get("reason") in RUNNER_REPORTED and c.get("status") == "True"
                    for c in status.get("conditions") or []
                )
                else None,
                runner_refused=refused[0] if refused else None,
                runner_refused_for_good=bool(refused and refused[1]),
                runner_pod=pod,
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
        _fault_event(cluster, body, status.get("conditions"), pod)
        if verdict.phase != status.get("phase") and (status.get("phase") or verdict.phase != "Pending"):
            # Every phase change but the first Pending of a new Strategy (the status says it).
            kind = "Warning" if verdict.phase == "Failed" else "Normal"
            cluster.event(body, kind, f"Phase{verdict.phase}", verdict.message)
        _policy_seen[(namespace, name)] = seen_policy
        return typed("Strategy", {k: v for k, v in patch.items() if status.get(k) != v})


def policy_changes(namespace: str, name: str, policy: dict[str, Any] | None) -> bool:
    """Whether a Strategy must be reconciled again because its RiskPolicy is now ``policy``.

    No: it was last reconciled with the same policy state (found, breaker, reason), or this
    process has not reconciled it yet (its create or resume handler is still to come, and
    will read the policy as it is now).  Yes: a different state, or a reconcile under way
    that may have read the policy before the change.
    """
    key = (namespace, name)
    if key not in _policy_seen:
        return False
    seen = _policy_seen[key]
    return seen is None or seen != (policy is not None, *_breaker(policy))


@kopf.on.create(GROUP, VERSION, "strategies")
@kopf.on.update(GROUP, VERSION, "strategies")
@kopf.on.resume(GROUP, VERSION, "strategies")
def on_change(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    patch.status.update(reconcile(dict(body)))


# The first resync comes one interval after the object is first seen: the create or resume
# handler has just reconciled it, and an early tick would only apply the same children again.
@kopf.timer(
    GROUP,
    VERSION,
    "strategies",
    interval=RUNTIME.config.resync_seconds,
    initial_delay=RUNTIME.config.resync_seconds,
    idle=5,
)
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


def reconcile_by_name(
    namespace: str, name: str, seen: dict[str, Any] | None = None, policy: dict[str, Any] | None = None,
    cluster: Cluster = KUBE,
) -> None:
    body = cluster.get("strategies", namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    changes = reconcile(body, seen, policy, cluster)
    if changes:
        cluster.patch_status("strategies", namespace, name, changes)


@kopf.on.event(
    "apps",
    "v1",
    "deployments",
    labels={"app.kubernetes.io/managed-by": builders.MANAGED_BY, builders.OWNER_KIND: "Strategy"},
)
async def on_runner_event(event: kopf.RawEvent, namespace: str | None, **_: Any) -> None:
    """A runner changed or vanished: reconcile its Strategy now rather than at the next resync.

    Async, so that the common case (a status update by the controllers that changes nothing
    the operator owns or reports) is dismissed on the event loop without a worker thread.
    """
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
            await asyncio.to_thread(reconcile_by_name, namespace, owner["name"], seen)


@kopf.on.event(
    "",
    "v1",
    "pods",
    labels={"app.kubernetes.io/managed-by": builders.MANAGED_BY, builders.OWNER_KIND: "Strategy"},
)
async def on_runner_pod_event(event: kopf.RawEvent, namespace: str | None, **_: Any) -> None:
    """A runner pod changed: reconcile its Strategy when the pod shows a fault, or stops showing one.

    A Deployment's status does not change when its pod cannot pull its image or keeps crashing,
    so without this the Strategy would learn of it only at the next resync.  Every other change
    of a runner's readiness reaches the Strategy through its Deployment (``on_runner_event``).
    """
    obj: dict[str, Any] = dict(event.get("object") or {})
    owner = ((obj.get("metadata") or {}).get("labels") or {}).get(builders.OWNER_NAME)
    if not namespace or not owner:
        return
    state = None if event.get("type") == "DELETED" else runnerpods.runner_state([obj])
    said = None if state is None or not state.fault else (state.reason, state.message)
    key = (namespace, owner)
    if _pods_seen.get(key) == said:
        return  # no fault, and none recorded: the Deployment's events carry the rest
    _pods_seen[key] = said
    for strategy in KUBE.list("strategies", namespace):
        name = (strategy.get("metadata") or {}).get("name") or ""
        if builders.label_value(name) == owner:
            await asyncio.to_thread(reconcile_by_name, namespace, name)


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
