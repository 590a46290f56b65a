"""Collector health and start/stop.

``/health/collectors`` reads the ``collector-health`` KV bucket every collector keeps
current, and says per collector whether its data is stale (no sample for longer than
``stale_after`` seconds while Running) - the same record the risk manager reads.

Start/stop set the Collector resource's ``spec.suspend`` through the resource store (the
API server on Kubernetes, where the operator then scales the workload; the database in
the local stack) and also tell a locally running collector over NATS, so it reacts at once.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from kubetrade import cluster
from kubetrade.api.security import require
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import CollectorHealth
from kubetrade.resources.base import Model

router = APIRouter(tags=["collectors"])


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


async def _set_suspend(request: Request, name: str, namespace: str | None, suspend: bool) -> dict[str, Any]:
    ns = namespace or request.app.state.settings.namespace
    store = cluster.resource_store(getattr(request.app.state, "db_pool", None))
    if store is None:
        raise HTTPException(503, "no cluster and no database: there is nowhere Collectors are kept")
    try:
        obj = await store.get("collectors", ns, name)
        obj.setdefault("spec", {})["suspend"] = suspend
        obj = await store.replace("collectors", ns, name, obj)
    except cluster.StoreError as exc:
        raise HTTPException(exc.status, exc.message) from exc
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
