"""The seam itself: what a resource store promises and the errors it raises.

The API reads and writes custom resources through :class:`ResourceStore`.  On a cluster
that is the API server (the source of truth, :class:`kubetrade.cluster.kube.KubernetesStore`);
without one it is a table in PostgreSQL (:class:`kubetrade.cluster.database.DatabaseStore`)
with the same semantics: names unique per namespace, resourceVersion for optimistic
locking, generation bumped by spec changes, status kept apart from spec.
"""

from __future__ import annotations

from typing import Any, Protocol

Objects = list[dict[str, Any]]
"""A listing of resources, as the API server returns them."""


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

    async def list_all(self, plural: str) -> Objects:
        """Every object of a kind, in every namespace."""
        ...

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def replace(self, plural: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def delete(self, plural: str, namespace: str, name: str) -> None: ...

    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Merge fields into an object's status (the status subresource: spec and generation untouched)."""
        ...
