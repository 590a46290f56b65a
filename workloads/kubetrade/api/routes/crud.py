"""The create/read/replace/delete flow of a custom resource through the resource store.

``/api/v1/strategies`` and ``/api/v1/collectors`` act on their resources the same way: through
:func:`kubetrade.cluster.resource_store` (the API server on a cluster, the database locally),
store errors passed on with their status, a stored object that fails its model answered with
502, and a replace that keeps what the platform put on the object (finalizers, owners, the
read ``resourceVersion`` unless the client sent one).  :class:`Resources` holds that flow once;
each route module keeps its own paths, status codes, scopes, summaries and filters.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import HTTPException, Query, Request, Response
from pydantic import Field, StringConstraints, ValidationError

from kubetrade import cluster
from kubetrade.resources import API_VERSION
from kubetrade.resources.base import DNS1123Name, LabelKey, LabelValue, Model
from kubetrade.validation.manifests import manifest_problems

Namespace = Annotated[
    str | None,
    Query(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63, description="Namespace; the API's own when absent."
    ),
]
After = Annotated[str | None, Query(max_length=253, description="Name of the last item of the previous page.")]


class Metadata(Model):
    """The parts of Kubernetes object metadata a client sets."""

    name: DNS1123Name
    labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=64)] = Field(default_factory=dict)
    annotations: Annotated[dict[LabelKey, Annotated[str, StringConstraints(max_length=4096)]], Field(max_length=64)] = (
        Field(default_factory=dict)
    )
    resource_version: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")] | None = None
    """On replace: the version read; the write fails with 409 if the object changed since."""


T = TypeVar("T")


async def sent_document(request: Request, body: Model) -> Any:
    """What the client sent, for :func:`manifest_problems`: the JSON of an API request (judged with the API
    server's strict JSON types: ``"warmupBars": "500"`` is refused here as it is there), or the model's own
    dump when the request was not JSON (the console builds the model from its form)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("", "application/json") or kind.endswith("+json"):  # as FastAPI reads a JSON body
        return json.loads(await request.body())
    return body.model_dump(by_alias=True, exclude_none=True, mode="json")


def namespace(request: Request, namespace: str | None) -> str:
    """The namespace asked for, or the API's own."""
    return namespace or request.app.state.settings.namespace


async def call(coro: Any) -> Any:
    """Await a store call; a :class:`cluster.StoreError` becomes an HTTP error of its status."""
    try:
        return await coro
    except cluster.StoreError as exc:
        raise HTTPException(exc.status, exc.message) from exc


@dataclass(frozen=True)
class Resources(Generic[T]):
    """One kind of custom resource, as the API reads and writes it."""

    kind: str
    """The resource's kind, e.g. ``Strategy``."""
    plural: str
    """Its plural, as the store names it, e.g. ``strategies``."""
    parse: Callable[[dict[str, Any]], T]
    """Its model's parse of a stored object."""
    nowhere: str
    """The 503 message when there is neither a cluster nor a database."""
    def store(self, request: Request) -> cluster.ResourceStore:
        found = cluster.resource_store(getattr(request.app.state, "db_pool", None))
        if found is None:
            raise HTTPException(503, self.nowhere)
        return found

    def present(self, obj: dict[str, Any]) -> T:
        """A stored object as its model, without ``managedFields``; 502 if it is not valid."""
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
        try:
            return self.parse({**obj, "metadata": meta})
        except ValidationError as exc:
            raise HTTPException(
                502, f"stored {self.kind} {meta.get('name')} is not valid: {exc.error_count()} errors"
            ) from exc

    async def manifest(self, request: Request, body: Any) -> dict[str, Any]:
        """A request (``metadata`` and ``spec``) as a manifest, judged as ``kubectl apply`` with the webhook
        judges it (:mod:`kubetrade.validation`: the API server's strict JSON types, then the semantic checks);
        any problem answers 422."""
        problems = manifest_problems(await sent_document(request, body), expect_kind=self.kind)
        if problems:
            raise HTTPException(422, "; ".join(problems))
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            **body.model_dump(by_alias=True, exclude_none=True, mode="json", include={"metadata", "spec"}),
        }

    async def page(
        self,
        request: Request,
        namespace_: str | None,
        limit: int,
        after: str | None,
        keep: Callable[[dict[str, Any]], bool] | None = None,
    ) -> tuple[list[T], str | None]:
        """One page of the objects by name after ``after`` that ``keep``: the items, the name to go on from."""
        objs = await call(self.store(request).list(self.plural, namespace(request, namespace_)))
        chosen = []
        for obj in sorted(objs, key=lambda o: o["metadata"]["name"]):
            if after is not None and obj["metadata"]["name"] <= after:
                continue
            if keep is not None and not keep(obj):
                continue
            chosen.append(obj)
            if len(chosen) > limit:
                break
        more = len(chosen) > limit
        items = [self.present(o) for o in chosen[:limit]]
        return items, (chosen[limit - 1]["metadata"]["name"] if more else None)

    async def create(self, request: Request, response: Response, namespace_: str | None, body: Any) -> T:
        """Create from a request (any ``resourceVersion`` dropped); ``Location`` names the new object."""
        ns = namespace(request, namespace_)
        manifest = await self.manifest(request, body)
        manifest["metadata"].pop("resourceVersion", None)
        created = await call(self.store(request).create(self.plural, ns, manifest))
        response.headers["Location"] = f"/api/v1/{self.plural}/{created['metadata']['name']}?namespace={ns}"
        return self.present(created)

    async def get(self, request: Request, namespace_: str | None, name: str) -> T:
        return self.present(await call(self.store(request).get(self.plural, namespace(request, namespace_), name)))

    async def replace(self, request: Request, namespace_: str | None, name: str, body: Any) -> T:
        """Replace spec, labels and annotations, keeping what the platform put there."""
        if body.metadata.name != name:
            raise HTTPException(422, f"metadata.name {body.metadata.name!r} does not match the path's {name!r}")
        ns = namespace(request, namespace_)
        store = self.store(request)
        manifest = await self.manifest(request, body)
        current = await call(store.get(self.plural, ns, name))
        meta = manifest["metadata"]
        # Keep what the platform put there (finalizers, owners); resourceVersion only if the client sent one.
        if body.metadata.resource_version is None:
            meta["resourceVersion"] = current["metadata"].get("resourceVersion")
        for kept in ("finalizers", "ownerReferences"):
            if kept in current["metadata"]:
                meta[kept] = current["metadata"][kept]
        return self.present(await call(store.replace(self.plural, ns, name, manifest)))

    async def delete(self, request: Request, namespace_: str | None, name: str) -> str:
        """Delete the object; the namespace it was in."""
        ns = namespace(request, namespace_)
        await call(self.store(request).delete(self.plural, ns, name))
        return ns
