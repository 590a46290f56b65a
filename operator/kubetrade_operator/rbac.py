"""The operator's permissions, each with the reason it is needed: least privilege, written once.

The Helm chart's ClusterRole is generated from :data:`RULES` (``kubetrade operator rbac``)
and a test runs the operator under exactly these rules against a real API server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubetrade.resources import GROUP


@dataclass(frozen=True)
class Permission:
    api_group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    resource_names: tuple[str, ...] = ()


RULES: tuple[Permission, ...] = (
    Permission(
        GROUP,
        ("strategies", "goals", "riskpolicies", "collectors"),
        ("get", "list", "watch", "patch"),
        "watch the four kinds; patch finalizers and kopf's annotations; the review patches Strategy specs "
        "(promote to live, retire)",
    ),
    Permission(
        GROUP,
        ("strategies/status", "goals/status", "riskpolicies/status", "collectors/status"),
        ("get", "patch"),
        "write phase, conditions and the figures workloads report",
    ),
    Permission(
        "apps",
        ("deployments",),
        ("get", "list", "watch", "patch", "create"),
        "runner and collector Deployments, by server-side apply; watched to repair drift at once",
    ),
    Permission(
        "",
        ("pods",),
        ("get", "list", "watch"),
        "reads runner pods to say on the Strategy why its runner cannot run (image, Secret, crash loop)",
    ),
    Permission(
        "", ("configmaps",), ("get", "patch", "create"), "the resolved configuration of each runner and collector"
    ),
    Permission("batch", ("cronjobs",), ("get", "patch", "create"), "the evolution CronJob of each Goal"),
    Permission(
        "",
        ("serviceaccounts",),
        ("get", "patch", "create"),
        "per-namespace service accounts of the workloads (runners get no token)",
    ),
    Permission(
        "rbac.authorization.k8s.io",
        ("rolebindings",),
        ("get", "patch", "create"),
        "binds the evolution job's service account to the kubetrade-evolution ClusterRole, per namespace",
    ),
    Permission("", ("events",), ("create", "patch"), "audit trail: phase changes, promotions, retirements"),
    Permission("events.k8s.io", ("events",), ("create", "patch"), "the same Events through the newer API group"),
    Permission("coordination.k8s.io", ("leases",), ("get", "create", "update"), "the leader Lease: one active replica"),
    Permission(
        "admissionregistration.k8s.io",
        ("validatingwebhookconfigurations",),
        ("create", "patch"),
        "the operator keeps its webhook configuration (URL and CA bundle) current",
    ),
    Permission(
        "apiextensions.k8s.io",
        ("customresourcedefinitions",),
        ("get", "list", "watch"),
        "kopf discovers which of its resources exist and notices CRD upgrades",
    ),
    Permission("", ("namespaces",), ("get", "list", "watch"), "kopf follows namespaces when watching cluster-wide"),
    Permission(
        "rbac.authorization.k8s.io",
        ("clusterroles",),
        ("bind",),
        "may bind exactly the kubetrade-evolution ClusterRole, without holding its rights itself",
        resource_names=("kubetrade-evolution",),
    ),
)

EVOLUTION_RULES: tuple[Permission, ...] = (
    Permission(
        GROUP,
        ("strategies",),
        ("get", "list", "watch", "create", "patch", "update"),
        "the evolution job creates the strategies it selects and records their backtests",
    ),
    Permission(GROUP, ("strategies/status",), ("get", "patch"), "it records each new strategy's backtest results"),
    Permission(GROUP, ("goals", "riskpolicies"), ("get", "list"), "it reads its Goal and the policy it must respect"),
    Permission(GROUP, ("goals/status",), ("get", "patch"),
               "it records on its Goal what the gates decided (lastSelection, lastEvolution)"),
    Permission("", ("events",), ("create",), "it leaves an Event on its Goal: strategies to paper, or none passed"),
)


def _rule(p: Permission) -> dict[str, Any]:
    rule: dict[str, Any] = {"apiGroups": [p.api_group], "resources": list(p.resources), "verbs": list(p.verbs)}
    if p.resource_names:
        rule["resourceNames"] = list(p.resource_names)
    return rule


def cluster_role(name: str = "kubetrade-operator", rules: tuple[Permission, ...] = RULES) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "kubetrade"}},
        "rules": [_rule(p) for p in rules],
    }


def evolution_cluster_role() -> dict[str, Any]:
    """What evolution jobs may do; the operator binds it per namespace (it may bind, not hold, these rights)."""
    return cluster_role("kubetrade-evolution", EVOLUTION_RULES)
