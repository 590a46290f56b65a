"""The operator's permissions, each with the reason it is needed: least privilege, written once.

The Helm chart's roles are generated from these rules (``scripts/generate-chart-files.py``):
watching the whole cluster, one ClusterRole with :data:`NAMESPACED`, :data:`CLUSTER` and
:data:`CLUSTERWIDE`; watching some namespaces (``operator.watchNamespaces``), a Role with
:data:`NAMESPACED` in each of them and a ClusterRole with :data:`CLUSTER` only; the leader
Lease by a Role in the operator's own namespace.  The API's rules (:data:`API_RULES`) follow
the same two modes.  Tests run the operator and the API under exactly these rules, in both
modes, against a real API server.
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


WEBHOOK_CONFIGURATION = "validate.kubetrade.io"
"""The one ValidatingWebhookConfiguration the operator may touch (the chart creates it, empty)."""

NAMESPACED: tuple[Permission, ...] = (
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
    Permission(
        "rbac.authorization.k8s.io",
        ("clusterroles",),
        ("bind",),
        "may bind exactly the kubetrade-evolution ClusterRole, without holding its rights itself",
        resource_names=("kubetrade-evolution",),
    ),
)
"""What the operator does inside each namespace it watches: cluster-wide, or one Role per watched namespace."""

CLUSTER: tuple[Permission, ...] = (
    Permission(
        "admissionregistration.k8s.io",
        ("validatingwebhookconfigurations",),
        ("get", "patch"),
        "keeps its webhook configuration (URL and CA bundle) current; only that one, which the chart creates",
        resource_names=(WEBHOOK_CONFIGURATION,),
    ),
    Permission(
        "apiextensions.k8s.io",
        ("customresourcedefinitions",),
        ("get", "list", "watch"),
        "kopf discovers which of its resources exist and notices CRD upgrades",
    ),
)
"""Cluster-scoped objects, whatever the operator watches."""

CLUSTERWIDE: tuple[Permission, ...] = (
    Permission("", ("namespaces",), ("get", "list", "watch"), "kopf follows namespaces when watching cluster-wide"),
)
"""Only when the operator watches the whole cluster."""

LEASE: tuple[Permission, ...] = (
    Permission("coordination.k8s.io", ("leases",), ("get", "create", "update"), "the leader Lease: one active replica"),
)
"""In the operator's own namespace only (a Role)."""

RULES: tuple[Permission, ...] = NAMESPACED + CLUSTER + CLUSTERWIDE + LEASE
"""Everything, cluster-wide: what a single ClusterRole grants (the tests' cluster-wide mode)."""

API_RULES: tuple[Permission, ...] = (
    Permission(
        GROUP,
        ("strategies",),
        ("get", "list", "create", "update", "delete"),
        "GET/POST /api/v1/strategies, GET/PUT/DELETE /api/v1/strategies/{name}",
    ),
    Permission(
        GROUP,
        ("goals", "riskpolicies"),
        ("get", "list"),
        "GET /api/v1/goals/summary and POST /api/v1/position-sizing/calculate read goals and their policies",
    ),
    Permission(
        GROUP,
        ("collectors",),
        ("get", "list", "create", "update", "delete"),
        "GET/POST /api/v1/collectors, GET/PUT/DELETE /api/v1/collectors/{name}, POST .../stop|start set "
        "spec.suspend (the console's data sources page does the same through these routes)",
    ),
    Permission("batch", ("jobs",), ("create",), "POST /api/v1/strategies/{name}/backtest starts a backtest Job"),
)
"""What the API's routes do in the cluster, and nothing more (a test runs every route under exactly these)."""


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


def rules(permissions: tuple[Permission, ...]) -> list[dict[str, Any]]:
    return [_rule(p) for p in permissions]


def cluster_role(name: str = "kubetrade-operator", permissions: tuple[Permission, ...] = RULES) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "kubetrade"}},
        "rules": rules(permissions),
    }


def role(name: str, namespace: str, permissions: tuple[Permission, ...]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "kubetrade"}},
        "rules": rules(permissions),
    }


def evolution_cluster_role() -> dict[str, Any]:
    """What evolution jobs may do; the operator binds it per namespace (it may bind, not hold, these rights)."""
    return cluster_role("kubetrade-evolution", EVOLUTION_RULES)


CHART_FILES: dict[str, tuple[Permission, ...]] = {
    "operator-namespaced-rules.json": NAMESPACED,
    "operator-cluster-rules.json": CLUSTER,
    "operator-clusterwide-rules.json": CLUSTERWIDE,
    "operator-lease-rules.json": LEASE,
    "api-rules.json": API_RULES,
    "evolution-rules.json": EVOLUTION_RULES,
}
"""The chart's generated RBAC files (files/rbac/), each from its rules here."""
