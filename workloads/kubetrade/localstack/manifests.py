"""Load kubetrade resources from YAML files, as ``kubectl apply -f`` would read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from kubetrade.resources import BY_KIND, Collector, Goal, Resource, RiskPolicy, Strategy


class ResourceError(ValueError):
    """A manifest that is not a valid kubetrade resource; the message names file, object and field."""


@dataclass
class ResourceSet:
    strategies: list[Strategy] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    policies: list[RiskPolicy] = field(default_factory=list)
    collectors: list[Collector] = field(default_factory=list)

    def add(self, obj: Resource) -> None:
        bucket = {Strategy: self.strategies, Goal: self.goals, RiskPolicy: self.policies, Collector: self.collectors}
        bucket[type(obj)].append(obj)  # type: ignore[attr-defined]

    def check_references(self) -> list[str]:
        """Problems a cluster would only show at run time: dangling policy or goal references."""
        problems = []
        policies = {p.metadata.get("name") for p in self.policies}
        goals = {g.metadata.get("name") for g in self.goals}
        for s in self.strategies:
            name = s.metadata.get("name")
            if s.spec.risk_policy_ref.name not in policies:
                problems.append(f"Strategy/{name}: riskPolicyRef {s.spec.risk_policy_ref.name!r} not found")
            if s.spec.goal_ref and s.spec.goal_ref.name not in goals:
                problems.append(f"Strategy/{name}: goalRef {s.spec.goal_ref.name!r} not found")
        for g in self.goals:
            if g.spec.risk_policy_ref.name not in policies:
                ref = g.spec.risk_policy_ref.name
                problems.append(f"Goal/{g.metadata.get('name')}: riskPolicyRef {ref!r} not found")
        return problems


def load(paths: list[Path]) -> ResourceSet:
    """Read every kubetrade document from files and folders; raise on the first invalid one."""
    result = ResourceSet()
    files = [p for path in paths for p in (sorted(path.glob("*.y*ml")) if path.is_dir() else [path])]
    for path in files:
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as exc:
            raise ResourceError(f"{path}: not valid YAML: {exc}") from exc
        for index, doc in enumerate(docs):
            if not isinstance(doc, dict) or str(doc.get("apiVersion", "")).split("/")[0] != "kubetrade.io":
                continue
            kind = doc.get("kind")
            name = (doc.get("metadata") or {}).get("name", "?")
            model = BY_KIND.get(str(kind))
            if model is None:
                raise ResourceError(f"{path}#{index}: unknown kind {kind!r}; expected one of {', '.join(BY_KIND)}")
            try:
                result.add(model.parse(doc))
            except ValidationError as exc:
                details = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
                )
                raise ResourceError(f"{path}#{index} {kind}/{name}: {details}") from exc
    return result
