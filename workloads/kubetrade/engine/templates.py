"""Named strategy templates: a Strategy resource's ``template`` + ``parameters`` expand to a genome.

A template is just a genome factory, so a templated strategy is backtested and run live
by exactly the same code path as an evolved one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from kubetrade.resources.genome import Genome, Operand, Rule, RuleSet


def _ind(name: str, **params: float) -> Operand:
    return Operand(indicator=name, params=params)


def ema_cross(fast: float = 12, slow: float = 26) -> Genome:
    """Long when the fast EMA crosses above the slow one, flat when it crosses back below."""
    if not fast < slow:
        raise ValueError(f"ema_cross: fast ({fast:g}) must be shorter than slow ({slow:g})")
    f, s = _ind("ema", period=fast), _ind("ema", period=slow)
    return Genome(
        entry=RuleSet(rules=[Rule(left=f, op="crossesAbove", right=s)]),
        exit=RuleSet(rules=[Rule(left=f, op="crossesBelow", right=s)]),
    )


def rsi_reversion(period: float = 14, low: float = 30, high: float = 70, stop_loss: float = 0.03) -> Genome:
    """Buy an oversold RSI, sell an overbought one, with a stop-loss."""
    r = _ind("rsi", period=period)
    return Genome(
        entry=RuleSet(rules=[Rule(left=r, op="crossesAbove", right=Operand(value=low))]),
        exit=RuleSet(rules=[Rule(left=r, op="gt", right=Operand(value=high))]),
        stop_loss_pct=stop_loss,
    )


def buy_and_hold() -> Genome:
    """Long from the first bar's close, never out: the benchmark a strategy must beat, through the same kernel."""
    return Genome(entry=RuleSet(rules=[Rule(left=Operand(price="close"), op="gt", right=Operand(value=0.0))]))


TEMPLATES: dict[str, Callable[..., Genome]] = {"ema-crossover": ema_cross, "rsi-reversion": rsi_reversion,
                                               "buy-and-hold": buy_and_hold}


def expand(template: str, parameters: Mapping[str, float]) -> Genome:
    """The genome a named template stands for, or a ValueError naming what is wrong."""
    try:
        factory = TEMPLATES[template]
    except KeyError:
        raise ValueError(f"unknown strategy template {template!r}: known are {', '.join(sorted(TEMPLATES))}") from None
    try:
        return factory(**parameters)
    except TypeError as e:
        raise ValueError(f"template {template}: {e}") from None
