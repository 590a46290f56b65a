"""Validating admission webhook: semantic checks beyond the CRD schema.

The handlers are async on purpose: the checks take microseconds, and a sync handler would
queue behind reconciliations for a worker thread while the API server waits on every write.

The schema (with its CEL rules) already refuses malformed resources; the webhook refuses
well-formed ones that cannot work: a genome that does not compile, an unknown template,
exchange or time zone, an invalid cron, a spot symbol on a perpetual market, live mode
without credentials.  The same checks run in every reconcile, so a resource that slipped
in while the webhook was down still ends up Failed with the reason, never trading.
"""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from kubetrade.resources import GROUP, VERSION, CollectorSpec, GoalSpec, StrategySpec
from kubetrade.resources.semantic import collector_problems, goal_problems, strategy_problems


def _check(model: Any, spec: Any, problems_of: Any) -> None:
    try:
        parsed = model.model_validate(dict(spec or {}))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise kopf.AdmissionError(f"spec.{'.'.join(map(str, err['loc']))}: {err['msg']}", code=422) from exc
    problems = problems_of(parsed)
    if problems:
        raise kopf.AdmissionError("; ".join(problems), code=422)


@kopf.on.validate(GROUP, VERSION, "strategies", operations=["CREATE", "UPDATE"], ignore_failures=True)
async def validate_strategy(spec: kopf.Spec, **_: Any) -> None:
    _check(StrategySpec, spec, strategy_problems)


@kopf.on.validate(GROUP, VERSION, "goals", operations=["CREATE", "UPDATE"], ignore_failures=True)
async def validate_goal(spec: kopf.Spec, **_: Any) -> None:
    _check(GoalSpec, spec, goal_problems)


@kopf.on.validate(GROUP, VERSION, "collectors", operations=["CREATE", "UPDATE"], ignore_failures=True)
async def validate_collector(spec: kopf.Spec, **_: Any) -> None:
    _check(CollectorSpec, spec, collector_problems)
