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
    model_error: str | None = None
    """Why a model the genome needs was refused (missing, wrong digest, other features, NaN ...): the runner
    then does not trade, and says so in the Strategy's status (Degraded, ModelRefused) and its metrics."""

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


def uses_policy(genome: Genome) -> bool:
    sets = [genome.entry, genome.exit, genome.short_entry, genome.short_exit]
    return any(op.indicator == "policy" for rs in sets if rs for r in rs.rules for op in (r.left, r.right))


def _load_models(label: str, spec, genome: Genome, dsn: str | None) -> str | None:  # type: ignore[no-untyped-def]
    """Load and bind the models the genome uses; the refusal's message, or None when all are usable."""
    from kubetrade.prediction.model import ModelError, load, register_policy, register_prediction

    fetch = None
    if dsn:
        from kubetrade.prediction import registry

        def fetch(ref):  # type: ignore[no-untyped-def]
            return registry.fetch(dsn, ref)

    try:
        predictor = None
        if uses_prediction(genome):
            assert spec.model is not None
            predictor = register_prediction(spec.model, fetch)
        if uses_policy(genome):
            assert spec.policy is not None
            if predictor is None and spec.model is not None:
                predictor = load(spec.model, "predictor", fetch)
            register_policy(spec.policy, predictor, fetch)
    except ModelError as exc:
        field = "spec.policy" if uses_policy(genome) and "polic" in str(exc) else "spec.model"
        return f"{label}: {field}: {exc}"
    return None


def parse(doc: dict, source: str = "strategy", dsn: str | None = None) -> RunnerConfig:  # type: ignore[type-arg]
    """Validate the resource and compile its strategy; raise RunnerConfigError on any problem but a model's.

    A model the genome needs that cannot be used (``model_error``) is not an error here: the runner starts,
    trades nothing and reports why, so the Strategy shows the condition and the alert fires.  ``dsn``
    reads ``registry://`` models from the model store."""
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
    if uses_prediction(genome) and spec.model is None:
        raise RunnerConfigError(f"{label}: spec.genome uses the prediction indicator but spec.model is not set")
    if uses_policy(genome) and spec.policy is None:
        raise RunnerConfigError(f"{label}: spec.genome uses the policy indicator but spec.policy is not set")
    model_error = _load_models(label, spec, genome, dsn) if uses_prediction(genome) or uses_policy(genome) else None
    if model_error is not None:  # the genome cannot compile without its model; the runner will not trade it
        return RunnerConfig(strategy, name, namespace, genome, str(meta.get("uid") or ""), model_error)
    try:
        compile_tables([genome], market=spec.market, names=[label])
    except (GenomeError, IndicatorError) as exc:
        raise RunnerConfigError(f"{label}: spec.genome does not compile: {exc}") from None
    return RunnerConfig(strategy, name, namespace, genome, str(meta.get("uid") or ""))


def _yaml(text: str) -> object:
    """A YAML manifest (a person's file); the operator mounts JSON, so a runner pod never imports PyYAML
    (19 modules, about 1 MB of every runner's memory: bench runner_footprint)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def load(path: Path, dsn: str | None = None) -> RunnerConfig:
    """Read the mounted ``strategy.json`` (or a YAML manifest)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise RunnerConfigError(f"strategy config {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text) if path.suffix == ".json" else _yaml(text)
    except ValueError as exc:  # yaml.YAMLError is one too (_yaml)
        raise RunnerConfigError(f"strategy config {path}: not valid JSON/YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise RunnerConfigError(f"strategy config {path}: expected a Strategy object")
    return parse(doc, str(path), dsn)
