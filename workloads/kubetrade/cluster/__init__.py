"""The workloads' one seam to the Kubernetes API, and its stand-in without Kubernetes.

The operator owns the cluster; workloads only say whether they can reach it (health),
read and write kubetrade resources and start Jobs.  Every such call goes through this
package so that the dependency stays narrow and visible: ``seam`` (what a store promises,
its errors), ``kube`` (the API server) and ``database`` (the same semantics in PostgreSQL,
for ``kubetrade up``).
"""

from __future__ import annotations

from typing import Any

from kubetrade.cluster.database import DatabaseStore
from kubetrade.cluster.kube import KubernetesStore, api_client, configured, ping
from kubetrade.cluster.seam import (
    BadGateway,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ResourceStore,
    StoreError,
    Unavailable,
)

__all__ = [
    "BadGateway",
    "Conflict",
    "DatabaseStore",
    "Forbidden",
    "Invalid",
    "KubernetesStore",
    "NotFound",
    "ResourceStore",
    "StoreError",
    "Unavailable",
    "api_client",
    "configured",
    "ping",
    "resource_store",
]


def resource_store(pool: Any) -> ResourceStore | None:
    """The cluster when there is one, else the local database; None when there is neither."""
    if configured():
        return KubernetesStore()
    if pool is None:
        return None
    return DatabaseStore(pool)
