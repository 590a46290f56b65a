"""``/api/v1/alerts``: user-defined alert conditions, the history of alerts and what each channel got.

A condition is a threshold on a value the platform observes (see
:mod:`kubetrade.alerts.evaluator`): a Strategy's ``pnl``, ``drawdown`` or ``equity``, a
Goal's ``goal_progress``, or the ``price`` of ``exchange:symbol``.  Its alerts go to
Alertmanager like every other alert, routed by the rule's ``channels`` (or, without any, by
its severity), held during its ``quietHours``.

``/history`` lists every alert raised or resolved - rules', platform events', Prometheus'
- each with the notifications its channels were sent; ``/deliveries`` the notifications
themselves, newest first; ``/channels`` each channel's recent record.
"""

from __future__ import annotations

import math
import re
import uuid
import zoneinfo
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import Field, StringConstraints, field_validator, model_validator

from kubetrade.alerts import channelstatus, sms, store
from kubetrade.alerts.conditions import CHANNELS, Channel, Metric, Operator, Severity
from kubetrade.alerts.receiver import masked
from kubetrade.api.deps import Connection, Limit, Page
from kubetrade.api.errors import NOT_FOUND, UNPROCESSABLE, responses
from kubetrade.api.times import ApiTime
from kubetrade.resources.base import DNS1123Name, Model

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

_PRICE_TARGET = r"^[a-z][a-z0-9]{1,31}:[A-Z0-9]{2,15}/[A-Z0-9]{2,15}(:[A-Z0-9]{2,15})?$"
_NAME_TARGET = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
_CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class QuietHoursSpec(Model):
    """A daily span when the rule's alerts wait; ``start`` after ``end`` spans midnight (22:00 to 07:00)."""

    start: Annotated[str, StringConstraints(pattern=_CLOCK)]
    """HH:MM, local time of ``timezone``."""
    end: Annotated[str, StringConstraints(pattern=_CLOCK)]
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "UTC"
    """An IANA time zone, e.g. Europe/Berlin."""

    @model_validator(mode="after")
    def _a_real_span(self) -> Self:
        if self.start == self.end:
            raise ValueError("quietHours: start and end must differ")
        if not re.match(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$", self.timezone):
            raise ValueError(f"quietHours: unknown time zone {self.timezone!r}")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"quietHours: unknown time zone {self.timezone!r}") from None
        return self


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
    channels: Annotated[list[Channel], Field(max_length=len(CHANNELS))] = Field(default_factory=list)
    """Where its alerts go (email, sms, telegram, discord, slack, webhook); none: by severity, as every alert."""
    quiet_hours: QuietHoursSpec | None = None
    """When its alerts wait; an alert that fires within them is sent when they end, if it still holds."""

    @field_validator("channels")
    @classmethod
    def _each_channel_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("channels: each channel once")
        return sorted(value)

    @model_validator(mode="after")
    def _target_fits_metric(self) -> Self:
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
    channels: list[Channel] = Field(default_factory=list)
    quiet_hours: QuietHoursSpec | None = None
    firing: bool
    """The condition holds now (fired and not resolved)."""
    last_value: float | None = None
    last_fired_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


DeliveryState = Literal["notified", "queued", "sending", "sent", "failed", "rate_limited"]


class DeliveredAlert(Model):
    fingerprint: str
    status: str
    starts_at: datetime
    alertname: str


class Delivery(Model):
    """One notification a channel was sent, or is to be sent."""

    id: int
    channel: Channel
    sender: Literal["alertmanager", "kubetrade"]
    """alertmanager: its own integration sent it (e-mail, Slack, Discord, Telegram, webhook); kubetrade: SMS."""
    receiver: str
    status: Literal["firing", "resolved"]
    severity: str | None = None
    state: DeliveryState
    """notified: Alertmanager notified the channel; queued/sending/sent/failed/rate_limited: the SMS notifier's."""
    recipient: str | None = None
    """Masked phone number (SMS)."""
    attempts: int = 0
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    provider_id: str | None = None
    """The provider's message id (Twilio's SID)."""
    error: str | None = None
    """Why it failed, is retried, or was not sent."""
    received_at: datetime
    updated_at: datetime
    alerts: list[DeliveredAlert] = Field(default_factory=list)


class AlertRecord(Model):
    """One alert raised or resolved, and where it went."""

    id: int
    time: datetime
    source: str
    """rule: a user-defined condition; platform: an event kubetrade raised; prometheus: a Prometheus rule's alert."""
    rule_id: uuid.UUID | None = None
    name: str
    severity: str
    status: str
    namespace: str | None = None
    target: str | None = None
    value: float | None = None
    message: str
    labels: dict[str, Any] = Field(default_factory=dict)
    fingerprint: str | None = None
    """Alertmanager's fingerprint of the alert (shared by its firing and resolved rows)."""
    starts_at: datetime | None = None
    delivery: str = "none"
    """Hand-over to Alertmanager: none (no Alertmanager configured), pending, accepted, failed (being retried),
    held (quiet hours), suppressed (ended within quiet hours)."""
    delivered_at: datetime | None = None
    delivery_error: str | None = None
    deliveries: list[Delivery] = Field(default_factory=list)
    """The notifications that carried this transition, oldest first."""


class ChannelStatus(Model):
    channel: Channel
    sender: Literal["alertmanager", "kubetrade"]
    last_notified_at: datetime | None = None
    notified_last_hour: int = 0
    failed_last_hour: int = 0
    """SMS only: kubetrade sends it and knows each outcome."""
    last_error: str | None = None
    failing: bool = False
    """KubetradeAlertChannelFailing fires for it (the SMS notifier's, or the Prometheus rule's over Alertmanager's
    failed notifications)."""
    limit_per_hour: int | None = None
    alertmanager_notifications: int | None = None
    """Alertmanager's counters for its integration, summed over the replicas that answered."""
    alertmanager_failed: int | None = None


def _fields(body: AlertRuleRequest, request: Request) -> dict[str, Any]:
    fields = body.model_dump()
    fields["namespace"] = "*" if body.metric == "price" else body.namespace or request.app.state.settings.namespace
    fields["quiet_hours"] = body.quiet_hours.model_dump() if body.quiet_hours else None
    return fields


def _deliver(request: Request) -> bool:
    return bool(request.app.state.settings.alertmanager_urls)


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
    since: ApiTime | None = None,
    until: ApiTime | None = None,
    channel: Channel | None = None,
) -> Page[AlertRecord]:
    filters = {
        "severity": severity,
        "source": source,
        "status": status,
        "rule_id": rule_id,
        "since": since,
        "until": until,
        "channel": channel,
    }
    rows = await store.history(conn, filters, limit + 1, after)
    more = len(rows) > limit
    rows = rows[:limit]
    for r in rows:
        for d in r["deliveries"]:
            d["recipient"] = masked(d["recipient"])
    return Page[AlertRecord](
        items=[AlertRecord.model_validate(r) for r in rows], next=str(rows[-1]["id"]) if more else None
    )


@router.get("/deliveries", response_model=Page[Delivery], summary="Notifications sent or queued, newest first")
async def list_deliveries(
    conn: Connection,
    limit: Limit = 100,
    after: Annotated[int | None, Query(ge=1, le=2**62, description="The ``next`` of the previous page.")] = None,
    channel: Channel | None = None,
    state: DeliveryState | None = None,
) -> Page[Delivery]:
    rows = await store.deliveries(conn, {"channel": channel, "state": state}, limit + 1, after)
    more = len(rows) > limit
    rows = rows[:limit]
    for r in rows:
        r["recipient"] = masked(r["recipient"])
    return Page[Delivery](items=[Delivery.model_validate(r) for r in rows], next=str(rows[-1]["id"]) if more else None)


@router.post("/deliveries/{delivery_id}/retry", status_code=202, responses=NOT_FOUND,
             summary="Send a failed or rate-limited SMS again")
async def retry_delivery(delivery_id: Annotated[int, Path(ge=1, le=2**62)], conn: Connection) -> dict[str, Any]:
    if not await sms.retry(conn, delivery_id):
        raise HTTPException(404, f"no failed or rate-limited SMS {delivery_id} (only kubetrade's own sends are retried "
                                 "here; Alertmanager retries its channels itself)")
    return {"id": delivery_id, "state": "queued"}


@router.get("/channels", response_model=list[ChannelStatus], summary="Each channel's recent record")
async def channel_status(request: Request, conn: Connection) -> list[ChannelStatus]:
    settings = request.app.state.settings
    rows = await channelstatus.summary(conn, settings.alertmanager_urls, settings.alert_channel_limits)
    return [ChannelStatus.model_validate(r) for r in rows]


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
    row = await store.replace(conn, alert_id, _fields(body, request), deliver=_deliver(request))
    if row is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return AlertRule.model_validate(row)


@router.delete("/{alert_id}", status_code=204, responses=NOT_FOUND, summary="Delete an alert condition")
async def delete_alert(alert_id: uuid.UUID, request: Request, conn: Connection) -> None:
    if not await store.delete(conn, alert_id, deliver=_deliver(request)):
        raise HTTPException(404, f"no alert {alert_id}")
