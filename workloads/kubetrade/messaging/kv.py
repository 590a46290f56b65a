"""The NATS key-value buckets and the schemas of their values: one definition each, shared by
whoever writes and whoever reads (the operator and the API write policies, the risk manager
reads them; the operator or the local stack write a goal's sizing multiplier, runners read it).

``risk-policies``  key ``<namespace>.<name>`` -> :class:`PolicyEntry`
``goal-sizing``    key ``<namespace>.<goal>`` -> :class:`GoalSizingEntry` (absent: multiplier 1.0)
``collector-health`` key ``<namespace>.<name>`` -> :class:`~kubetrade.messaging.schemas.CollectorHealth`
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from kubetrade.messaging import codec, subjects
from kubetrade.messaging.subjects import COLLECTOR_HEALTH_BUCKET, GOAL_SIZING_BUCKET, RISK_POLICY_BUCKET
from kubetrade.resources.base import Model
from kubetrade.resources.riskpolicy import RiskPolicySpec

__all__ = [
    "COLLECTOR_HEALTH_BUCKET",
    "GOAL_SIZING_BUCKET",
    "RISK_POLICY_BUCKET",
    "GoalSizingEntry",
    "PolicyEntry",
    "goal_sizing_bucket",
    "goal_sizing_key",
    "policy_bucket",
    "policy_key",
]


class PolicyEntry(Model):
    """A RiskPolicy as the risk manager enforces it: the spec and where it came from."""

    namespace: str | None = None
    """Defaults to the key's namespace."""
    name: str | None = None
    """Defaults to the key's name."""
    generation: int | None = None
    """The resource's metadata.generation it was published from (None: written by the local API)."""
    spec: RiskPolicySpec


class GoalSizingEntry(Model):
    """A goal's position-sizing multiplier (Goal.status.sizingMultiplier), applied by its strategies' runners."""

    multiplier: Annotated[float, Field(ge=0)]
    detail: str = ""
    """Why this value (the sizing's explanation), for a person reading the bucket."""


def policy_key(namespace: str, name: str) -> str:
    return f"{subjects.token(namespace)}.{subjects.token(name)}"


goal_sizing_key = subjects.goal_sizing_key


async def _bucket(js: Any, name: str, history: int) -> Any:
    try:
        return await js.key_value(name)
    except Exception:
        return await js.create_key_value(bucket=name, history=history)


async def policy_bucket(js: Any) -> Any:
    """The ``risk-policies`` bucket, created (five revisions kept) if it is not there yet."""
    return await _bucket(js, RISK_POLICY_BUCKET, 5)


async def goal_sizing_bucket(js: Any) -> Any:
    return await _bucket(js, GOAL_SIZING_BUCKET, 5)


def encode(entry: PolicyEntry | GoalSizingEntry) -> bytes:
    return codec.encode(entry)
