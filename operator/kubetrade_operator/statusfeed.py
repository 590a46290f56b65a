"""Workload status -> resource status.

Runners, collectors and the risk manager publish :class:`StatusReport` messages on
``status.<kind>.<namespace>.<name>``.  The feed validates each against the kind's status
model and merges it into the resource's status subresource; fields the operator owns
(phase, conditions, observedGeneration, ...: the fields its status models mark ``OPERATOR``)
are never taken from a workload.  A report
that does not parse is dead-lettered with the reason, never raised.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import ValidationError

from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import StatusReport
from kubetrade.observability.metrics import export_status
from kubetrade.resources import BY_KIND
from kubetrade.resources.base import operator_owned
from kubetrade_operator import kube, riskpolicies
from kubetrade_operator.cluster import KUBE, Cluster, KubeCluster
from kubetrade_operator.conditions import set_condition
from kubetrade_operator.metrics import STATUS_REPORTS

log = logging.getLogger("kubetrade.operator.statusfeed")

PLURALS = {kind: model.plural for kind, model in BY_KIND.items()}
OPERATOR_OWNED = {kind: operator_owned(model.status_model) for kind, model in BY_KIND.items()}
"""Per kind, the status fields the operator writes itself (declared on the status models)."""
COLLECTOR_PHASES = {"Running", "Disabled", "Failed"}


def merge_fields(report: StatusReport, current: dict[str, Any]) -> dict[str, Any]:
    """The status patch a report asks for, validated; raises ValueError when it does not fit."""
    model = BY_KIND[report.kind].status_model
    wanted = {k: v for k, v in report.status.items() if k not in OPERATOR_OWNED[report.kind]}
    try:
        parsed = model.model_validate(wanted)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{report.kind} status {'.'.join(map(str, err['loc']))}: {err['msg']}") from exc
    patch: dict[str, Any] = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    if report.kind == "Strategy" and isinstance(report.status.get("message"), str):
        # The runner's health: an unhealthy runner makes the Strategy Degraded until it recovers.
        health = str(report.status["message"])
        gen = current.get("observedGeneration")
        conds = current.get("conditions")
        if health != "healthy":
            # a refused model (missing, wrong digest, other features, NaN inputs) has a reason of its own
            reason = "ModelRefused" if health.startswith("model refused") else "RunnerUnhealthy"
            patch["conditions"] = set_condition(conds, "Degraded", True, reason, health, gen)
        elif any(c.get("reason") in ("RunnerUnhealthy", "ModelRefused") for c in conds or []):
            patch["conditions"] = set_condition(conds, "Degraded", False, "AsExpected", "runner healthy again", gen)
    if report.kind == "Collector" and report.status.get("phase") in COLLECTOR_PHASES:
        phase = str(report.status["phase"])
        patch["phase"] = phase
        gen = current.get("observedGeneration")
        reason = str(report.status.get("reason") or ("NoCredentials" if phase == "Disabled" else phase))
        message = str(report.status.get("lastError") or report.status.get("message") or "")
        patch["conditions"] = set_condition(
            current.get("conditions"), "Disabled", phase == "Disabled", reason, message, gen
        )
    return patch


async def apply_report(nc: Any, msg: Any, cluster: Cluster = KUBE) -> None:
    """One status report merged into its resource's status (or dead-lettered with the reason)."""
    try:
        report = codec.decode(StatusReport, msg.data)
        plural = PLURALS[report.kind]
        body = await asyncio.to_thread(_fresh, cluster, plural, report)
        if body is None:
            STATUS_REPORTS.labels(report.kind, "unknown_object").inc()
            return
        patch = merge_fields(report, body.get("status") or {})
        await asyncio.to_thread(cluster.patch_status, plural, report.namespace, report.name, patch)
        STATUS_REPORTS.labels(report.kind, "applied").inc()
        export_status(
            report.kind, report.namespace, report.name, {**(body.get("status") or {}), **patch}, body.get("spec")
        )
        before = ((body.get("status") or {}).get("breaker") or {}).get("state")
        after = (patch.get("breaker") or {}).get("state")
        if report.kind == "RiskPolicy" and after and after != before:
            merged = {**body, "status": {**(body.get("status") or {}), **patch}}
            await riskpolicies.repause(report.namespace, report.name, merged, cluster)
    except (codec.BadMessage, ValueError) as exc:
        STATUS_REPORTS.labels("invalid", "dead_lettered").inc()
        log.warning("bad status report", extra={"subject": msg.subject, "error": str(exc)})
        await codec.dead_letter(nc, msg.subject, msg.data, str(exc))
    except Exception as exc:
        STATUS_REPORTS.labels("unknown", "error").inc()
        log.error("status report not applied", extra={"subject": msg.subject, "error": repr(exc)})


def _fresh(cluster: Cluster, plural: str, report: StatusReport) -> dict[str, Any] | None:
    """The object as the API server has it now, not as an index last saw it: the merge builds on
    its current status (the report before this one may have just been written)."""
    if isinstance(cluster, KubeCluster):
        return kube.get_resource(plural, report.namespace, report.name)
    return cluster.get(plural, report.namespace, report.name)


async def subscribe(nc: Any) -> Any:
    """Subscribe the feed; a queue group keeps it to one replica even if two run briefly."""

    async def handle(msg: Any) -> None:
        await apply_report(nc, msg)

    return await nc.subscribe(subjects.STATUS_ALL, queue="kubetrade-operator", cb=handle)
