"""The workloads' one seam to the Kubernetes API.

The operator owns the cluster; workloads only need to say whether they can reach it
(health) and, later, to read or update kubetrade resources.  Every such call goes
through this module so that the dependency stays narrow, visible and easy to replace
when the platform runs without Kubernetes (``kubetrade up``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol

from kubetrade.resources.base import GROUP, VERSION


def configured() -> bool:
    """Whether there is a cluster to talk to: in-cluster service account or a kubeconfig."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST") or os.environ.get("KUBECONFIG"))


@lru_cache(maxsize=1)
def _api_client() -> Any:
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
        info = client.VersionApi(_api_client()).get_code(_request_timeout=deadline)
        return str(info.git_version)

    return await asyncio.wait_for(asyncio.to_thread(_version), deadline + 1)


# --- kubetrade resources and Jobs ---------------------------------------------------------------
#
# The API reads and writes custom resources through :class:`ResourceStore`.  On a cluster
# that is the API server (the source of truth); without one it is a table in PostgreSQL
# (:class:`kubetrade.storage.resources.DatabaseStore`) with the same semantics: names unique
# per namespace, resourceVersion for optimistic locking, generation bumped by spec changes,
# status kept apart from spec.


class StoreError(Exception):
    """A resource operation the store refused; ``status`` is the HTTP status that fits."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(StoreError):
    status = 404


class Conflict(StoreError):
    status = 409


class Invalid(StoreError):
    status = 422


class Forbidden(StoreError):
    """The cluster does not let the API do this (its ServiceAccount's RBAC, an admission policy)."""

    status = 403


class Unavailable(StoreError):
    """The cluster could not be reached or did not answer in time; retrying later may work."""

    status = 503


class BadGateway(StoreError):
    """The cluster answered something the API cannot use (its own credentials refused, say)."""

    status = 502


class ResourceStore(Protocol):
    """Where kubetrade resources live: the cluster, or the local database."""

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]: ...

    async def list(self, plural: str, namespace: str) -> list[dict[str, Any]]: ...

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def replace(self, plural: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def delete(self, plural: str, namespace: str, name: str) -> None: ...


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

        return client.CustomObjectsApi(_api_client())

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

    async def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Start a batch/v1 Job (a backtest, say) and return it as the API server stored it."""
        from kubernetes import client

        api = client.BatchV1Api(_api_client())
        job = await self._call(f"jobs/{body['metadata']['name']}", api.create_namespaced_job, namespace, body)
        obj: dict[str, Any] = _api_client().sanitize_for_serialization(job)
        return obj


def resource_store(pool: Any) -> ResourceStore | None:
    """The cluster when there is one, else the local database; None when there is neither."""
    if configured():
        return KubernetesStore()
    if pool is None:
        return None
    from kubetrade.storage.resources import DatabaseStore

    return DatabaseStore(pool)
