"""RiskPolicy -> published to the risk manager through the NATS key-value bucket ``risk-policies``.

The risk manager watches the bucket, so a policy change takes effect without a restart
(hot reload).  Keys are ``<namespace>.<name>``; the value is the policy spec with its
generation.  A periodic sync removes keys whose policy is gone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from kubetrade.messaging import kv, subjects
from kubetrade.resources import GROUP, VERSION
from kubetrade_operator import kube, strategies
from kubetrade_operator.cluster import KUBE, Cluster
from kubetrade_operator.conditions import invalid_spec, newly_refused, parse_spec, set_condition
from kubetrade_operator.metrics import reconciling
from kubetrade_operator.runtime import RUNTIME
from kubetrade_operator.status import typed

log = logging.getLogger("kubetrade.operator.riskpolicy")


async def _bucket(nc: Any = None) -> Any:
    nc = nc if nc is not None else RUNTIME.nats
    if nc is None or not nc.is_connected:
        raise kopf.TemporaryError("NATS is not reachable; the policy is not published yet", delay=10)
    return await kv.policy_bucket(nc.jetstream())


async def publish(body: dict[str, Any], nc: Any = None, cluster: Cluster = KUBE) -> dict[str, Any]:
    """Publish the policy to the risk manager's bucket (on ``nc``, else the operator's connection);
    returns the status fields that say so."""
    meta, status = body["metadata"], body.get("status") or {}
    name, namespace, gen = meta["name"], meta["namespace"], meta.get("generation", 1)
    with reconciling("RiskPolicy"):
        spec, problems = parse_spec("RiskPolicy", body)
        if spec is None or problems:
            # Not published: the risk manager keeps the last valid version of the policy (or has
            # none, and refuses the signals of its strategies), never a contradictory one.
            message = "; ".join(problems)
            if newly_refused(status.get("conditions"), "InvalidSpec", message):
                cluster.event(body, "Warning", "InvalidSpec", f"not published to the risk manager: {message}"[:1024])
            _, conds = invalid_spec(status.get("conditions"), problems, gen)
            return typed("RiskPolicy", {"observedGeneration": gen, "conditions": conds})
        entry = kv.PolicyEntry(namespace=namespace, name=name, generation=gen, spec=spec)
        bucket = await _bucket(nc)
        revision = await bucket.put(kv.policy_key(namespace, name), kv.encode(entry))
        conds = set_condition(
            status.get("conditions"), "Ready", True, "Published", f"published as revision {revision}", gen
        )
        if status.get("observedGeneration") != gen:
            cluster.event(body, "Normal", "PolicyPublished", f"generation {gen} -> revision {revision}")
        return typed("RiskPolicy", {"observedGeneration": gen, "publishedRevision": revision, "conditions": conds})


@kopf.on.create(GROUP, VERSION, "riskpolicies")
@kopf.on.update(GROUP, VERSION, "riskpolicies")
@kopf.on.resume(GROUP, VERSION, "riskpolicies")
async def on_change(body: kopf.Body, patch: kopf.Patch, namespace: str | None, name: str, **_: Any) -> None:
    patch.status.update(await publish(dict(body)))
    # A kill switch flip changes which strategies are paused.
    await repause(namespace or "default", name, dict(body))


@kopf.timer(GROUP, VERSION, "riskpolicies", interval=RUNTIME.config.resync_seconds, initial_delay=5, idle=5)
async def resync(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    patch.status.update(await publish(dict(body)))


@kopf.on.delete(GROUP, VERSION, "riskpolicies", optional=True)
async def on_delete(namespace: str | None, name: str, **_: Any) -> None:
    try:
        bucket = await _bucket()
        await bucket.delete(kv.policy_key(namespace or "default", name))
    except Exception as exc:  # optional: the periodic sync removes it later
        log.warning("could not unpublish policy", extra={"policy": f"{namespace}/{name}", "error": str(exc)})


async def repause(namespace: str, policy: str, body: dict[str, Any] | None = None, cluster: Cluster = KUBE) -> None:
    """Reconcile the strategies under a policy: a tripped breaker or kill switch pauses them.

    Only those for which the policy's state (found, breaker, kill switch) differs from what
    their last reconcile saw: a new policy or a status report does not re-apply the
    children of every Strategy under it.

    ``body`` is the policy as just written, when the caller wrote it (the index may not have
    seen that write yet).
    """
    def _work() -> None:
        current = body if body is not None else cluster.riskpolicy(namespace, policy)
        for s in cluster.list("strategies", namespace):
            name = s["metadata"]["name"]
            if (s.get("spec") or {}).get("riskPolicyRef", {}).get("name") == policy and strategies.policy_changes(
                namespace, name, current
            ):
                strategies.reconcile_by_name(namespace, name, policy=body, cluster=cluster)

    await asyncio.to_thread(_work)


async def prune_orphans(namespaces: list[str] | None = None) -> int:
    """Delete published policies whose RiskPolicy no longer exists; returns how many.

    ``namespaces``: the ones the operator watches (it may list nothing else, and leaves the
    policies of other namespaces to whoever watches them); None: the whole cluster.
    """
    bucket = await _bucket()
    try:
        keys = await bucket.keys()
    except Exception:
        return 0  # empty bucket

    def listed() -> list[dict[str, Any]]:
        if namespaces is None:
            return kube.list_cluster_resources("riskpolicies")
        return [p for ns in namespaces for p in kube.list_resources("riskpolicies", ns)]

    found = await asyncio.to_thread(listed)
    existing = {kv.policy_key(p["metadata"]["namespace"], p["metadata"]["name"]) for p in found}
    mine = None if namespaces is None else {subjects.token(ns) for ns in namespaces}
    removed = 0
    for key in keys:
        if key not in existing and (mine is None or key.split(".", 1)[0] in mine):
            await bucket.delete(key)
            removed += 1
    return removed
