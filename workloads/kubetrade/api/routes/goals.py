"""``/api/v1/goals/summary`` and ``/api/v1/position-sizing/calculate``: goal progress and sizing.

Both are thin shells over pure functions: a goal's figures are
:func:`kubetrade.lifecycle.goalfigures.goal_figures` (what the goal manager reports into the Goal's
status), the multiplier and the capped position fraction :mod:`kubetrade.sizing.goal` (the
formula is documented there).  Goals and strategies are
read through the resource store - the cluster's API server, or the local database under
``kubetrade up`` - and a strategy's figures are its status as its runner reported them.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import Field, ValidationError, model_validator

from kubetrade import cluster
from kubetrade.lifecycle import goalfigures
from kubetrade.resources.base import DNS1123Name, Model
from kubetrade.resources.goal import GoalSpec, Target
from kubetrade.resources.riskpolicy import RiskPolicySpec
from kubetrade.sizing.goal import goal_sizing, position_fraction

router = APIRouter(prefix="/api/v1", tags=["goals"])
log = logging.getLogger("kubetrade.api.goals")
Namespace = Annotated[str | None, Query(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63,
                                        description="Namespace; the API's own when absent.")]


def _store(request: Request) -> cluster.ResourceStore:
    store = cluster.resource_store(getattr(request.app.state, "db_pool", None))
    if store is None:
        raise HTTPException(503, "no resource store: neither a cluster nor a database is configured")
    return store


def _namespace(request: Request, namespace: str | None) -> str:
    return namespace or str(getattr(request.app.state.settings, "namespace", None) or "default")


def _policy(obj: dict[str, Any]) -> RiskPolicySpec:
    """A stored RiskPolicy's spec; one that is not valid (the operator does not publish it) gives a clear 422."""
    try:
        return RiskPolicySpec.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        name = (obj.get("metadata") or {}).get("name")
        raise HTTPException(422, f"RiskPolicy {name} is not valid: {exc.errors()[0]['msg'][:300]}") from None


class StrategyFigures(Model):
    name: str
    phase: str | None = None
    equity: float | None = None
    pnl: float | None = None
    trades: int | None = None
    drawdown: float | None = None


class GoalSummary(Model):
    name: str
    namespace: str
    target_return_pct: float
    period: str
    capital: float
    equity: float
    return_pct: float
    expected_return_pct: float
    progress_pct: float | None
    on_track: bool
    sizing_multiplier: float
    sizing_state: str
    sizing_explanation: str
    strategies: list[StrategyFigures]


@router.get("/goals/summary", response_model=list[GoalSummary], summary="Progress of every goal")
async def goals_summary(request: Request, namespace: Namespace = None) -> list[GoalSummary]:
    store = _store(request)
    ns = _namespace(request, namespace)
    try:
        goals = await store.list("goals", ns)
        strategies = await store.list("strategies", ns)
        policies = {p["metadata"]["name"]: p for p in await store.list("riskpolicies", ns)}
    except cluster.StoreError as exc:
        raise HTTPException(exc.status, exc.message) from None
    now = datetime.now(UTC)
    out = []
    for g in goals:
        try:
            spec = GoalSpec.model_validate(g.get("spec") or {})
        except ValidationError as exc:  # stored before a check existed: its status says why; skip it here
            log.warning("goal skipped: its spec is not valid",
                        extra={"goal": g["metadata"].get("name"), "error": str(exc.errors()[0]["msg"])[:200]})
            continue
        counted = goalfigures.members(spec, g["metadata"]["name"], strategies)
        figures = [
            StrategyFigures(
                name=s["metadata"]["name"],
                **{k: (s.get("status") or {}).get(k) for k in ("phase", "equity", "pnl", "trades", "drawdown")},
            )
            for s in counted
        ]
        policy = policies.get(spec.risk_policy_ref.name)
        policy_spec = _policy(policy) if policy else None
        f = goalfigures.goal_figures(spec, g, counted, now, policy_spec) or goalfigures.figures_at(
            spec, g, spec.target.capital.amount, 0, now, policy_spec)
        out.append(
            GoalSummary(
                name=g["metadata"]["name"],
                namespace=ns,
                target_return_pct=spec.target.return_pct,
                period=spec.target.period,
                capital=spec.target.capital.amount,
                equity=f.equity,
                return_pct=f.return_pct,
                expected_return_pct=f.expected_return_pct,
                progress_pct=f.progress_pct,
                on_track=f.on_track,
                sizing_multiplier=f.sizing_multiplier,
                sizing_state=f.sizing_state,
                sizing_explanation=f.sizing_explanation,
                strategies=figures,
            )
        )
    return out


class SizingRequest(Model):
    """What the sizing needs: a goal (by name, or its target inline), where the money stands, the policy."""

    goal: DNS1123Name | None = None
    """A Goal by name (its target, maxSizingMultiplier and RiskPolicy are used)."""
    target: Target | None = None
    """Or a target inline."""
    max_sizing_multiplier: Annotated[float, Field(gt=0, le=3)] = 1.5
    equity: Annotated[float, Field(gt=0)]
    """Current equity of the goal's strategies."""
    peak_equity: Annotated[float, Field(gt=0)] | None = None
    """Highest equity so far (defaults to equity: no drawdown)."""
    start_date: date | None = None
    now: datetime | None = None
    base_position_pct: Annotated[float, Field(gt=0, le=1)] = 1.0
    """The strategy's own positionPct."""
    risk_policy: RiskPolicySpec | None = None
    """Limits inline (else the goal's RiskPolicy, else the defaults)."""
    stop_distance: Annotated[float, Field(gt=0, le=1)] | None = None
    win_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    payoff_ratio: Annotated[float, Field(gt=0)] | None = None
    price: Annotated[float, Field(gt=0)] | None = None
    """With a price, the answer includes the quantity."""

    @model_validator(mode="after")
    def _one_goal(self) -> SizingRequest:
        if (self.goal is None) == (self.target is None):
            raise ValueError("give exactly one of goal (a name) or target")
        return self


class SizingResponse(Model):
    multiplier: float
    state: str
    required_pace: float | None
    drawdown: float
    drawdown_brake: float
    target_equity: float | None
    """None when it is too large to write down (a target compounding beyond any float)."""
    days_left: float
    fraction: float
    binding: str
    terms: dict[str, float]
    notional: float
    quantity: float | None = None
    explanation: str


@router.post("/position-sizing/calculate", response_model=SizingResponse, summary="Goal-oriented position size")
async def calculate(
    body: SizingRequest, request: Request, namespace: Namespace = None
) -> SizingResponse:
    target, cap, policy, start = body.target, body.max_sizing_multiplier, body.risk_policy, body.start_date
    if body.goal is not None:
        store = _store(request)
        ns = _namespace(request, namespace)
        try:
            g = await store.get("goals", ns, body.goal)
        except cluster.NotFound:
            raise HTTPException(404, f"Goal {ns}/{body.goal} not found") from None
        except cluster.StoreError as exc:
            raise HTTPException(exc.status, exc.message) from None
        try:
            spec = GoalSpec.model_validate(g.get("spec") or {})
        except ValidationError as exc:
            raise HTTPException(422, f"Goal {ns}/{body.goal} is not valid: {exc.errors()[0]['msg'][:300]}") from None
        target, cap = spec.target, spec.max_sizing_multiplier
        created = (g.get("metadata") or {}).get("creationTimestamp")
        start = start or goalfigures.start_date(spec, created, datetime.now(UTC))
        if policy is None:
            try:
                policy = _policy(await store.get("riskpolicies", ns, spec.risk_policy_ref.name))
            except cluster.NotFound:
                raise HTTPException(
                    422, f"Goal {ns}/{body.goal}: riskPolicyRef {spec.risk_policy_ref.name} not found"
                ) from None
    assert target is not None
    policy = policy or RiskPolicySpec()
    now = body.now or datetime.now(UTC)
    start = start or target.start_date or now.date()
    s = goal_sizing(
        target,
        body.equity,
        body.peak_equity or body.equity,
        now,
        start,
        max_multiplier=cap,
        policy_max_drawdown=policy.portfolio_limits.max_drawdown_pct,
    )
    f = position_fraction(
        body.base_position_pct,
        s.multiplier,
        policy,
        stop_distance=body.stop_distance,
        win_rate=body.win_rate,
        payoff_ratio=body.payoff_ratio,
    )
    notional = f.fraction * body.equity
    quantity = notional / body.price if body.price else None

    def finite(x: float | None) -> float | None:
        return x if x is not None and math.isfinite(x) else None

    return SizingResponse(
        multiplier=s.multiplier,
        state=s.state,
        required_pace=finite(s.required_pace),
        drawdown=s.drawdown,
        drawdown_brake=s.drawdown_brake,
        target_equity=finite(s.target_equity),
        days_left=s.days_left,
        fraction=f.fraction,
        binding=f.binding,
        terms=f.terms,
        notional=notional,
        quantity=finite(quantity),
        explanation=s.explanation,
    )
