"""Typed models of the kubetrade.io/v1alpha1 custom resources: the single source of truth.

The CRDs in ``crds/`` are generated from these models (``kubetrade crds generate``) and
a test fails when they drift.  The operator, the workloads and the API all validate
resources with the same models.
"""

from kubetrade.resources.base import API_VERSION, GROUP, VERSION, Condition, Model, Resource
from kubetrade.resources.collector import Collector, CollectorSpec, CollectorStatus
from kubetrade.resources.genome import Genome
from kubetrade.resources.goal import Goal, GoalSpec, GoalStatus
from kubetrade.resources.riskpolicy import RiskPolicy, RiskPolicySpec, RiskPolicyStatus
from kubetrade.resources.strategy import Strategy, StrategySpec, StrategyStatus

RESOURCES: tuple[type[Resource], ...] = (Strategy, Goal, RiskPolicy, Collector)
"""Every kind, in the order the CRDs are written."""

BY_KIND: dict[str, type[Resource]] = {r.kind_name: r for r in RESOURCES}

__all__ = [
    "API_VERSION",
    "BY_KIND",
    "GROUP",
    "RESOURCES",
    "VERSION",
    "Collector",
    "CollectorSpec",
    "CollectorStatus",
    "Condition",
    "Genome",
    "Goal",
    "GoalSpec",
    "GoalStatus",
    "Model",
    "Resource",
    "RiskPolicy",
    "RiskPolicySpec",
    "RiskPolicyStatus",
    "Strategy",
    "StrategySpec",
    "StrategyStatus",
]
