"""``/api/v1/strategies``: Strategy resources through the API.

On a cluster every call reads or writes the Strategy custom resource on the API server
(the source of truth; the operator does the rest); locally the same calls act on the same
objects in the database (:func:`kubetrade.cluster.resource_store`).  A spec is checked by
the same schema and the same semantic checks as ``kubectl apply`` through the webhook.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import Field, StringConstraints, ValidationError, model_validator

from kubetrade import cluster
from kubetrade.api.deps import Connection, Limit, Page
from kubetrade.api.errors import CONFLICT, NOT_FOUND, UNPROCESSABLE, Problem, responses
from kubetrade.backtestjobs import store as backtests
from kubetrade.backtestjobs.launch import launch
from kubetrade.resources import API_VERSION, Strategy, StrategySpec
from kubetrade.resources.base import DNS1123Name, LabelKey, LabelValue, Model, Symbol
from kubetrade.resources.strategy import StrategyPhase
from kubetrade.validation.manifests import manifest_problems

router = APIRouter(prefix="/api/v1/strategies", tags=["strategies"])

PLURAL = "strategies"
Name = Annotated[
    str, Path(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253, description="The Strategy's name.")
]
Namespace = Annotated[
    str | None,
    Query(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63, description="Namespace; the API's own when absent."
    ),
]


class Metadata(Model):
    """The parts of Kubernetes object metadata a client sets."""

    name: DNS1123Name
    labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=64)] = Field(default_factory=dict)
    annotations: Annotated[dict[LabelKey, Annotated[str, StringConstraints(max_length=4096)]], Field(max_length=64)] = (
        Field(default_factory=dict)
    )
    resource_version: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")] | None = None
    """On replace: the version read; the write fails with 409 if the object changed since."""


class StrategyRequest(Model):
    """A Strategy to create or replace, as in a manifest (status is the platform's, not settable)."""

    api_version: Literal["kubetrade.io/v1alpha1"] = Field(default="kubetrade.io/v1alpha1", alias="apiVersion")
    kind: Literal["Strategy"] = "Strategy"
    metadata: Metadata
    spec: StrategySpec


class BacktestRequest(Model):
    """The period and the cash of a backtest; costs come from the strategy's execution settings."""

    start: datetime | None = None
    """Start of the period (UTC); default: ``days`` before ``end``."""
    end: datetime | None = None
    """End of the period (UTC), exclusive; default: now."""
    days: Annotated[int, Field(ge=1, le=3650)] = 90
    initial_cash: Annotated[float, Field(gt=0, le=1e12)] = 10_000.0

    @model_validator(mode="after")
    def _period(self) -> BacktestRequest:
        for field in ("start", "end"):
            value = getattr(self, field)
            if value is not None and value.tzinfo is None:
                setattr(self, field, value.replace(tzinfo=UTC))
        if self.start and self.end and self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class Backtest(Model):
    """A backtest and, once it ran, its metrics per symbol."""

    id: str
    namespace: str
    strategy: str
    status: Literal["pending", "running", "succeeded", "failed"]
    job: str | None = None
    """The Kubernetes Job running it, on a cluster."""
    start: datetime
    end: datetime
    result: dict[str, dict[str, Any]] | None = None
    """Per symbol: the metrics (numbers) and the moments of its returns (a small object), as the job wrote them."""
    error: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


def to_backtest(row: dict[str, Any]) -> Backtest:
    request = row["request"]
    return Backtest(
        id=str(row["id"]),
        namespace=row["namespace"],
        strategy=row["strategy"],
        status=row["status"],
        job=row["job"],
        start=request["start"],
        end=request["end"],
        result=row["result"],
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def _store(request: Request) -> cluster.ResourceStore:
    found = cluster.resource_store(getattr(request.app.state, "db_pool", None))
    if found is None:
        raise HTTPException(503, "no cluster and no database: nowhere to keep strategies")
    return found


def _namespace(request: Request, namespace: str | None) -> str:
    return namespace or request.app.state.settings.namespace


def _present(obj: dict[str, Any]) -> Strategy:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    try:
        return Strategy.parse({**obj, "metadata": meta})
    except ValidationError as exc:
        raise HTTPException(
            502, f"stored Strategy {meta.get('name')} is not valid: {exc.error_count()} errors"
        ) from exc


async def sent_document(request: Request, body: Model) -> Any:
    """What the client sent, for :func:`manifest_problems`: the JSON bytes of an API request (judged with
    the API server's strict JSON types: ``"warmupBars": "500"`` is refused here as it is there), or the
    model's own dump when the request was not JSON (the console builds the model from its form)."""
    import json

    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("", "application/json") or kind.endswith("+json"):  # as FastAPI reads a JSON body
        return json.loads(await request.body())
    return body.model_dump(by_alias=True, exclude_none=True, mode="json")


async def _check(body: StrategyRequest, request: Request) -> dict[str, Any]:
    """The manifest, judged as ``kubectl apply`` with the webhook judges it."""
    problems = manifest_problems(await sent_document(request, body), expect_kind="Strategy")
    if problems:
        raise HTTPException(422, "; ".join(problems))
    return {
        "apiVersion": API_VERSION,
        "kind": "Strategy",
        **body.model_dump(by_alias=True, exclude_none=True, mode="json", include={"metadata", "spec"}),
    }


async def _call(coro: Any) -> Any:
    try:
        return await coro
    except cluster.StoreError as exc:
        raise HTTPException(exc.status, exc.message) from exc


@router.get("", response_model=Page[Strategy], summary="List strategies")
async def list_strategies(
    request: Request,
    namespace: Namespace = None,
    limit: Limit = 100,
    after: Annotated[
        str | None, Query(max_length=253, description="Name of the last item of the previous page.")
    ] = None,
    mode: Literal["paper", "live"] | None = None,
    phase: StrategyPhase | None = None,
    symbol: Annotated[Symbol | None, Query(description="Strategies trading this symbol.")] = None,
    goal: Annotated[str | None, Query(max_length=253, description="Strategies counting towards this Goal.")] = None,
) -> Page[Strategy]:
    objs = await _call(_store(request).list(PLURAL, _namespace(request, namespace)))
    chosen = []
    for obj in sorted(objs, key=lambda o: o["metadata"]["name"]):
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if after is not None and obj["metadata"]["name"] <= after:
            continue
        if mode and spec.get("mode", "paper") != mode:
            continue
        if phase and status.get("phase", "Pending") != phase:
            continue
        if symbol and symbol not in spec.get("symbols", []):
            continue
        if goal and (spec.get("goalRef") or {}).get("name") != goal:
            continue
        chosen.append(obj)
        if len(chosen) > limit:
            break
    more = len(chosen) > limit
    items = [_present(o) for o in chosen[:limit]]
    return Page[Strategy](items=items, next=items[-1].metadata["name"] if more else None)


@router.post(
    "",
    status_code=201,
    response_model=Strategy,
    responses=responses(CONFLICT, UNPROCESSABLE),
    summary="Create a strategy",
)
async def create_strategy(
    body: StrategyRequest, request: Request, response: Response, namespace: Namespace = None
) -> Strategy:
    ns = _namespace(request, namespace)
    manifest = await _check(body, request)
    manifest["metadata"].pop("resourceVersion", None)
    created = await _call(_store(request).create(PLURAL, ns, manifest))
    response.headers["Location"] = f"/api/v1/strategies/{created['metadata']['name']}?namespace={ns}"
    return _present(created)


@router.get("/{name}", response_model=Strategy, responses=NOT_FOUND, summary="Show a strategy")
async def get_strategy(name: Name, request: Request, namespace: Namespace = None) -> Strategy:
    return _present(await _call(_store(request).get(PLURAL, _namespace(request, namespace), name)))


@router.put(
    "/{name}",
    response_model=Strategy,
    responses=responses(NOT_FOUND, CONFLICT, UNPROCESSABLE),
    summary="Replace a strategy's spec, labels and annotations",
)
async def replace_strategy(
    name: Name, body: StrategyRequest, request: Request, namespace: Namespace = None
) -> Strategy:
    if body.metadata.name != name:
        raise HTTPException(422, f"metadata.name {body.metadata.name!r} does not match the path's {name!r}")
    ns = _namespace(request, namespace)
    store = _store(request)
    manifest = await _check(body, request)
    current = await _call(store.get(PLURAL, ns, name))
    meta = manifest["metadata"]
    # Keep what the platform put there (finalizers, owners); resourceVersion only if the client sent one.
    if body.metadata.resource_version is None:
        meta["resourceVersion"] = current["metadata"].get("resourceVersion")
    for kept in ("finalizers", "ownerReferences"):
        if kept in current["metadata"]:
            meta[kept] = current["metadata"][kept]
    return _present(await _call(store.replace(PLURAL, ns, name, manifest)))


@router.delete(
    "/{name}",
    status_code=202,
    response_model=Problem,
    responses=NOT_FOUND,
    summary="Delete a strategy (the operator closes its positions first)",
)
async def delete_strategy(name: Name, request: Request, namespace: Namespace = None) -> Problem:
    await _call(_store(request).delete(PLURAL, _namespace(request, namespace), name))
    return Problem(detail=f"Strategy {name} is being deleted; its positions are closed first")


@router.post(
    "/{name}/backtest",
    status_code=202,
    response_model=Backtest,
    responses=responses(NOT_FOUND, UNPROCESSABLE),
    summary="Backtest a strategy (a Job on Kubernetes)",
)
async def backtest_strategy(
    name: Name,
    request: Request,
    response: Response,
    conn: Connection,
    body: BacktestRequest | None = None,
    namespace: Namespace = None,
) -> Backtest:
    body = body or BacktestRequest()
    ns = _namespace(request, namespace)
    obj = await _call(_store(request).get(PLURAL, ns, name))
    strategy = _present(obj)
    end = body.end or datetime.now(UTC)
    start = body.start or end - timedelta(days=body.days)
    if start >= end:
        raise HTTPException(422, "start must be before end")
    row = await backtests.create(
        conn,
        ns,
        name,
        {
            "spec": strategy.spec.to_k8s(),
            "start": start.isoformat(),
            "end": end.isoformat(),
            "initialCash": body.initial_cash,
            "generation": obj["metadata"].get("generation"),
        },
    )
    obj["metadata"].setdefault("namespace", ns)
    try:
        row["job"] = await launch(request.app.state, row["id"], obj)
    except cluster.StoreError as exc:
        await backtests.finish(conn, row["id"], error=f"could not start the Job: {exc.message}")
        raise HTTPException(exc.status, exc.message) from exc
    response.headers["Location"] = f"/api/v1/backtests/{row['id']}"
    return to_backtest(row)
