"""Collector -> a collector Deployment (scaled to zero while suspended) and its ConfigMap."""

from __future__ import annotations

from typing import Any

import kopf

from kubetrade.resources import GROUP, VERSION
from kubetrade_operator import builders, kube
from kubetrade_operator.conditions import invalid_spec, newly_refused, parse_spec, refusal, set_condition, warn
from kubetrade_operator.metrics import reconciling
from kubetrade_operator.runtime import RUNTIME
from kubetrade_operator.status import typed


def reconcile(body: dict[str, Any]) -> dict[str, Any]:
    meta, status = body["metadata"], body.get("status") or {}
    name, namespace, uid, gen = meta["name"], meta["namespace"], meta["uid"], meta.get("generation", 1)
    with reconciling("Collector"):
        kube.ensure_namespace(namespace, builders.namespace_accounts(namespace, RUNTIME.config))
        conds = status.get("conditions")
        spec, problems = parse_spec("Collector", body)
        if spec is None or problems:
            return _failed(body, conds, problems, gen, "InvalidSpec")
        configmap, deployment = builders.collector_children(name, namespace, uid, gen, spec, RUNTIME.config)
        try:
            kube.apply(configmap)
            observed = kube.apply(deployment)
        except Exception as exc:
            why = refusal(exc)
            if why is None:
                raise  # transient: kopf retries
            return _failed(body, conds, [f"the API server refused the collector's workload: {why}"], gen,
                           "ChildRefused")
        available = ((observed.get("status") or {}).get("availableReplicas") or 0) >= 1
        if spec.suspend:
            phase = "Suspended"
            conds = set_condition(conds, "Ready", False, "Suspended", "collector suspended", gen)
        elif available:
            # The collector itself reports Disabled (no key) through the status feed; keep that.
            phase = str(status["phase"]) if status.get("phase") in ("Running", "Disabled") else "Running"
            conds = set_condition(conds, "Ready", True, "CollectorReady", "collector available", gen)
        else:
            phase = "Pending"
            conds = set_condition(conds, "Ready", False, "CollectorNotReady", "waiting for the collector", gen)
        if status.get("phase") != phase:
            kopf.event(kube.as_body(body), type="Normal", reason=f"Phase{phase}", message=f"collector {phase.lower()}")
        return typed("Collector", {
            "phase": phase,
            "observedGeneration": gen,
            "workload": deployment["metadata"]["name"],
            "conditions": conds,
        })


def _failed(body: dict[str, Any], conds: Any, problems: list[str], gen: int, reason: str) -> dict[str, Any]:
    message = "; ".join(problems)
    if newly_refused(conds, reason, message):
        warn(body, reason, message)
    message, conds = invalid_spec(conds, problems, gen, reason)
    return typed("Collector", {"phase": "Failed", "observedGeneration": gen, "conditions": conds,
                               "lastError": message[:1024]})


@kopf.on.create(GROUP, VERSION, "collectors")
@kopf.on.update(GROUP, VERSION, "collectors")
@kopf.on.resume(GROUP, VERSION, "collectors")
def on_change(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    patch.status.update(reconcile(dict(body)))


@kopf.timer(GROUP, VERSION, "collectors", interval=RUNTIME.config.resync_seconds, initial_delay=5, idle=5)
def resync(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    patch.status.update(reconcile(dict(body)))


@kopf.on.event(
    "apps",
    "v1",
    "deployments",
    labels={"app.kubernetes.io/managed-by": builders.MANAGED_BY, builders.OWNER_KIND: "Collector"},
)
def on_collector_event(event: kopf.RawEvent, namespace: str | None, **_: Any) -> None:
    obj: dict[str, Any] = dict(event.get("object") or {})
    for owner in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == "Collector" and namespace:
            body = kube.get_resource("collectors", namespace, owner["name"])
            if body is not None and not body["metadata"].get("deletionTimestamp"):
                kube.patch_status("collectors", namespace, owner["name"], reconcile(body))
