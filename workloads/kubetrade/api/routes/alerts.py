"""``/api/v1/alerts``: user-defined alert conditions, and the history of alerts raised.

A condition is a threshold on a value the platform observes (see
:mod:`kubetrade.alerts.evaluator`): a Strategy's ``pnl``, ``drawdown`` or ``equity``, a
Goal's ``goal_progress``, or the ``price`` of ``exchange:symbol``.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated, Any, Self

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import Field, StringConstraints, model_validator

from kubetrade.alerts import store
from kubetrade.alerts.conditions import Metric, Operator, Severity
from kubetrade.api.deps import Connection, Limit, Page
from kubetrade.api.errors import NOT_FOUND, UNPROCESSABLE, responses
from kubetrade.resources.base import DNS1123Name, Model

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

_PRICE_TARGET = r"^[a-z][a-z0-9]{1,31}:[A-Z0-9]{2,15}/[A-Z0-9]{2,15}(:[A-Z0-9]{2,15})?$"
_NAME_TARGET = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class AlertRuleRequest(Model):
    """A condition to watch: ``metric`` of ``target`` ``operator`` ``threshold``."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    namespace: DNS1123Name | None = None
    """Namespace of the Strategy or Goal; the API's own when absent (ignored for prices)."""
    metric: Metric
    target: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    """Strategy name (pnl, drawdown, equity), Goal name (goal_progress) or exchange:SYMBOL (price)."""
    operator: Operator
    threshold: float
    """In the metric's unit: currency for pnl, equity and price; a fraction for drawdown and goal_progress."""
    severity: Severity = "warning"
    cooldown_seconds: Annotated[int, Field(ge=0, le=604_800)] = 300
    """Least time between two firings of this condition."""
    enabled: bool = True

    @model_validator(mode="after")
    def _target_fits_metric(self) -> Self:
        import re

        if not math.isfinite(self.threshold):
            raise ValueError("threshold must be a finite number")
        pattern, shape = (
            (_PRICE_TARGET, "exchange:BASE/QUOTE, e.g. binance:BTC/USDT")
            if self.metric == "price"
            else (_NAME_TARGET, "a Strategy or Goal name")
        )
        if not re.match(pattern, self.target):
            raise ValueError(f"target {self.target!r} for metric {self.metric} must be {shape}")
        return self


class AlertRule(Model):
    """A condition and what the evaluator last made of it."""

    id: uuid.UUID
    name: str
    namespace: str
    metric: Metric
    target: str
    operator: Operator
    threshold: float
    severity: Severity
    cooldown_seconds: int
    enabled: bool
    firing: bool
    """The condition holds now (fired and not resolved)."""
    last_value: float | None = None
    last_fired_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class AlertRecord(Model):
    """One alert raised or resolved."""

    id: int
    time: datetime
    source: str
    """rule: a user-defined condition; platform: an event sent to Alertmanager."""
    rule_id: uuid.UUID | None = None
    name: str
    severity: str
    status: str
    namespace: str | None = None
    target: str | None = None
    value: float | None = None
    message: str
    labels: dict[str, Any] = Field(default_factory=dict)


def _fields(body: AlertRuleRequest, request: Request) -> dict[str, Any]:
    fields = body.model_dump()
    fields["namespace"] = "*" if body.metric == "price" else body.namespace or request.app.state.settings.namespace
    return fields


@router.post("", status_code=201, response_model=AlertRule, responses=UNPROCESSABLE, summary="Create an alert")
async def create_alert(body: AlertRuleRequest, request: Request, conn: Connection) -> AlertRule:
    return AlertRule.model_validate(await store.create(conn, _fields(body, request)))


@router.get("", response_model=Page[AlertRule], summary="List alert conditions")
async def list_alerts(
    conn: Connection,
    limit: Limit = 100,
    after: uuid.UUID | None = None,
    namespace: Annotated[str | None, Query(max_length=253)] = None,
    metric: Metric | None = None,
    target: Annotated[str | None, Query(max_length=253)] = None,
    severity: Severity | None = None,
    enabled: bool | None = None,
    firing: bool | None = None,
) -> Page[AlertRule]:
    filters = {
        "namespace": namespace,
        "metric": metric,
        "target": target,
        "severity": severity,
        "enabled": enabled,
        "firing": firing,
    }
    rows = await store.listing(conn, filters, limit + 1, after)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[AlertRule](
        items=[AlertRule.model_validate(r) for r in rows], next=str(rows[-1]["id"]) if more else None
    )


@router.get("/history", response_model=Page[AlertRecord], summary="Alerts raised, newest first")
async def alert_history(
    conn: Connection,
    limit: Limit = 100,
    after: Annotated[int | None, Query(ge=1, le=2**62, description="The ``next`` of the previous page.")] = None,
    severity: Severity | None = None,
    source: Annotated[str | None, Query(max_length=50)] = None,
    status: Annotated[str | None, Query(pattern="^(firing|resolved)$")] = None,
    rule_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[AlertRecord]:
    filters = {
        "severity": severity,
        "source": source,
        "status": status,
        "rule_id": rule_id,
        "since": since,
        "until": until,
    }
    rows = await store.history(conn, filters, limit + 1, after)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[AlertRecord](
        items=[AlertRecord.model_validate(r) for r in rows], next=str(rows[-1]["id"]) if more else None
    )


@router.get("/{alert_id}", response_model=AlertRule, responses=NOT_FOUND, summary="Show an alert condition")
async def get_alert(alert_id: uuid.UUID, conn: Connection) -> AlertRule:
    row = await store.get(conn, alert_id)
    if row is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return AlertRule.model_validate(row)


@router.put(
    "/{alert_id}",
    response_model=AlertRule,
    responses=responses(NOT_FOUND, UNPROCESSABLE),
    summary="Replace an alert condition",
)
async def replace_alert(alert_id: uuid.UUID, body: AlertRuleRequest, request: Request, conn: Connection) -> AlertRule:
    row = await store.replace(conn, alert_id, _fields(body, request))
    if row is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return AlertRule.model_validate(row)


@router.delete("/{alert_id}", status_code=204, responses=NOT_FOUND, summary="Delete an alert condition")
async def delete_alert(alert_id: uuid.UUID, conn: Connection) -> None:
    if not await store.delete(conn, alert_id):
        raise HTTPException(404, f"no alert {alert_id}")
