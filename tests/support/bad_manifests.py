"""A corpus of bad kubetrade manifests: each must be refused wherever it enters.

Built from the examples with one thing wrong in each, so a refusal can only be for that
one thing.  The same corpus is applied to the real API server with the admission webhook,
given to ``kubetrade validate``, to the API's strategy routes, and (with the webhook out
of the way) to the operator's reconcilers.  ``GOOD`` are the untouched examples: every
path must accept them, so a check that refuses everything cannot pass.

Each case: (id, manifest, what the refusal must mention - lower-case substring, or None
where the wording belongs to the API server).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text())


def _strategy() -> dict[str, Any]:
    doc = example("strategy-ema-rsi.yaml")
    doc["spec"].pop("goalRef", None)
    return doc


def _templated() -> dict[str, Any]:
    doc = _strategy()
    del doc["spec"]["genome"]
    doc["spec"]["template"] = "ema-crossover"
    doc["spec"]["parameters"] = {"fast": 12, "slow": 26}
    return doc


BASES: dict[str, Callable[[], dict[str, Any]]] = {
    "strategy": _strategy,
    "templated": _templated,
    "goal": lambda: example("goal.yaml"),
    "policy": lambda: example("riskpolicy.yaml"),
    "replay": lambda: example("collector-replay.yaml"),
    "collector": lambda: example("collector-binance.yaml"),
}

_MISSING = object()


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node = doc
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is _MISSING:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value


def case(base: str, *changes: tuple[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(BASES[base]())
    for path, value in changes:
        _set(doc, path, value)
    return doc


_IND = {"entry": {"rules": [{"left": {"indicator": "nosuch"}, "op": "gt", "right": {"value": 1}}]}}
_PERIOD0 = {"entry": {"rules": [{"left": {"indicator": "ema", "params": {"period": 0}}, "op": "gt",
                                 "right": {"value": 1}}]}}
_PERIOD_HUGE = {"entry": {"rules": [{"left": {"indicator": "rsi", "params": {"period": 5000}}, "op": "gt",
                                     "right": {"value": 1}}]}}
_MACD = {"entry": {"rules": [{"left": {"indicator": "macd", "params": {"fast": 30, "slow": 10}}, "op": "gt",
                              "right": {"value": 0}}]}}

BAD: list[tuple[str, dict[str, Any], str | None]] = [
    # --- Strategy: the webhook's semantic checks ------------------------------------------
    ("strategy-unknown-indicator", case("strategy", ("spec.genome", _IND)), "nosuch"),
    ("strategy-indicator-period-zero", case("strategy", ("spec.genome", _PERIOD0)), "period"),
    ("strategy-indicator-period-too-long", case("strategy", ("spec.genome", _PERIOD_HUGE)), "period"),
    ("strategy-macd-fast-above-slow", case("strategy", ("spec.genome", _MACD)), "fast"),
    ("strategy-unknown-template", case("templated", ("spec.template", "no-such-template")), "template"),
    ("strategy-template-fast-above-slow", case("templated", ("spec.parameters", {"fast": 30, "slow": 10})), "fast"),
    ("strategy-template-unknown-parameter", case("templated", ("spec.parameters", {"speed": 3})), "speed"),
    ("strategy-unknown-exchange", case("strategy", ("spec.exchange", "notanexchange")), "notanexchange"),
    ("strategy-perpetual-symbol-on-spot", case("strategy", ("spec.symbols", ["BTC/USDT:USDT"])), "perpetual"),
    ("strategy-spot-symbol-on-perpetual", case("strategy", ("spec.market", "perpetual")), "spot symbol"),
    ("strategy-duplicate-symbols", case("strategy", ("spec.symbols", ["BTC/USDT", "ETH/USDT", "BTC/USDT"])),
     "duplicate"),
    ("strategy-model-metadata-endpoint",
     case("strategy", ("spec.model", {"uri": "http://169.254.169.254/latest/meta-data/iam"})), "model.uri"),
    ("strategy-model-configmap", case("strategy", ("spec.model", {"uri": "configmap://models/price.onnx"})),
     "model.uri"),
    ("strategy-model-s3", case("strategy", ("spec.model", {"uri": "s3://bucket/price.onnx"})), "model.uri"),
    ("strategy-model-bundled-climbs", case("strategy", ("spec.model", {"uri": "bundled://../../etc/passwd"})),
     "model.uri"),
    ("strategy-model-file-relative", case("strategy", ("spec.model", {"uri": "file://models/x.onnx"})), "model.uri"),
    ("strategy-model-path-climbs", case("strategy", ("spec.model", {"uri": "../../../etc/shadow"})), "model.uri"),
    ("strategy-model-unknown-bundled", case("strategy", ("spec.model", {"uri": "bundled://no-such-model.onnx"})),
     "model.uri"),
    # --- Strategy: the schema (API server) ------------------------------------------------
    ("strategy-warmup-as-string", case("strategy", ("spec.warmupBars", "500")), None),
    ("strategy-paused-yes", case("strategy", ("spec.paused", "yes")), None),
    ("strategy-retired-as-string", case("strategy", ("spec.retired", "true")), None),
    ("strategy-unicode-name", case("strategy", ("metadata.name", "stratégie-btc")), None),
    ("strategy-uppercase-name", case("strategy", ("metadata.name", "BTC-Strategy")), None),
    ("strategy-name-too-long", case("strategy", ("metadata.name", "a" * 254)), None),
    ("strategy-name-trailing-dash", case("strategy", ("metadata.name", "btc-")), None),
    ("strategy-bad-label-value", case("strategy", ("metadata.labels", {"team": "quant desk!"})), None),
    ("strategy-bad-label-key", case("strategy", ("metadata.labels", {"-team": "quant"})), None),
    ("strategy-label-value-too-long", case("strategy", ("metadata.labels", {"team": "q" * 64})), None),
    ("strategy-bad-annotation-key", case("strategy", ("metadata.annotations", {"not a key": "x"})), None),
    ("strategy-wrong-version", case("strategy", ("apiVersion", "kubetrade.io/v1beta1")), None),
    ("strategy-unknown-field", case("strategy", ("spec.leverage", 3)), None),
    ("strategy-negative-capital", case("strategy", ("spec.capital", {"amount": -5})), None),
    ("strategy-capital-as-string", case("strategy", ("spec.capital", {"amount": "1000"})), None),
    ("strategy-live-without-credentials", case("strategy", ("spec.mode", "live")), None),
    ("strategy-genome-and-template", case("strategy", ("spec.template", "ema-crossover")), None),
    ("strategy-neither-genome-nor-template", case("strategy", ("spec.genome", _MISSING)), None),
    ("strategy-empty-symbols", case("strategy", ("spec.symbols", [])), None),
    ("strategy-lowercase-symbol", case("strategy", ("spec.symbols", ["btc/usdt"])), None),
    ("strategy-unknown-timeframe", case("strategy", ("spec.timeframe", "7m")), None),
    ("strategy-fee-rate-too-high", case("strategy", ("spec.execution.feeRate", 0.5)), None),
    ("strategy-warmup-fraction", case("strategy", ("spec.warmupBars", 1.5)), None),
    ("strategy-template-parameter-as-string", case("templated", ("spec.parameters", {"fast": "twelve"})), None),
    ("strategy-uppercase-exchange", case("strategy", ("spec.exchange", "Binance")), None),
    ("strategy-no-spec", case("strategy", ("spec", _MISSING)), None),
    ("strategy-bad-secret-name", case("strategy", ("spec.mode", "live"),
                                      ("spec.credentialsSecretRef", {"name": "Binance Keys"})), None),
    ("strategy-model-bad-sha", case("strategy", ("spec.model", {"uri": "bundled://returns-linear-16.onnx",
                                                                "sha256": "xyz"})), None),
    # --- Goal -----------------------------------------------------------------------------
    ("goal-cron-minute-61", case("goal", ("spec.evolution.schedule", "61 3 * * *")), "61"),
    ("goal-cron-arabic-digits", case("goal", ("spec.evolution.schedule", "\u0660 3 * * *")), None),
    ("goal-cron-fullwidth-digits", case("goal", ("spec.evolution.schedule", "\uff10 3 * * *")), None),
    ("goal-cron-superscript-digit", case("goal", ("spec.evolution.schedule", "0 \u00b3 * * *")), None),
    ("goal-cron-four-fields", case("goal", ("spec.evolution.schedule", "0 3 * *")), None),
    ("goal-cron-six-fields", case("goal", ("spec.evolution.schedule", "0 0 3 * * *")), None),
    ("goal-cron-time-zone-inside", case("goal", ("spec.evolution.schedule", "TZ=UTC 0 3 * * *")), "schedule"),
    ("goal-cron-step-zero", case("goal", ("spec.evolution.schedule", "*/0 3 * * *")), "step"),
    ("goal-cron-backwards-range", case("goal", ("spec.evolution.schedule", "0 5-1 * * *")), "backwards"),
    ("goal-cron-bad-month-name", case("goal", ("spec.evolution.schedule", "0 3 * foo *")), "foo"),
    ("goal-cron-day-zero", case("goal", ("spec.evolution.schedule", "0 3 0 * *")), "outside"),
    ("goal-cron-unknown-macro", case("goal", ("spec.evolution.schedule", "@fortnightly")), None),
    ("goal-unknown-time-zone", case("goal", ("spec.evolution.timeZone", "Mars/Olympus")), "time zone"),
    ("goal-time-zone-climbs", case("goal", ("spec.evolution.timeZone", "../../etc/passwd")), "time zone"),
    ("goal-empty-time-zone", case("goal", ("spec.evolution.timeZone", "")), "time zone"),
    ("goal-unknown-exchange", case("goal", ("spec.evolution.exchange", "notanexchange")), "notanexchange"),
    ("goal-perpetual-symbols-on-spot", case("goal", ("spec.evolution.symbols", ["BTC/USDT:USDT"])), "perpetual"),
    ("goal-duplicate-symbols", case("goal", ("spec.evolution.symbols", ["BTC/USDT", "BTC/USDT"])), "duplicate"),
    ("goal-selector-bad-label-value",
     case("goal", ("spec.strategySelector", {"matchLabels": {"kubetrade.io/goal": "monthly 8%"}})), "label"),
    ("goal-selector-bad-label-key", case("goal", ("spec.strategySelector", {"matchLabels": {"bad key": "x"}})),
     "label"),
    ("goal-selector-expression-bad-key",
     case("goal", ("spec.strategySelector", {"matchExpressions": [{"key": "a b", "operator": "Exists"}]})),
     "key"),
    ("goal-selector-expression-bad-value",
     case("goal", ("spec.strategySelector",
                   {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold!"]}]})), "values"),
    ("goal-selector-in-without-values",
     case("goal", ("spec.strategySelector", {"matchExpressions": [{"key": "tier", "operator": "In"}]})), "values"),
    ("goal-selector-exists-with-values",
     case("goal", ("spec.strategySelector",
                   {"matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["x"]}]})), "values"),
    ("goal-min-live-above-max", case("goal", ("spec.evolution.minLive", 5), ("spec.evolution.maxLive", 2)), None),
    ("goal-paper-days-backwards",
     case("goal", ("spec.evolution.minPaperDays", 20), ("spec.evolution.maxPaperDays", 10)), None),
    ("goal-no-symbols-no-selection", case("goal", ("spec.evolution.pairSelection", _MISSING)), None),
    ("goal-deadline-before-start", case("goal", ("spec.target.startDate", "2027-07-01")), "deadline"),
    ("goal-population-as-string", case("goal", ("spec.evolution.population", "500")), None),
    ("goal-suspend-yes", case("goal", ("spec.evolution.suspend", "yes")), None),
    ("goal-zero-return", case("goal", ("spec.target.returnPct", 0)), None),
    ("goal-unicode-name", case("goal", ("metadata.name", "ziel-monatlich-8%")), None),
    # --- RiskPolicy -----------------------------------------------------------------------
    ("policy-cvar-below-var", case("policy", ("spec.portfolioLimits.cvarLimitPct", 0.03)), "cvar"),
    ("policy-risk-per-trade-above-position",
     case("policy", ("spec.strategyLimits.maxRiskPerTradePct", 0.3)), "risk"),
    ("policy-position-above-one", case("policy", ("spec.strategyLimits.maxPositionPct", 1.5)), None),
    ("policy-position-zero", case("policy", ("spec.strategyLimits.maxPositionPct", 0)), None),
    ("policy-kill-switch-yes", case("policy", ("spec.circuitBreaker.killSwitch", "yes")), None),
    ("policy-var-confidence-one", case("policy", ("spec.portfolioLimits.varConfidence", 1.0)), None),
    ("policy-open-positions-as-string", case("policy", ("spec.portfolioLimits.maxOpenPositions", "10")), None),
    ("policy-unknown-field", case("policy", ("spec.strategyLimits.maxOrders", 5)), None),
    ("policy-trailing-above-one", case("policy", ("spec.stopLoss.trailingPct", 2)), None),
    ("policy-unicode-name", case("policy", ("metadata.name", "défaut")), None),
    # --- Collector ------------------------------------------------------------------------
    ("replay-path-climbs", case("replay", ("spec.replay.path", "../../etc")), "replay.path"),
    ("replay-absolute-path-climbs", case("replay", ("spec.replay.path", "/data/../../etc")), "replay.path"),
    ("replay-path-with-nul", case("replay", ("spec.replay.path", "/data/\u0000x")), None),
    ("replay-duplicate-symbols", case("replay", ("spec.symbols", ["BTC/USDT", "BTC/USDT"])), "duplicate"),
    ("replay-duplicate-timeframes", case("replay", ("spec.timeframes", ["5m", "5m"])), "duplicate"),
    ("replay-without-settings", case("replay", ("spec.replay", _MISSING)), None),
    ("replay-zero-speed", case("replay", ("spec.replay.speed", 0)), None),
    ("replay-unknown-exchange", case("replay", ("spec.exchange", "notanexchange")), "notanexchange"),
    ("collector-unknown-provider-exchange", case("collector", ("spec.provider", "notanexchange")), "notanexchange"),
    ("collector-without-symbols", case("collector", ("spec.symbols", [])), None),
    ("collector-onchain-unknown-provider", case("collector", ("spec.source", "onchain"),
                                                ("spec.provider", "nosuch")), None),
    ("collector-unknown-timeframe", case("collector", ("spec.timeframes", ["7m"])), None),
    ("collector-suspend-no", case("collector", ("spec.suspend", "no")), None),
    ("collector-interval-as-string", case("collector", ("spec.intervalSeconds", "30")), None),
    ("collector-unicode-name", case("collector", ("metadata.name", "binance-spöt")), None),
]

GOOD: list[tuple[str, dict[str, Any]]] = [
    *[(f"example-{p.stem}", doc) for p in sorted(EXAMPLES.glob("*.yaml")) for doc in yaml.safe_load_all(p.read_text())],
    ("good-templated", _templated()),
    ("good-cron-names", case("goal", ("spec.evolution.schedule", "30 2 * jan-jun mon-fri"))),
    ("good-cron-steps", case("goal", ("spec.evolution.schedule", "*/15 */6 1-31/2 * *"))),
    ("good-cron-macro", case("goal", ("spec.evolution.schedule", "@daily"))),
    ("good-selector-expressions", case("goal", ("spec.strategySelector", {"matchExpressions": [
        {"key": "kubetrade.io/goal", "operator": "In", "values": ["monthly-8pct"]},
        {"key": "tier", "operator": "DoesNotExist"}]}))),
    ("good-model-bundled", case("strategy", ("spec.model", {"uri": "bundled://returns-linear-16.onnx"}))),
    ("good-model-file", case("strategy", ("spec.model", {"uri": "file:///models/price.onnx"}))),
    ("good-replay-absolute-path", case("replay", ("spec.replay.path", "/data/candles"))),
    ("good-policy-equal-var-cvar", case("policy", ("spec.portfolioLimits.cvarLimitPct", 0.05))),
    ("good-perpetual", case("strategy", ("spec.market", "perpetual"), ("spec.symbols", ["BTC/USDT:USDT"]))),
]


def ids(cases: list[tuple[Any, ...]]) -> list[str]:
    return [c[0] for c in cases]
