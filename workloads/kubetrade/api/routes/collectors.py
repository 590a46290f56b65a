"""Collectors: their resources (create, read, replace, delete), their health, start/stop.

``/api/v1/collectors`` reads and writes Collector resources through the resource store, as
``/api/v1/strategies`` does Strategies: on a cluster the API server (where the operator then
runs the collector's Deployment), locally the database.  A spec is checked by the same model
as ``kubectl apply`` (the CRD is generated from it).

``/health/collectors`` reads the ``collector-health`` KV bucket every collector keeps
current, and says per collector whether its data is stale (no sample for longer than
``stale_after`` seconds while Running) - the same record the risk manager reads.

Start/stop set the Collector resource's ``spec.suspend`` through the resource store (the
API server on Kubernetes, where the operator then scales the workload; the database in
the local stack) and also tell a locally running collector over NATS, so it reacts at once.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import Field, ValidationError

from kubetrade import cluster
from kubetrade.api.deps import Limit, Page
from kubetrade.api.errors import CONFLICT, NOT_FOUND, UNPROCESSABLE, Problem, responses
from kubetrade.api.routes.strategies import Metadata, sent_document
from kubetrade.api.security import require
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import CollectorHealth
from kubetrade.resources import API_VERSION
from kubetrade.resources.base import Model
from kubetrade.resources.collector import Collector, CollectorSpec
from kubetrade.validation.manifests import manifest_problems

router = APIRouter(tags=["collectors"])

PLURAL = "collectors"
Name = Annotated[
    str, Path(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253, description="The Collector's name.")
]
Namespace = Annotated[
    str | None,
    Query(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63,
          description="Namespace; the API's own when absent."),
]


class CollectorState(Model):
    health: CollectorHealth
    stale: bool
    age_seconds: float | None
    """Seconds since the collector last reported."""


class CollectorsHealth(Model):
    status: str
    """healthy when no Running collector is stale or Failed."""
    collectors: list[CollectorState]


async def read_health(nc: Any) -> list[CollectorHealth]:
    from nats.js.errors import BucketNotFoundError, NoKeysError

    try:
        kv = await nc.jetstream().key_value(subjects.COLLECTOR_HEALTH_BUCKET)
        names = await kv.keys()
    except (BucketNotFoundError, NoKeysError):
        return []
    out = []
    for name in names:
        entry = await kv.get(name)
        if entry.value:
            out.append(codec.decode(CollectorHealth, entry.value))
    return out


@router.get("/health/collectors", response_model=CollectorsHealth)
async def collectors_health(
    request: Request, stale_after: Annotated[float, Query(gt=0, le=86_400)] = 300.0
) -> CollectorsHealth:
    nc = getattr(request.app.state, "nats", None)
    if nc is None or not nc.is_connected:
        raise HTTPException(503, "NATS is not connected: collector health is kept there")
    now = time.time() * 1000
    states = []
    for h in sorted(await read_health(nc), key=lambda h: (h.namespace, h.name)):
        lag = (now - h.last_sample_time) / 1000 if h.last_sample_time is not None else None
        stale = h.phase == "Running" and (lag is None or lag > stale_after)
        states.append(CollectorState(health=h, stale=stale, age_seconds=(now - h.time) / 1000))
    bad = any(s.stale or s.health.phase == "Failed" for s in states)
    return CollectorsHealth(status="unhealthy" if bad else "healthy", collectors=states)


def _store(request: Request) -> cluster.ResourceStore:
    store = cluster.resource_store(getattr(request.app.state, "db_pool", None))
    if store is None:
        raise HTTPException(503, "no cluster and no database: there is nowhere Collectors are kept")
    return store


def _namespace(request: Request, namespace: str | None) -> str:
    return namespace or request.app.state.settings.namespace


async def _call(coro: Any) -> Any:
    try:
        return await coro
    except cluster.StoreError as exc:
        raise HTTPException(exc.status, exc.message) from exc


def _present(obj: dict[str, Any]) -> Collector:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    try:
        return Collector.parse({**obj, "metadata": meta})
    except ValidationError as exc:
        raise HTTPException(
            502, f"stored Collector {meta.get('name')} is not valid: {exc.error_count()} errors"
        ) from exc


class CollectorRequest(Model):
    """A Collector to create or replace, as in a manifest (status is the collector's, not settable)."""

    api_version: Literal["kubetrade.io/v1alpha1"] = Field(default="kubetrade.io/v1alpha1", alias="apiVersion")
    kind: Literal["Collector"] = "Collector"
    metadata: Metadata
    spec: CollectorSpec


async def _checked(body: CollectorRequest, request: Request) -> dict[str, Any]:
    """The manifest, judged as ``kubectl apply`` with the webhook judges it (:mod:`kubetrade.validation`)."""
    problems = manifest_problems(await sent_document(request, body), expect_kind="Collector")
    if problems:
        raise HTTPException(422, "; ".join(problems))
    return _manifest(body)


def _manifest(body: CollectorRequest) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Collector",
        **body.model_dump(by_alias=True, exclude_none=True, mode="json", include={"metadata", "spec"}),
    }


@router.get("/api/v1/collectors", response_model=Page[Collector], summary="List collectors")
async def list_collectors(
    request: Request,
    namespace: Namespace = None,
    limit: Limit = 100,
    after: Annotated[
        str | None, Query(max_length=253, description="Name of the last item of the previous page.")
    ] = None,
) -> Page[Collector]:
    objs = await _call(_store(request).list(PLURAL, _namespace(request, namespace)))
    chosen = [o for o in sorted(objs, key=lambda o: o["metadata"]["name"])
              if after is None or o["metadata"]["name"] > after][: limit + 1]
    more = len(chosen) > limit
    items = [_present(o) for o in chosen[:limit]]
    return Page[Collector](items=items, next=items[-1].metadata["name"] if more else None)


@router.post(
    "/api/v1/collectors",
    status_code=201,
    response_model=Collector,
    responses=responses(CONFLICT, UNPROCESSABLE),
    dependencies=[require("admin")],
    summary="Create a collector",
)
async def create_collector(
    body: CollectorRequest, request: Request, response: Response, namespace: Namespace = None
) -> Collector:
    ns = _namespace(request, namespace)
    manifest = await _checked(body, request)
    manifest["metadata"].pop("resourceVersion", None)
    created = await _call(_store(request).create(PLURAL, ns, manifest))
    response.headers["Location"] = f"/api/v1/collectors/{created['metadata']['name']}?namespace={ns}"
    return _present(created)


@router.get("/api/v1/collectors/{name}", response_model=Collector, responses=NOT_FOUND, summary="Show a collector")
async def get_collector(name: Name, request: Request, namespace: Namespace = None) -> Collector:
    return _present(await _call(_store(request).get(PLURAL, _namespace(request, namespace), name)))


@router.put(
    "/api/v1/collectors/{name}",
    response_model=Collector,
    responses=responses(NOT_FOUND, CONFLICT, UNPROCESSABLE),
    dependencies=[require("admin")],
    summary="Replace a collector's spec, labels and annotations",
)
async def replace_collector(
    name: Name, body: CollectorRequest, request: Request, namespace: Namespace = None
) -> Collector:
    if body.metadata.name != name:
        raise HTTPException(422, f"metadata.name {body.metadata.name!r} does not match the path's {name!r}")
    ns = _namespace(request, namespace)
    store = _store(request)
    manifest = await _checked(body, request)
    current = await _call(store.get(PLURAL, ns, name))
    meta = manifest["metadata"]
    if body.metadata.resource_version is None:
        meta["resourceVersion"] = current["metadata"].get("resourceVersion")
    for kept in ("finalizers", "ownerReferences"):
        if kept in current["metadata"]:
            meta[kept] = current["metadata"][kept]
    return _present(await _call(store.replace(PLURAL, ns, name, manifest)))


@router.delete(
    "/api/v1/collectors/{name}",
    status_code=202,
    response_model=Problem,
    responses=NOT_FOUND,
    dependencies=[require("admin")],
    summary="Delete a collector (its workload goes with it)",
)
async def delete_collector(name: Name, request: Request, namespace: Namespace = None) -> Problem:
    ns = _namespace(request, namespace)
    await _call(_store(request).delete(PLURAL, ns, name))
    nc = getattr(request.app.state, "nats", None)
    if nc is not None and nc.is_connected:
        await nc.publish(subjects.collector_control(ns, name), b"stop")
    return Problem(detail=f"Collector {name} is being deleted; its workload stops")


async def _set_suspend(request: Request, name: str, namespace: str | None, suspend: bool) -> dict[str, Any]:
    ns = _namespace(request, namespace)
    store = _store(request)
    obj = await _call(store.get(PLURAL, ns, name))
    obj.setdefault("spec", {})["suspend"] = suspend
    obj = await _call(store.replace(PLURAL, ns, name, obj))
    nc = getattr(request.app.state, "nats", None)
    if nc is not None and nc.is_connected:
        await nc.publish(subjects.collector_control(ns, name), b"stop" if suspend else b"start")
    return {"namespace": ns, "name": name, "suspend": suspend}


@router.post("/api/v1/collectors/{name}/stop", dependencies=[require("admin")])
async def stop_collector(name: str, request: Request, namespace: str | None = None) -> dict[str, Any]:
    """Suspend a collector: its workload is scaled to zero (Kubernetes) or told to pause (local)."""
    return await _set_suspend(request, name, namespace, True)


@router.post("/api/v1/collectors/{name}/start", dependencies=[require("admin")])
async def start_collector(name: str, request: Request, namespace: str | None = None) -> dict[str, Any]:
    """Resume a suspended collector."""
    return await _set_suspend(request, name, namespace, False)
