"""The indicator registry: names a genome may use, their parameters, outputs and kernels.

A genome names an indicator (``ema``) with parameters (``{period: 20}``) and optionally an
output (``signal`` of ``macd``).  This registry is the one place that knows which names
exist, which parameters are allowed (bounds, integer or not, cross-parameter rules such as
MACD's fast < slow) and how to compute them, so an evolved genome, a hand-written
Strategy resource and the live runner all resolve an indicator the same way.  Custom
indicators are added with :func:`register`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy only where values are computed: a genome is validated and streamed without it
    from kubetrade.candles import Candles, FloatArray


class IndicatorError(ValueError):
    """An unknown indicator, output or parameter, or parameters that cannot work together."""


@dataclass(frozen=True)
class Param:
    """One numeric parameter with its default and inclusive bounds."""

    name: str
    default: float
    low: float
    high: float
    integer: bool = True


Compute = Callable[..., tuple["FloatArray", ...]]


@dataclass(frozen=True)
class IndicatorSpec:
    """Everything needed to resolve and compute one indicator.

    ``compute`` receives the ``inputs`` price columns followed by the parameters in the
    declared order (ints for integer parameters) and returns one array per output.
    ``constraint`` returns a message for a parameter combination that cannot work.
    """

    name: str
    inputs: tuple[str, ...]
    params: tuple[Param, ...]
    outputs: tuple[str, ...]
    compute: Compute
    lookback: Callable[[Mapping[str, float]], int]
    constraint: Callable[[Mapping[str, float]], str | None] = field(default=lambda p: None)
    description: str = ""


REGISTRY: dict[str, IndicatorSpec] = {}


def register(spec: IndicatorSpec, *, replace: bool = False) -> IndicatorSpec:
    """Add an indicator; genomes can use it as soon as it is registered."""
    if spec.name in REGISTRY and not replace:
        raise IndicatorError(f"indicator {spec.name!r} is already registered")
    if not spec.outputs:
        raise IndicatorError(f"indicator {spec.name!r} declares no output")
    REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> IndicatorSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise IndicatorError(f"unknown indicator {name!r}: known are {', '.join(sorted(REGISTRY))}") from None


def resolve(name: str, params: Mapping[str, float], output: str | None = None) -> tuple[tuple[float, ...], str]:
    """Validated parameter values in declared order (defaults filled in) and the output name."""
    spec = get(name)
    known = {p.name for p in spec.params}
    if unknown := sorted(set(params) - known):
        raise IndicatorError(
            f"indicator {name}: unknown parameter(s) {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(known)) or 'none'}"
        )
    values: dict[str, float] = {}
    for p in spec.params:
        v = float(params.get(p.name, p.default))
        if not math.isfinite(v) or not p.low <= v <= p.high:
            raise IndicatorError(f"indicator {name}: {p.name}={v:g} is outside [{p.low:g}, {p.high:g}]")
        if p.integer and v != int(v):
            raise IndicatorError(f"indicator {name}: {p.name}={v:g} must be a whole number")
        values[p.name] = v
    if msg := spec.constraint(values):
        raise IndicatorError(f"indicator {name}: {msg}")
    out = output or spec.outputs[0]
    if out not in spec.outputs:
        raise IndicatorError(f"indicator {name} has no output {out!r}; outputs are {', '.join(spec.outputs)}")
    return tuple(values[p.name] for p in spec.params), out


def lookback(name: str, params: Mapping[str, float]) -> int:
    """Bars an indicator needs before its first value (its warm-up)."""
    values, _ = resolve(name, params)
    spec = get(name)
    return spec.lookback(dict(zip((p.name for p in spec.params), values, strict=True)))


def compute(name: str, candles: Candles, params: Mapping[str, float]) -> dict[str, FloatArray]:
    """All outputs of one indicator over the candles, by output name."""
    spec = get(name)
    values, _ = resolve(name, params)
    args = [int(v) if p.integer else v for p, v in zip(spec.params, values, strict=True)]
    result = spec.compute(*(candles.field(i) for i in spec.inputs), *args)
    if len(result) != len(spec.outputs):
        raise IndicatorError(f"indicator {name} returned {len(result)} arrays for outputs {spec.outputs}")
    import numpy as np

    return {o: np.asarray(a, dtype=np.float64) for o, a in zip(spec.outputs, result, strict=True)}


def _period(default: int, low: int = 2, high: int = 1000) -> tuple[Param, ...]:
    return (Param("period", default, low, high),)


class _Kernels:
    """The numba kernels, imported on first use: the registry (names, parameters, checks) is
    needed without them wherever a genome is only validated."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        from kubetrade.engine import kernels

        return getattr(kernels, name)  # type: ignore[no-any-return]


k = _Kernels()


def _kernel(name: str) -> Callable[..., Any]:
    return lambda *a: getattr(k, name)(*a)


def _one(fn: Callable[..., FloatArray]) -> Compute:
    return lambda *a: (fn(*a),)


def _macd_rule(p: Mapping[str, float]) -> str | None:
    return None if p["fast"] < p["slow"] else f"fast ({p['fast']:g}) must be shorter than slow ({p['slow']:g})"


register(IndicatorSpec("sma", ("close",), _period(20), ("value",), _one(_kernel("sma")), lambda p: int(p["period"]) - 1,
                       description="simple moving average of the close"))
register(IndicatorSpec("ema", ("close",), _period(20), ("value",), _one(_kernel("ema")), lambda p: int(p["period"]) - 1,
                       description="exponential moving average of the close, seeded with the SMA"))
register(IndicatorSpec("rsi", ("close",), _period(14), ("value",), _one(_kernel("rsi")), lambda p: int(p["period"]),
                       description="Wilder's relative strength index, 0..100"))
register(IndicatorSpec(
    "macd", ("close",),
    (Param("fast", 12, 2, 500), Param("slow", 26, 3, 1000), Param("signal", 9, 2, 500)),
    ("macd", "signal", "hist"), _kernel("macd"),
    lambda p: int(p["slow"]) + int(p["signal"]) - 2, _macd_rule,
    description="MACD line, signal line and histogram"))
register(IndicatorSpec(
    "bbands", ("close",),
    (Param("period", 20, 2, 1000), Param("nbdev_up", 2.0, 0.1, 10, False), Param("nbdev_down", 2.0, 0.1, 10, False)),
    ("middle", "upper", "lower"), lambda x, p, u, d: (lambda r: (r[1], r[0], r[2]))(k.bbands(x, p, u, d)),
    lambda p: int(p["period"]) - 1,
    description="Bollinger Bands: SMA and population standard deviation bands"))
register(IndicatorSpec("atr", ("high", "low", "close"), _period(14, 1), ("value",), _one(_kernel("atr")),
                       lambda p: int(p["period"]), description="Wilder's average true range"))
register(IndicatorSpec(
    "stoch", ("high", "low", "close"),
    (Param("fastk", 14, 1, 1000), Param("slowk", 3, 1, 100), Param("slowd", 3, 1, 100)),
    ("k", "d"), _kernel("stoch"), lambda p: int(p["fastk"] + p["slowk"] + p["slowd"]) - 3,
    description="slow stochastic %K and %D, 0..100"))
register(IndicatorSpec("obv", ("close", "volume"), (), ("value",), _one(_kernel("obv")), lambda p: 0,
                       description="on-balance volume"))
register(IndicatorSpec("vwap", ("high", "low", "close", "volume"), _period(60, 1), ("value",), _one(_kernel("vwap")),
                       lambda p: int(p["period"]) - 1, description="rolling volume-weighted typical price"))
