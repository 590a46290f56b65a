"""What the operator's watch streams already know, kept as kopf indices (in memory).

A Strategy's reconcile needs its RiskPolicy, and a runner event needs its Strategy; both
arrive on watch streams kopf holds open anyway.  Reading them from an index instead of a
GET per reconcile takes one request per lookup off the API server.  kopf fills every index
from its initial listing before the first handler runs, and updates it before the handlers
of the same event, so a lookup is never older than the last event kopf has seen.  A write
this process made is visible once its watch event arrives: code that has just written
(the status feed after a breaker report) passes the fresh object along instead.

Outside a running operator (no index captured) the lookups fall back to a GET.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from kubetrade.resources import GROUP, VERSION
from kubetrade_operator import kube

_indices: dict[str, Mapping[Any, Any]] = {}


def capture(indices: Mapping[str, Any]) -> None:
    """Keep kopf's live index objects (given to the startup handler) for code outside handlers."""
    for name in ("riskpolicy_index", "strategy_index"):
        if name in indices:
            _indices[name] = indices[name]


def _trimmed(body: kopf.Body) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "generation", "deletionTimestamp", "labels") if k in meta
        },
        "spec": body.get("spec") or {},
        "status": body.get("status") or {},
    }


# Async: kopf would run a sync index function on a worker thread, for every event.
@kopf.index(GROUP, VERSION, "riskpolicies")
async def riskpolicy_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): _trimmed(body)}


@kopf.index(GROUP, VERSION, "strategies")
async def strategy_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): _trimmed(body)}


def _lookup(index: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    found = _indices.get(index)
    if found is None:
        return kube.get_resource(plural, namespace, name)
    store = found.get((namespace, name))
    values = list(store) if store is not None else []  # list(): one atomic copy under the GIL
    return values[0] if values else None


def riskpolicy(namespace: str, name: str) -> dict[str, Any] | None:
    return _lookup("riskpolicy_index", "riskpolicies", namespace, name)


def strategy(namespace: str, name: str) -> dict[str, Any] | None:
    return _lookup("strategy_index", "strategies", namespace, name)


def strategies_in(namespace: str) -> list[dict[str, Any]]:
    """Every Strategy of a namespace (from the index, else one LIST)."""
    found = _indices.get("strategy_index")
    if found is None:
        return kube.list_resources("strategies", namespace)
    keys = [k for k in list(found) if k[0] == namespace]
    return [body for k in keys if (body := strategy(namespace, k[1])) is not None]
