"""Drop a deleted resource's gauges (kubetrade_strategy_*, kubetrade_goal_*).

The gauges are set from status in the reconcilers and the status feed
(:func:`kubetrade.observability.metrics.export_status`); without this a deleted strategy
would stay on the dashboards until the operator restarts.  ``optional=True``: no
finalizer of its own - it runs when the object goes, it never holds a deletion up.
"""

from __future__ import annotations

from typing import Any

import kopf

from kubetrade.observability.metrics import forget
from kubetrade.resources import GROUP, VERSION


@kopf.on.delete(GROUP, VERSION, "strategies", optional=True)
def forget_strategy(name: str, namespace: str | None, **_: Any) -> None:
    forget("Strategy", namespace or "", name)


@kopf.on.delete(GROUP, VERSION, "goals", optional=True)
def forget_goal(name: str, namespace: str | None, **_: Any) -> None:
    forget("Goal", namespace or "", name)
