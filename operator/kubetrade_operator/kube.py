"""The operator's thin I/O layer over the Kubernetes API.

Children are written with server-side apply under one field manager, so applying the
desired object is idempotent, repairs drift in every field the operator owns, and
leaves fields owned by others (an HPA, a person's annotation) alone.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from kubetrade.resources import GROUP, VERSION

FIELD_MANAGER = "kubetrade-operator"
_lock = threading.Lock()


@lru_cache(maxsize=1)
def api_client() -> client.ApiClient:
    import os

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
    cfg = client.Configuration.get_default_copy()
    cfg.connection_pool_maxsize = 32
    return client.ApiClient(cfg)


@lru_cache(maxsize=1)
def dynamic() -> DynamicClient:
    with _lock:
        return DynamicClient(api_client())  # type: ignore[no-untyped-call]


# The kinds the operator writes, by (apiVersion, kind): their plural.  Applying these is one
# plain PATCH with a JSON answer; anything else goes through the dynamic client's discovery.
_PLURALS = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("apps/v1", "Deployment"): "deployments",
    ("batch/v1", "CronJob"): "cronjobs",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
}


def request(
    method: str,
    path: str,
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    """One plain API request with a JSON answer (no model classes, no discovery)."""
    import json

    api = api_client()
    method, url, headers, payload, post = api.param_serialize(
        method=method,
        resource_path=path,
        query_params=query or [],
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(method, url, header_params=headers, body=payload, post_params=post)
    data = response.read()  # type: ignore[no-untyped-call]
    if not 200 <= response.status <= 299:
        raise ApiException(status=response.status, reason=response.reason, body=data)
    return cast(dict[str, Any], json.loads(data))


def apply(obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply one object; returns what the server stored."""
    plural = _PLURALS.get((obj["apiVersion"], obj["kind"]))
    namespace = obj["metadata"].get("namespace")
    if plural is not None and namespace:
        group = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
        return request(
            "PATCH",
            f"{group}/namespaces/{namespace}/{plural}/{obj['metadata']['name']}",
            obj,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
    resource = dynamic().resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    result = resource.server_side_apply(
        body=obj,
        name=obj["metadata"]["name"],
        namespace=obj["metadata"].get("namespace"),
        field_manager=FIELD_MANAGER,
        force_conflicts=True,
    )
    return result.to_dict()  # type: ignore[no-any-return]


_ensured: dict[str, float] = {}
_ensure_lock = threading.Lock()


def ensure_namespace(namespace: str, objects: list[dict[str, Any]], every: float = 300.0) -> None:
    """Apply per-namespace objects, at most every ``every`` seconds per namespace (they rarely change)."""
    import time

    now = time.monotonic()
    if now - _ensured.get(namespace, -every) < every:
        return
    with _ensure_lock:  # concurrent reconciles of one new namespace apply them once
        if now - _ensured.get(namespace, -every) < every:
            return
        for obj in objects:
            apply(obj)
        _ensured[namespace] = time.monotonic()


def as_body(obj: dict[str, Any]) -> Any:
    """A plain object as kopf's Body, for posting Events about objects we fetched ourselves."""
    import kopf

    return kopf.Body(cast(Any, obj))


def custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client())


def get_resource(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return cast(dict[str, Any], custom().get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def list_resources(plural: str, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
    result = cast(dict[str, Any], custom().list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **kwargs))
    return list(result.get("items", []))


def list_cluster_resources(plural: str) -> list[dict[str, Any]]:
    result = cast(dict[str, Any], custom().list_cluster_custom_object(GROUP, VERSION, plural))
    return list(result.get("items", []))


def patch_status(plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
    custom().patch_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name, {"status": status})


def patch_spec(plural: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
    custom().patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, patch)


def get_deployment(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        dep = client.AppsV1Api(api_client()).read_namespaced_deployment(name, namespace)
        return cast(dict[str, Any], api_client().sanitize_for_serialization(dep))  # type: ignore[no-untyped-call]
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def list_pods(namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    """The pods in ``namespace`` with all of ``labels``, as the API server returns them."""
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    pods = client.CoreV1Api(api_client()).list_namespaced_pod(namespace, label_selector=selector)
    out = cast(dict[str, Any], api_client().sanitize_for_serialization(pods))  # type: ignore[no-untyped-call]
    return list(out.get("items") or [])
