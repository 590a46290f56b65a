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
from pydantic import Field, model_validator

from kubetrade import cluster
from kubetrade.api.deps import Connection, Limit, Page
from kubetrade.api.errors import CONFLICT, NOT_FOUND, UNPROCESSABLE, Problem, responses
from kubetrade.api.routes import crud
from kubetrade.api.routes.crud import After, Metadata, Namespace
from kubetrade.api.times import ApiTime
from kubetrade.backtestjobs import store as backtests
from kubetrade.backtestjobs.launch import launch
from kubetrade.resources import Strategy, StrategySpec
from kubetrade.resources.base import Model, Symbol
from kubetrade.resources.strategy import StrategyPhase

router = APIRouter(prefix="/api/v1/strategies", tags=["strategies"])

PLURAL = "strategies"
Name = Annotated[
    str, Path(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253, description="The Strategy's name.")
]
class StrategyRequest(Model):
    """A Strategy to create or replace, as in a manifest (status is the platform's, not settable)."""

    api_version: Literal["kubetrade.io/v1alpha1"] = Field(default="kubetrade.io/v1alpha1", alias="apiVersion")
    kind: Literal["Strategy"] = "Strategy"
    metadata: Metadata
    spec: StrategySpec


class BacktestRequest(Model):
    """The period and the cash of a backtest; costs come from the strategy's execution settings."""

    start: ApiTime | None = None
    """Start of the period (UTC); default: ``days`` before ``end``."""
    end: ApiTime | None = None
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


STRATEGIES = crud.Resources(
    kind="Strategy",
    plural=PLURAL,
    parse=Strategy.parse,
    nowhere="no cluster and no database: nowhere to keep strategies",
)


@router.get("", response_model=Page[Strategy], summary="List strategies")
async def list_strategies(
    request: Request,
    namespace: Namespace = None,
    limit: Limit = 100,
    after: After = None,
    mode: Literal["paper", "live"] | None = None,
    phase: StrategyPhase | None = None,
    symbol: Annotated[Symbol | None, Query(description="Strategies trading this symbol.")] = None,
    goal: Annotated[str | None, Query(max_length=253, description="Strategies counting towards this Goal.")] = None,
) -> Page[Strategy]:
    def keep(obj: dict[str, Any]) -> bool:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if mode and spec.get("mode", "paper") != mode:
            return False
        if phase and status.get("phase", "Pending") != phase:
            return False
        if symbol and symbol not in spec.get("symbols", []):
            return False
        return not (goal and (spec.get("goalRef") or {}).get("name") != goal)

    items, next_name = await STRATEGIES.page(request, namespace, limit, after, keep)
    return Page[Strategy](items=items, next=next_name)


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
    return await STRATEGIES.create(request, response, namespace, body)


@router.get("/{name}", response_model=Strategy, responses=NOT_FOUND, summary="Show a strategy")
async def get_strategy(name: Name, request: Request, namespace: Namespace = None) -> Strategy:
    return await STRATEGIES.get(request, namespace, name)


@router.put(
    "/{name}",
    response_model=Strategy,
    responses=responses(NOT_FOUND, CONFLICT, UNPROCESSABLE),
    summary="Replace a strategy's spec, labels and annotations",
)
async def replace_strategy(
    name: Name, body: StrategyRequest, request: Request, namespace: Namespace = None
) -> Strategy:
    return await STRATEGIES.replace(request, namespace, name, body)


@router.delete(
    "/{name}",
    status_code=202,
    response_model=Problem,
    responses=NOT_FOUND,
    summary="Delete a strategy (the operator closes its positions first)",
)
async def delete_strategy(name: Name, request: Request, namespace: Namespace = None) -> Problem:
    await STRATEGIES.delete(request, namespace, name)
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
    ns = crud.namespace(request, namespace)
    obj = await crud.call(STRATEGIES.store(request).get(PLURAL, ns, name))
    strategy = STRATEGIES.present(obj)
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
