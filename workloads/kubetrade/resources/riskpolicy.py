"""The RiskPolicy resource: hard limits the risk manager enforces on every signal.

Defaults are the seed's: max position 20 % of allocated capital, max risk per trade
5 % (from the stop distance), max portfolio drawdown 15 % from the equity peak.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from kubetrade.resources.base import (
    OPERATOR,
    Condition,
    Fraction,
    Model,
    PositiveFraction,
    Resource,
    cel,
    conditions_field,
    defaulted,
)


class StrategyLimits(Model):
    """Limits on each strategy's orders."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    # has(): the CRD's own default ({}) is checked before its fields' defaults are filled in
                    "!has(self.maxRiskPerTradePct) || !has(self.maxPositionPct)"
                    " || self.maxRiskPerTradePct <= self.maxPositionPct",
                    "maxRiskPerTradePct must not exceed maxPositionPct (a trade cannot lose more than its position)",
                ),
            ]
        }
    }

    max_position_pct: PositiveFraction = 0.20
    """Largest position, as a fraction of the strategy's allocated capital."""
    max_risk_per_trade_pct: PositiveFraction = 0.05
    """Largest loss if the stop is hit (size x stop distance), as a fraction of allocated capital."""
    max_leverage: Annotated[float, Field(ge=1, le=20)] = 1.0
    """Largest gross exposure relative to allocated capital (perpetuals)."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.max_risk_per_trade_pct > self.max_position_pct:
            raise ValueError(
                f"maxRiskPerTradePct ({self.max_risk_per_trade_pct:g}) must not exceed maxPositionPct "
                f"({self.max_position_pct:g}) (a trade cannot lose more than its position)"
            )
        return self


class PortfolioLimits(Model):
    """Limits across every strategy the policy covers."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "!has(self.cvarLimitPct) || !has(self.varLimitPct) || self.cvarLimitPct >= self.varLimitPct",
                    "cvarLimitPct must not be below varLimitPct (CVaR is never smaller than VaR)",
                ),
            ]
        }
    }

    max_drawdown_pct: PositiveFraction = 0.15
    """Drawdown from the equity peak that trips the circuit breaker."""
    daily_loss_limit_pct: PositiveFraction = 0.05
    """Loss since 00:00 UTC, as a fraction of the day's opening equity, that blocks new entries."""
    max_open_positions: Annotated[int, Field(ge=1, le=1000)] = 10
    """Most positions open at once across the portfolio."""
    max_symbol_exposure_pct: PositiveFraction = 0.30
    """Largest exposure to one symbol, as a fraction of portfolio equity."""
    max_gross_exposure_pct: Annotated[float, Field(gt=0, le=20)] = 1.0
    """Largest sum of absolute position values, as a fraction of portfolio equity."""
    max_correlation: Fraction = 0.80
    """A new position whose returns correlate above this with an open position of the same side is refused."""
    correlation_lookback_bars: Annotated[int, Field(ge=10, le=10_000)] = 288
    """Bars of returns the correlation is measured over."""
    var_confidence: Annotated[float, Field(ge=0.5, lt=1.0)] = 0.95
    """Confidence level of VaR and CVaR."""
    var_method: Literal["historical", "parametric"] = "historical"
    """Historical simulation or the parametric (variance-covariance) method."""
    var_limit_pct: PositiveFraction = 0.05
    """Largest one-day VaR of the portfolio after the trade, as a fraction of equity."""
    cvar_limit_pct: PositiveFraction = 0.08
    """Largest one-day CVaR (expected shortfall) after the trade, as a fraction of equity."""
    var_lookback_days: Annotated[int, Field(ge=5, le=1000)] = 90
    """Days of history VaR and CVaR are estimated from."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.cvar_limit_pct < self.var_limit_pct:
            raise ValueError(
                f"cvarLimitPct ({self.cvar_limit_pct:g}) must not be below varLimitPct ({self.var_limit_pct:g}) "
                "(CVaR is never smaller than VaR)"
            )
        return self


class StopLossSettings(Model):
    """Stops the stop-loss manager puts on every position, unless the strategy sets its own."""

    default_stop_pct: PositiveFraction = 0.02
    """Stop distance from the entry price when the strategy gives none."""
    trailing: bool = False
    """Trail the stop behind the best price since entry."""
    trailing_pct: PositiveFraction | None = None
    """Trailing distance; defaults to defaultStopPct."""
    enforce_without_runner: bool = True
    """The risk manager closes positions at their stop even when the strategy's runner is down."""


class CircuitBreakerSettings(Model):
    """System-level triggers that stop all new entries."""

    kill_switch: bool = False
    """Manual kill switch: when true, no new position is opened; stops stay active."""
    stale_data_seconds: Annotated[int, Field(ge=1, le=86_400)] = 180
    """Market data older than this trips the breaker for the affected symbol."""
    price_anomaly_pct: PositiveFraction = 0.15
    """A single-candle move larger than this is treated as an anomaly."""
    exchange_error_burst: Annotated[int, Field(ge=1, le=10_000)] = 10
    """Exchange errors within errorWindowSeconds that trip the breaker."""
    error_window_seconds: Annotated[int, Field(ge=1, le=86_400)] = 60
    """Window over which exchange errors are counted."""
    cooldown_seconds: Annotated[int, Field(ge=0, le=604_800)] = 3600
    """How long a tripped breaker stays open before it may close again (drawdown trips need a manual reset)."""


class RiskPolicySpec(Model):
    """Risk limits at strategy, portfolio and system level."""

    strategy_limits: StrategyLimits = defaulted(StrategyLimits)
    """Per-strategy limits."""
    portfolio_limits: PortfolioLimits = defaulted(PortfolioLimits)
    """Portfolio-wide limits."""
    stop_loss: StopLossSettings = defaulted(StopLossSettings)
    """Default stops."""
    circuit_breaker: CircuitBreakerSettings = defaulted(CircuitBreakerSettings)
    """System-level circuit breaker."""


class BreakerState(Model):
    """State of the circuit breaker."""

    state: Literal["Closed", "Open"] = "Closed"
    """Closed: trading allowed; Open: tripped, no new entries."""
    reason: str | None = None
    """Which trigger tripped it."""
    since: datetime | None = None
    """When it last changed."""


class Violation(Model):
    """A signal the policy refused or reduced."""

    rule: str
    """The rule, e.g. maxPositionPct."""
    strategy: str | None = None
    """The strategy whose signal broke it."""
    message: str = ""
    """What was asked and what the limit allowed."""
    time: datetime
    """When it happened."""


class RiskPolicyStatus(Model):
    """What the risk manager reports for this policy."""

    observed_generation: Annotated[int | None, Field(ge=0), OPERATOR] = None
    """The .metadata.generation published to the risk manager."""
    published_revision: Annotated[int | None, Field(ge=0), OPERATOR] = None
    """Revision of the policy in the risk manager's key-value store."""
    equity: float | None = None
    """Equity of the strategies under this policy."""
    peak_equity: float | None = None
    """Highest equity seen."""
    current_drawdown: float | None = None
    """Drawdown from the peak, as a fraction."""
    breaker: BreakerState | None = None
    """Circuit-breaker state."""
    violations: Annotated[int, Field(ge=0)] | None = None
    """Number of refused or reduced signals."""
    last_violation: Violation | None = None
    """The most recent one."""
    conditions: Annotated[list[Condition], OPERATOR] = conditions_field()
    """Ready and Degraded conditions."""


class RiskPolicy(Resource):
    """Hard risk limits, enforced on every signal of the strategies that reference the policy."""

    kind_name: ClassVar[str] = "RiskPolicy"
    plural: ClassVar[str] = "riskpolicies"
    singular: ClassVar[str] = "riskpolicy"
    short_names: ClassVar[tuple[str, ...]] = ("rp", "risk")
    spec_model: ClassVar[type[Model]] = RiskPolicySpec
    status_model: ClassVar[type[Model]] = RiskPolicyStatus
    printer_columns: ClassVar[tuple[dict[str, Any], ...]] = (
        {"name": "MaxDD", "type": "number", "jsonPath": ".spec.portfolioLimits.maxDrawdownPct"},
        {"name": "Drawdown", "type": "number", "jsonPath": ".status.currentDrawdown"},
        {"name": "Breaker", "type": "string", "jsonPath": ".status.breaker.state"},
        {"name": "Violations", "type": "integer", "jsonPath": ".status.violations"},
        {"name": "Kill", "type": "boolean", "jsonPath": ".spec.circuitBreaker.killSwitch", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    )

    kind: Literal["RiskPolicy"] = "RiskPolicy"
    spec: RiskPolicySpec = Field(default_factory=RiskPolicySpec)
    status: RiskPolicyStatus | None = None
