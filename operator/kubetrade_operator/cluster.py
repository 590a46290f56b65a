"""The seam the reconcilers work through: everything they read from or write to "the cluster".

Two implementations run the same reconcilers, review and status feed:

* :data:`KUBE` - the kube-apiserver, through :mod:`kubetrade_operator.kube` (server-side apply,
  the status subresource), kopf's indices (:mod:`kubetrade_operator.cache`) and kopf's Events;
* ``kubetrade up``'s local cluster (:mod:`kubetrade.localstack.cluster`) - the resources in the
  local store (PostgreSQL), and a child applier that starts runner tasks for runner Deployments.

The methods are synchronous: kopf runs sync handlers on worker threads, and the local cluster
bridges to its event loop the same way.
"""

from __future__ import annotations

from typing import Any, Protocol

import kopf

from kubetrade_operator import cache, kube

Objects = list[dict[str, Any]]
"""A listing of resources, as the API server returns them."""


class Cluster(Protocol):
    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A kubetrade resource, or None."""
        ...

    def list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        """Every kubetrade resource of a kind in a namespace."""
        ...

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None: ...

    def patch_spec(self, plural: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """A merge patch of the whole object (``{"spec": {...}}``): a person's edit, made by the review."""
        ...

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Make a child object (ConfigMap, Deployment, CronJob, ...) as desired; returns it as observed."""
        ...

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def ensure_namespace(self, namespace: str, objects: Objects) -> None:
        """The per-namespace objects the children need (service accounts, role bindings)."""
        ...

    def riskpolicy(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A RiskPolicy as last seen (an index on a cluster: no request per lookup)."""
        ...

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """An Event about a resource, for a person reading ``kubectl describe``."""
        ...


class KubeCluster:
    """The kube-apiserver, as the operator in a cluster sees it."""

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        if plural == "strategies":
            return cache.strategy(namespace, name)
        if plural == "riskpolicies":
            return cache.riskpolicy(namespace, name)
        return kube.get_resource(plural, namespace, name)

    def list(self, plural: str, namespace: str) -> Objects:
        if plural == "strategies":
            return cache.strategies_in(namespace)
        return kube.list_resources(plural, namespace)

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        kube.patch_status(plural, namespace, name, status)

    def patch_spec(self, plural: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        kube.patch_spec(plural, namespace, name, patch)

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        return kube.apply(obj)

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return kube.get_deployment(namespace, name)

    def ensure_namespace(self, namespace: str, objects: Objects) -> None:
        kube.ensure_namespace(namespace, objects)

    def riskpolicy(self, namespace: str, name: str) -> dict[str, Any] | None:
        return cache.riskpolicy(namespace, name)

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        kopf.event(kube.as_body(obj), type=type_, reason=reason, message=message)


KUBE: Cluster = KubeCluster()
