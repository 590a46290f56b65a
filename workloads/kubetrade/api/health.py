"""``/health``: the seed's health document, with a real check of every dependency.

``/readyz`` is the same document and ``/healthz`` the same as ``/livez`` (alive): the paths
every kubetrade role serves (:mod:`kubetrade.observability.probes`), which the chart probes.

A dependency that is not configured is reported as such and does not make the
service unhealthy; one that is configured but unreachable does (HTTP 503), so that a
Kubernetes readiness probe takes the pod out of the Service until it recovers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

import kubetrade
from kubetrade import cluster
from kubetrade.observability.metrics import DEPENDENCY_UP

router = APIRouter(tags=["health"])

CHECK_TIMEOUT = 3.0


class Health(BaseModel):
    status: Literal["healthy", "unhealthy"]
    service: str
    version: str
    uptime_seconds: float
    dependencies: dict[str, str]


async def _postgres(state: Any) -> str:
    pool = getattr(state, "db_pool", None)
    if pool is None:
        return "not configured"
    async with pool.connection(timeout=CHECK_TIMEOUT) as conn:
        await conn.execute("SELECT 1")
    return "connected"


async def _nats(state: Any) -> str:
    nc = getattr(state, "nats", None)
    if nc is None:
        return "not configured"
    if not nc.is_connected:
        return "disconnected"
    await nc.flush(timeout=CHECK_TIMEOUT)
    return "connected"


async def _kubernetes(state: Any) -> str:
    if not cluster.configured():
        return "not configured"
    await cluster.ping(CHECK_TIMEOUT)
    return "connected"


async def _check(probe: Any, state: Any) -> str:
    try:
        result: str = await asyncio.wait_for(probe(state), CHECK_TIMEOUT + 1)
        return result
    except Exception as exc:  # a health check reports, it never raises
        return f"error: {type(exc).__name__}"


@router.get("/readyz", include_in_schema=False, response_model=Health, responses={503: {"model": Health}})
@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(request: Request, response: Response) -> Health:
    state = request.app.state
    names = ("postgres", "nats", "kubernetes")
    results = await asyncio.gather(*(_check(p, state) for p in (_postgres, _nats, _kubernetes)))
    deps = dict(zip(names, results, strict=True))
    for dep, result in deps.items():
        if result != "not configured":
            DEPENDENCY_UP.labels(dep).set(1 if result == "connected" else 0)
    ok = all(v in ("connected", "not configured") for v in deps.values())
    if not ok:
        response.status_code = 503
    return Health(
        status="healthy" if ok else "unhealthy",
        service=state.settings.service,
        version=kubetrade.__version__,
        uptime_seconds=round(time.monotonic() - state.started, 3),
        dependencies=deps,
    )


@router.get("/healthz", include_in_schema=False)
@router.get("/livez", include_in_schema=False)
async def livez() -> dict[str, str]:
    """Liveness: the event loop answers. Dependencies are /health's business."""
    return {"status": "alive"}
