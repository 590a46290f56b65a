"""The strategy genome: a readable, serialisable rule-based trading strategy.

A genome is plain data.  It lives in a Strategy resource's ``spec.genome``, is produced
by the evolution, and is compiled by :mod:`kubetrade.engine` into the backtest kernel
and, unchanged, into the live signal function of the strategy runner.  Which indicators
exist and which parameters they take is checked when the genome is compiled (custom
indicators can be registered at run time); the schema here checks the shape.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from kubetrade.resources.base import Model, PositiveFraction, cel

IndicatorName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
PriceField = Literal["open", "high", "low", "close", "volume"]
Comparison = Literal["gt", "lt", "ge", "le", "crossesAbove", "crossesBelow"]


class AltSeriesRef(Model):
    """An alternative-data series the collectors store: on-chain, social or macro (``alt_points``)."""

    provider: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]{1,31}$")]
    """The collector's provider: glassnode, moralis, reddit, twitter, lunarcrush, stooq, yahoo."""
    topic: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    """What was followed: an asset (BTC), a subreddit, a search, an index ticker (^VIX), a wallet."""
    metric: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    """What was measured: mvrv, nvt, posts, active_users, mentions, sentiment, close, ..."""

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.topic}/{self.metric}"


class Operand(Model):
    """One side of a comparison: an indicator output, a price field, an alternative-data series or a constant.

    Exactly one of ``indicator``, ``price``, ``alt`` or ``value`` is set.
    """

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "[has(self.indicator), has(self.price), has(self.alt), has(self.value)]"
                    ".filter(x, x).size() == 1",
                    "exactly one of indicator, price, alt or value must be set",
                )
            ]
        }
    }

    indicator: IndicatorName | None = None
    """Indicator name, e.g. ema, rsi, macd, bbands, atr, stoch, obv, vwap."""
    params: dict[str, float] = Field(default_factory=dict)
    """Indicator parameters, e.g. {period: 14}."""
    output: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")] | None = None
    """Which output of a multi-output indicator, e.g. signal (macd) or upper (bbands)."""
    price: PriceField | None = None
    """A raw price field of the candle."""
    alt: AltSeriesRef | None = None
    """An alternative-data series, as it was known at each bar's close (its last value by then)."""
    value: float | None = None
    """A constant."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        chosen = [n for n in ("indicator", "price", "alt", "value") if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise ValueError(f"exactly one of indicator, price, alt or value must be set, got {chosen or 'none'}")
        if self.indicator is None and (self.params or self.output):
            raise ValueError("params and output only apply to an indicator operand")
        return self


class Rule(Model):
    """A comparison between two operands, evaluated on every closed candle."""

    left: Operand
    """Left-hand operand."""
    op: Comparison
    """gt, lt, ge, le, or crossesAbove / crossesBelow (left crosses right on this bar)."""
    right: Operand
    """Right-hand operand."""


class RuleSet(Model):
    """Rules combined with all (and) or any (or)."""

    combine: Literal["all", "any"] = "all"
    """all: every rule must hold; any: one is enough."""
    rules: Annotated[list[Rule], Field(min_length=1, max_length=8)]
    """The rules, one to eight."""


class Genome(Model):
    """A rule-based strategy: when to enter, when to leave, and how much risk to take."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "self.direction == 'long' || has(self.shortEntry)",
                    "direction short or both needs shortEntry",
                ),
                cel(
                    "!has(self.trailingStopPct) || !has(self.takeProfitPct) "
                    "|| self.trailingStopPct < self.takeProfitPct",
                    "trailingStopPct must be smaller than takeProfitPct",
                ),
            ]
        }
    }

    direction: Literal["long", "short", "both"] = "long"
    """long: long/flat (spot); short: short/flat; both: long/short (perpetuals)."""
    entry: RuleSet
    """Conditions to open a long position (direction long or both)."""
    exit: RuleSet | None = None
    """Conditions to close a long position; without it only stops close it."""
    short_entry: RuleSet | None = None
    """Conditions to open a short position (direction short or both)."""
    short_exit: RuleSet | None = None
    """Conditions to close a short position."""
    stop_loss_pct: PositiveFraction | None = None
    """Stop-loss distance from the entry price, as a fraction (0.02 = 2 %)."""
    take_profit_pct: Annotated[float, Field(gt=0, le=10)] | None = None
    """Take-profit distance from the entry price, as a fraction."""
    trailing_stop_pct: PositiveFraction | None = None
    """Trailing-stop distance from the best price since entry, as a fraction."""
    position_pct: PositiveFraction = 1.0
    """Fraction of the strategy's capital a position uses, before risk and goal sizing."""

    @model_validator(mode="after")
    def _sides(self) -> Self:
        if self.direction in ("short", "both") and self.short_entry is None:
            raise ValueError(f"direction {self.direction} needs shortEntry")
        if (
            self.trailing_stop_pct is not None
            and self.take_profit_pct is not None
            and self.trailing_stop_pct >= self.take_profit_pct
        ):
            raise ValueError("trailingStopPct must be smaller than takeProfitPct")
        return self
