"""Random genomes, mutation and crossover: the variation half of the evolution.

Rules are drawn from templates that compare like with like (a moving average with a
moving average or the price, an oscillator with a threshold on its own scale), over
coarse parameter grids.  Meaningless comparisons (RSI against a BTC price) would only
waste evaluations, and coarse grids keep the number of distinct indicator series small,
so one feature matrix serves the whole population.  Alternative-data series (``alt``:
:class:`kubetrade.engine.altdata.AltOperand`) join the operands when a run is given some:
a series against one of its own deciles, on the series' own scale.  So does a trained price
predictor's output (``pred``: :class:`PredictionOperand`, the indicator ``prediction``): against
one of its in-sample deciles, zero, or the round-trip cost, and crossing them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubetrade.engine import indicators
from kubetrade.resources.genome import Genome

if TYPE_CHECKING:
    from kubetrade.engine.altdata import AltOperand

PERIODS = (5, 7, 9, 12, 14, 20, 26, 30, 50, 100, 200)
OSC_PERIODS = (7, 9, 14, 21)
STOCH_K = (5, 9, 14, 21)
MACD_SETS = ((12, 26, 9), (8, 21, 5), (24, 52, 18))
BB_SETS = ((20, 2.0), (20, 2.5), (50, 2.0))
VWAP_PERIODS = (30, 60, 240)
CROSS_OPS = ("crossesAbove", "crossesBelow")
LEVEL_OPS = ("gt", "lt", "crossesAbove", "crossesBelow")
STOP_LOSS = (None, 0.005, 0.01, 0.02, 0.03, 0.05)
TAKE_PROFIT = (None, 0.01, 0.02, 0.04, 0.08)
TRAILING = (None, 0.005, 0.01, 0.02, 0.04)
POSITION = (0.5, 0.75, 1.0)

Spec = dict[str, Any]


def warmup() -> int:
    """The longest warm-up (bars) of any operand the generator can draw: bars a window needs before it trades."""
    longest = [("sma", {"period": max(PERIODS)}), ("ema", {"period": max(PERIODS)}),
               ("rsi", {"period": max(OSC_PERIODS)}), ("atr", {"period": max((*OSC_PERIODS, 50))}),
               ("stoch", {"fastk": max(STOCH_K), "slowk": 3, "slowd": 3}),
               ("vwap", {"period": max(VWAP_PERIODS)}), ("bbands", {"period": max(p for p, _ in BB_SETS)})]
    longest += [("macd", {"fast": f, "slow": s, "signal": g}) for f, s, g in MACD_SETS]
    return max(indicators.lookback(name, params) for name, params in longest)


def _ind(name: str, output: str | None = None, **params: float) -> Spec:
    d: Spec = {"indicator": name, "params": {k: float(v) for k, v in params.items()}}
    if output:
        d["output"] = output
    return d


def _ma(r: random.Random, period: int | None = None) -> Spec:
    return _ind(r.choice(("ema", "sma")), period=period or r.choice(PERIODS))


def _ma_cross(r: random.Random) -> Spec:
    a, b = sorted(r.sample(PERIODS, 2))
    return {"left": _ma(r, a), "op": r.choice(LEVEL_OPS), "right": _ma(r, b)}


def _price_vs_ma(r: random.Random) -> Spec:
    right = _ind("vwap", period=r.choice(VWAP_PERIODS)) if r.random() < 0.25 else _ma(r)
    return {"left": {"price": "close"}, "op": r.choice(LEVEL_OPS), "right": right}


def _rsi(r: random.Random) -> Spec:
    return {"left": _ind("rsi", period=r.choice(OSC_PERIODS)), "op": r.choice(LEVEL_OPS),
            "right": {"value": float(r.randrange(15, 90, 5))}}


def _stoch(r: random.Random) -> Spec:
    return {"left": _ind("stoch", r.choice(("k", "d")), fastk=r.choice(STOCH_K), slowk=3, slowd=3),
            "op": r.choice(LEVEL_OPS), "right": {"value": float(r.randrange(10, 95, 5))}}


def _macd(r: random.Random) -> Spec:
    f, s, g = r.choice(MACD_SETS)
    if r.random() < 0.5:
        return {"left": _ind("macd", "macd", fast=f, slow=s, signal=g), "op": r.choice(LEVEL_OPS),
                "right": _ind("macd", "signal", fast=f, slow=s, signal=g)}
    return {"left": _ind("macd", "hist", fast=f, slow=s, signal=g), "op": r.choice(LEVEL_OPS),
            "right": {"value": 0.0}}


def _bbands(r: random.Random) -> Spec:
    p, d = r.choice(BB_SETS)
    band = r.choice(("upper", "lower", "middle"))
    return {"left": {"price": "close"}, "op": r.choice(LEVEL_OPS),
            "right": _ind("bbands", band, period=p, nbdev_up=d, nbdev_down=d)}


def _volatility(r: random.Random) -> Spec:
    a, b = sorted(r.sample((*OSC_PERIODS, 50), 2))
    return {"left": _ind("atr", period=a), "op": r.choice(("gt", "lt")), "right": _ind("atr", period=b)}


RULE_MAKERS: tuple[Callable[[random.Random], Spec], ...] = (
    _ma_cross, _price_vs_ma, _rsi, _stoch, _macd, _bbands, _volatility,
)


PREDICTION = "prediction"
"""The indicator a Strategy's ``spec.model`` binds (:mod:`kubetrade.prediction.model`)."""


@dataclass(frozen=True)
class PredictionOperand:
    """The ``prediction`` indicator (a predicted log return) and the levels its rules compare it to."""

    levels: tuple[float, ...]


def _alt(r: random.Random, alt: Sequence[AltOperand]) -> Spec:
    op = r.choice(alt)
    return {"left": {"alt": op.ref.to_k8s()}, "op": r.choice(LEVEL_OPS), "right": {"value": r.choice(op.levels)}}


def _prediction(r: random.Random, pred: PredictionOperand) -> Spec:
    return {"left": _ind(PREDICTION), "op": r.choice(LEVEL_OPS), "right": {"value": r.choice(pred.levels)}}


def random_rule(r: random.Random, alt: Sequence[AltOperand] = (), pred: PredictionOperand | None = None) -> Spec:
    """One rule; with ``alt`` an alternative-data rule, with ``pred`` a prediction rule, each as likely as each
    indicator family (without either, the draws are what they always were: the same seed, the same genomes)."""
    extra: list[Callable[[random.Random], Spec]] = []
    if alt:
        extra.append(lambda r: _alt(r, alt))
    if pred is not None:
        extra.append(lambda r: _prediction(r, pred))
    if not extra:
        return r.choice(RULE_MAKERS)(r)
    k = r.randrange(len(RULE_MAKERS) + len(extra))
    return extra[k - len(RULE_MAKERS)](r) if k >= len(RULE_MAKERS) else RULE_MAKERS[k](r)


def _ruleset(r: random.Random, low: int, high: int, alt: Sequence[AltOperand] = (),
             pred: PredictionOperand | None = None) -> Spec | None:
    n = r.randint(low, high)
    if n == 0:
        return None
    return {"combine": r.choice(("all", "any")) if n > 1 else "all",
            "rules": [random_rule(r, alt, pred) for _ in range(n)]}


def random_spec(r: random.Random, *, both_sides: bool = False, alt: Sequence[AltOperand] = (),
                pred: PredictionOperand | None = None) -> Spec:
    spec: Spec = {"entry": _ruleset(r, 1, 3, alt, pred), "exit": _ruleset(r, 0, 2, alt, pred),
                  "stopLossPct": r.choice(STOP_LOSS), "takeProfitPct": r.choice(TAKE_PROFIT),
                  "trailingStopPct": r.choice(TRAILING), "positionPct": r.choice(POSITION)}
    if both_sides:
        spec |= {"direction": "both", "shortEntry": _ruleset(r, 1, 3, alt, pred),
                 "shortExit": _ruleset(r, 0, 2, alt, pred)}
    return repair(spec)


def uses_prediction(spec: Spec) -> bool:
    """Whether any rule of the spec reads the ``prediction`` indicator."""
    return any(side.get("indicator") == PREDICTION for key in _rule_sets(spec) for rule in spec[key]["rules"]
               for side in (rule["left"], rule["right"]))


def repair(spec: Spec) -> Spec:
    """Make a spec valid: trailing stop below take-profit, no empty optional rule sets."""
    tp, ts = spec.get("takeProfitPct"), spec.get("trailingStopPct")
    if tp is not None and ts is not None and ts >= tp:
        spec["trailingStopPct"] = None
    for key in ("exit", "shortEntry", "shortExit"):
        if spec.get(key) is not None and not spec[key]["rules"]:
            spec[key] = None
    # the short side lives or dies with its entry rules (crossover can separate them)
    if spec.get("shortEntry") is None:
        spec["shortExit"] = None
    spec["direction"] = "both" if spec.get("shortEntry") is not None else None
    return {k: v for k, v in spec.items() if v is not None}


def to_genome(spec: Spec) -> Genome:
    return Genome.model_validate(spec)


def _rule_sets(spec: Spec) -> list[str]:
    return [k for k in ("entry", "exit", "shortEntry", "shortExit") if k in spec]


def mutate(spec: Spec, r: random.Random, alt: Sequence[AltOperand] = (), pred: PredictionOperand | None = None,
           ) -> Spec:
    """One small change: a rule replaced, added or dropped, the combine flipped, or a risk value redrawn."""
    spec = {k: (v if not isinstance(v, dict) else {"combine": v["combine"], "rules": list(v["rules"])})
            for k, v in spec.items()}
    choice = r.random()
    if choice < 0.55:
        key = r.choice([*_rule_sets(spec), "exit"])
        rs = spec.get(key) or {"combine": "all", "rules": []}
        rules = rs["rules"]
        what = r.random()
        if rules and what < 0.6:
            rules[r.randrange(len(rules))] = random_rule(r, alt, pred)
        elif len(rules) < 3 and what < 0.85:
            rules.append(random_rule(r, alt, pred))
        elif len(rules) > (1 if key in ("entry", "shortEntry") else 0):
            rules.pop(r.randrange(len(rules)))
        rs["rules"] = rules
        spec[key] = rs
    elif choice < 0.65:
        key = r.choice(_rule_sets(spec))
        spec[key]["combine"] = "any" if spec[key]["combine"] == "all" else "all"
    else:
        field, values = r.choice((("stopLossPct", STOP_LOSS), ("takeProfitPct", TAKE_PROFIT),
                                  ("trailingStopPct", TRAILING), ("positionPct", POSITION)))
        spec[field] = r.choice(values)
    return repair(spec)


def crossover(a: Spec, b: Spec, r: random.Random) -> tuple[Spec, Spec]:
    """Swap whole parts (entry rules, exit rules, the risk block) between two parents."""
    a, b = dict(a), dict(b)
    parts = (("entry", "shortEntry"), ("exit", "shortExit"),
             ("stopLossPct", "takeProfitPct", "trailingStopPct", "positionPct"))
    for part in parts:
        if r.random() < 0.5:
            for key in part:
                va, vb = a.get(key), b.get(key)
                a[key], b[key] = vb, va
    return repair(a), repair(b)
