"""The cluster side of the seam: the API server, through the official Kubernetes client.

The client is imported inside the functions: importing ``kubernetes`` takes about 2 s here
(``python -X importtime -c 'import kubernetes.client'``) and most workloads, and
``kubetrade up``, never need it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from kubetrade.cluster.seam import BadGateway, Conflict, Forbidden, Invalid, NotFound, StoreError, Unavailable
from kubetrade.resources.base import GROUP, VERSION

Objects = list[dict[str, Any]]
"""A listing of resources, as the API server returns them."""


def configured() -> bool:
    """Whether there is a cluster to talk to: in-cluster service account or a kubeconfig."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST") or os.environ.get("KUBECONFIG"))


@lru_cache(maxsize=1)
def api_client() -> Any:
    from kubernetes import client, config

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
    return client.ApiClient()


async def ping(deadline: float = 3.0) -> str:
    """The API server's version, or raise."""
    from kubernetes import client

    def _version() -> str:
        info = client.VersionApi(api_client()).get_code(_request_timeout=deadline)
        return str(info.git_version)

    return await asyncio.wait_for(asyncio.to_thread(_version), deadline + 1)


def _translate(exc: Exception, what: str) -> Exception:
    """Every failure of a cluster call as a :class:`StoreError` with the status that fits.

    404, 409 and 422 are the client's (no such object, a conflict, an invalid object; 400 and
    410 too); 403 is the cluster refusing the API itself, said as such; 401 means the API's
    own credentials are refused (502); throttling, server errors, timeouts and unreachable
    servers are 503.  The message is the API server's own, cut short.
    """
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, StoreError):
        return exc
    if not isinstance(exc, ApiException):
        if isinstance(exc, OSError | TimeoutError) or type(exc).__module__.startswith("urllib3"):
            return Unavailable(f"{what}: the Kubernetes API did not answer ({type(exc).__name__})")
        return exc
    try:
        message = json.loads(exc.body or "{}").get("message") or exc.reason
    except (ValueError, AttributeError):
        message = exc.reason
    message = str(message)[:1000]
    status = int(exc.status or 0)
    if status == 403:
        return Forbidden(f"{what}: the cluster does not allow the API this ({message})")
    if status == 401:
        return BadGateway(f"{what}: the cluster refused the API's credentials")
    by_status: dict[int, type[StoreError]] = {400: Invalid, 404: NotFound, 409: Conflict, 410: Conflict,
                                              422: Invalid}
    error = by_status.get(status)
    if error is not None:
        return error(f"{what}: {message}")
    return Unavailable(f"{what}: the Kubernetes API answered {status} ({message})")


class KubernetesStore:
    """Custom resources on the API server, through the official client (in worker threads)."""

    PAGE = 500

    def __init__(self, deadline: float = 10.0) -> None:
        self.deadline = deadline

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, _request_timeout=self.deadline, **kwargs)
        except Exception as exc:
            raise _translate(exc, what) from exc

    def _custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(api_client())

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = await self._call(f"{plural}/{name}", self._custom().get_namespaced_custom_object,
                                               GROUP, VERSION, namespace, plural, name)
        return obj

    async def list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await self._call(plural, self._custom().list_namespaced_custom_object, GROUP, VERSION,
                                    namespace, plural, limit=self.PAGE, _continue=token)
            items += page.get("items", [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    async def list_all(self, plural: str) -> Objects:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await self._call(plural, self._custom().list_cluster_custom_object, GROUP, VERSION, plural,
                                    limit=self.PAGE, _continue=token)
            items += page.get("items", [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("metadata", {}).get("name")
        obj: dict[str, Any] = await self._call(f"{plural}/{name}", self._custom().create_namespaced_custom_object,
                                               GROUP, VERSION, namespace, plural, body)
        return obj

    async def replace(self, plural: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        obj: dict[str, Any] = await self._call(f"{plural}/{name}", self._custom().replace_namespaced_custom_object,
                                               GROUP, VERSION, namespace, plural, name, body)
        return obj

    async def delete(self, plural: str, namespace: str, name: str) -> None:
        await self._call(f"{plural}/{name}", self._custom().delete_namespaced_custom_object,
                         GROUP, VERSION, namespace, plural, name)

    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Merge fields into an object's status subresource (a workload's findings, e.g. backtest results)."""
        obj: dict[str, Any] = await self._call(
            f"{plural}/{name}/status", self._custom().patch_namespaced_custom_object_status,
            GROUP, VERSION, namespace, plural, name, {"status": status})
        return obj

    async def create_event(self, involved: dict[str, Any], event_type: str, reason: str, message: str,
                           component: str) -> dict[str, Any]:
        """Record a core/v1 Event on ``involved`` (a resource as read), as ``kubectl describe`` shows it."""
        from datetime import UTC, datetime

        from kubernetes import client

        meta = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": involved["apiVersion"], "kind": involved["kind"], "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta.get("uid")},
            "type": event_type, "reason": reason, "message": message[:1024],
            "source": {"component": component}, "reportingComponent": component,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        api = client.CoreV1Api(api_client())
        event = await self._call(f"events/{meta['name']}", api.create_namespaced_event, meta["namespace"], body)
        obj: dict[str, Any] = api_client().sanitize_for_serialization(event)
        return obj

    async def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Start a batch/v1 Job (a backtest, say) and return it as the API server stored it."""
        from kubernetes import client

        api = client.BatchV1Api(api_client())
        job = await self._call(f"jobs/{body['metadata']['name']}", api.create_namespaced_job, namespace, body)
        obj: dict[str, Any] = api_client().sanitize_for_serialization(job)
        return obj
