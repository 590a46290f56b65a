"""The runner's configuration: the Strategy resource the operator mounts, resolved and checked.

Everything that can be wrong with a Strategy is found here, before a candle is read: a
genome that does not compile, a template that does not exist, a model that is missing or
does not fit.  Each error names the strategy and the field so a person can fix the resource.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from kubetrade.engine.compile import GenomeError, compile_tables
from kubetrade.engine.indicators import IndicatorError
from kubetrade.engine.templates import expand
from kubetrade.resources.genome import Genome
from kubetrade.resources.strategy import Strategy


class RunnerConfigError(ValueError):
    """A Strategy the runner cannot run; the message says which field and why."""


@dataclass(frozen=True)
class RunnerConfig:
    strategy: Strategy
    name: str
    namespace: str
    genome: Genome
    uid: str = ""

    @property
    def spec(self):  # type: ignore[no-untyped-def]
        return self.strategy.spec

    @property
    def label(self) -> str:
        return f"Strategy {self.namespace}/{self.name}"

    @property
    def order_prefix(self) -> str:
        """8 hex characters fixed per strategy object: the start of each of its client order ids."""
        seed = f"{self.namespace}/{self.name}/{self.uid}/{self.spec.mode}"
        return hashlib.sha256(seed.encode()).hexdigest()[:8]


def uses_prediction(genome: Genome) -> bool:
    sets = [genome.entry, genome.exit, genome.short_entry, genome.short_exit]
    return any(op.indicator == "prediction" for rs in sets if rs for r in rs.rules for op in (r.left, r.right))


def parse(doc: dict, source: str = "strategy") -> RunnerConfig:  # type: ignore[type-arg]
    """Validate the resource and compile its strategy; raise RunnerConfigError on any problem."""
    meta = doc.get("metadata") or {}
    name, namespace = meta.get("name", "?"), meta.get("namespace") or "default"
    label = f"Strategy {namespace}/{name}"
    try:
        strategy = Strategy.parse(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RunnerConfigError(f"{label} ({source}): {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    spec = strategy.spec
    try:
        genome = spec.genome if spec.genome is not None else expand(spec.template or "", spec.parameters)
    except ValueError as exc:
        raise RunnerConfigError(f"{label}: spec.template: {exc}") from None
    if uses_prediction(genome):
        if spec.model is None:
            raise RunnerConfigError(f"{label}: spec.genome uses the prediction indicator but spec.model is not set")
        from kubetrade.prediction.model import ModelError, register_prediction

        try:
            register_prediction(spec.model)
        except ModelError as exc:
            raise RunnerConfigError(f"{label}: spec.model: {exc}") from None
    try:
        compile_tables([genome], market=spec.market, names=[label])
    except (GenomeError, IndicatorError) as exc:
        raise RunnerConfigError(f"{label}: spec.genome does not compile: {exc}") from None
    return RunnerConfig(strategy, name, namespace, genome, str(meta.get("uid") or ""))


def load(path: Path) -> RunnerConfig:
    """Read the mounted ``strategy.json`` (or a YAML manifest)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise RunnerConfigError(f"strategy config {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise RunnerConfigError(f"strategy config {path}: not valid JSON/YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise RunnerConfigError(f"strategy config {path}: expected a Strategy object")
    return parse(doc, str(path))
