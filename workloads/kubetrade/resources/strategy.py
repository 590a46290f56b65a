"""The Strategy resource: one trading strategy and its runner."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from kubetrade.resources.base import (
    OPERATOR,
    SET,
    Condition,
    Distinct,
    ExchangeId,
    LocalObjectReference,
    Model,
    Money,
    Resource,
    SecretReference,
    Symbol,
    Timeframe,
    cel,
    conditions_field,
    defaulted,
)
from kubetrade.resources.genome import Genome

StrategyPhase = Literal["Pending", "Paper", "Live", "Paused", "Retired", "Failed"]
MODEL_URI = r"^((bundled|registry)://[A-Za-z0-9][A-Za-z0-9._-]*|file:///[^\x00]*|[^:\x00]+)$"
"""The model URIs the runner loads (:func:`kubetrade.prediction.model.resolve`): no network scheme."""
TemplateName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$")]


class ModelReference(Model):
    """An ONNX model the genome may use as a signal input: a price predictor or an RL policy."""

    uri: Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=MODEL_URI)]
    """Where the model is: bundled://NAME (in the image), file:///PATH (e.g. a mounted volume), a path, or
    registry://NAME (the model store in PostgreSQL that `kubetrade train` and the training Job write; needs sha256)."""
    sha256: Annotated[str, StringConstraints(pattern=r"^[a-f0-9]{64}$")] | None = None
    """Expected SHA-256 of the model file; the runner refuses a file that does not match."""
    features: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$")] | None = None
    """The feature set the Strategy feeds the model (bars-v1, returns-16); a model trained on others is refused."""


class ExecutionSettings(Model):
    """How orders are placed and what they are assumed to cost (also used by paper fills)."""

    order_type: Literal["market", "limit"] = "market"
    """Order type for entries and exits."""
    fee_rate: Annotated[float, Field(ge=0, le=0.05)] = 0.001
    """Fee per side as a fraction of notional (0.001 = 0.1 %)."""
    slippage_bps: Annotated[float, Field(ge=0, le=500)] = 2.0
    """Assumed slippage in basis points, applied against the order's side."""


class StrategySpec(Model):
    """What the strategy trades, how, with how much, and under which limits."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "has(self.genome) != has(self.template)",
                    "exactly one of genome or template must be set",
                ),
                cel(
                    "self.mode != 'live' || has(self.credentialsSecretRef)",
                    "mode live needs credentialsSecretRef (exchange keys in a Secret)",
                ),
            ]
        }
    }

    genome: Genome | None = None
    """An evolved or hand-written rule-based strategy (exclusive with template)."""
    template: TemplateName | None = None
    """A named built-in strategy template, e.g. ema-crossover (exclusive with genome)."""
    parameters: dict[str, float] = Field(default_factory=dict)
    """Parameters of the template, e.g. {fast: 12, slow: 26}."""
    model: ModelReference | None = None
    """Optional ONNX price-prediction model: the genome's `prediction` indicator."""
    policy: ModelReference | None = None
    """Optional ONNX reinforcement-learning policy: the genome's `policy` indicator (its target position)."""
    exchange: ExchangeId = "binance"
    """ccxt exchange id the strategy trades on."""
    market: Literal["spot", "perpetual"] = "spot"
    """spot: long/flat; perpetual: long/short on USDT-margined perpetual futures."""
    symbols: Annotated[list[Symbol], Field(min_length=1, max_length=50, json_schema_extra=SET), Distinct]
    """Markets traded, as ccxt unified symbols (BTC/USDT, BTC/USDT:USDT)."""
    timeframe: Timeframe = "5m"
    """Candle timeframe the signals are computed on."""
    mode: Literal["paper", "live"] = "paper"
    """paper: simulated fills against live market data; live: real orders on the exchange."""
    capital: Money
    """Capital allocated to this strategy; its ledger never spends more."""
    risk_policy_ref: LocalObjectReference
    """The RiskPolicy whose limits apply."""
    goal_ref: LocalObjectReference | None = None
    """The Goal whose sizing multiplier applies, if any."""
    credentials_secret_ref: SecretReference | None = None
    """Exchange API keys, by Secret reference; required for live, mounted only for live."""
    execution: ExecutionSettings = defaulted(ExecutionSettings)
    """Order type and cost assumptions."""
    paused: bool = False
    """Stop opening positions; open positions keep their stops."""
    retired: bool = False
    """Retired: the runner is removed and no position is opened; the resource stays for the record."""
    warmup_bars: Annotated[int, Field(ge=0, le=100_000)] = 500
    """Candles loaded from history before the first live signal."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.genome is None) == (self.template is None):
            raise ValueError("exactly one of genome or template must be set")
        if self.mode == "live" and self.credentials_secret_ref is None:
            raise ValueError("mode live needs credentialsSecretRef (exchange keys in a Secret)")
        return self


class PerformanceSummary(Model):
    """Performance figures of a backtest or of trading so far."""

    pnl: float | None = None
    """Profit and loss in the capital's currency."""
    return_pct: float | None = None
    """Return on allocated capital, as a fraction."""
    sharpe: float | None = None
    """Annualised Sharpe ratio."""
    sortino: float | None = None
    """Annualised Sortino ratio."""
    max_drawdown: float | None = None
    """Maximum drawdown from the equity peak, as a fraction."""
    win_rate: float | None = None
    """Fraction of closed trades that made money."""
    trades: Annotated[int, Field(ge=0)] | None = None
    """Number of closed trades."""
    deflated_sharpe: float | None = None
    """Probability that the Sharpe ratio is real after the number of trials (backtest only)."""


class WindowEvidence(Model):
    """One out-of-sample window a strategy was scored on (after costs, every pair together)."""

    index: Annotated[int, Field(ge=0)]
    """Window number, 0 = the oldest."""
    start: datetime
    """First bar of the window."""
    end: datetime
    """End of the window's last bar."""
    return_pct: float
    """Return over the window, as a fraction (pairs in equal parts)."""
    sharpe: float
    """Annualised Sharpe ratio over the window."""
    trades: Annotated[int, Field(ge=0)]
    """Closed trades in the window."""
    benchmark_return_pct: float
    """The benchmark's return over the same window."""


class SelectionEvidence(Model):
    """The out-of-sample record a strategy was selected on, and the gates' verdict on it."""

    windows: Annotated[list[WindowEvidence], Field(max_length=20)] = Field(default_factory=list)
    """Every out-of-sample window it was scored on."""
    positive_windows: Annotated[int, Field(ge=0)] = 0
    """Windows with a positive return after costs."""
    oos_return_pct: float = 0.0
    """Out-of-sample return, compounded over its windows."""
    sharpe: float = 0.0
    """Annualised Sharpe ratio of its out-of-sample returns pooled."""
    max_drawdown: float = 0.0
    """Largest drawdown within one window."""
    trades: Annotated[int, Field(ge=0)] = 0
    """Closed out-of-sample trades."""
    deflated_sharpe: float = 0.0
    """Probability that its pooled out-of-sample Sharpe ratio beats the best of ``trials`` unskilled tries."""
    luck_sharpe: float = 0.0
    """The annualised Sharpe ratio the best of ``trials`` unskilled tries reaches by luck (the DSR's bar)."""
    trials: Annotated[int, Field(ge=0)] = 0
    """Trials of the run: distinct genomes its searches tried, plus every PPO checkpoint evaluated."""
    pbo: float | None = None
    """Probability of backtest overfitting of the search that chose it (CSCV; for a policy, over its window's
    PPO checkpoints)."""
    benchmark: Literal["cash", "buyAndHold"] = "cash"
    """What it was compared with."""
    benchmark_return_pct: float = 0.0
    """The benchmark's return compounded over the same windows."""
    chosen_in_window: Annotated[int, Field(ge=0)] = 0
    """The window whose search chose it (it was scored on that window and every later one)."""
    source: Literal["genomes", "rl"] = "genomes"
    """What found it: the genetic search (genomes) or PPO trained on that window's in-sample bars (rl)."""
    passed: bool = False
    """Whether it passed every gate."""
    failures: Annotated[list[str], Field(max_length=20)] = Field(default_factory=list)
    """The gates it failed, with the figures."""


class PeriodResult(Model):
    """What one way of trading a period made of it."""

    trades: Annotated[int, Field(ge=0)] = 0
    """Closed trades."""
    return_pct: float = 0.0
    """Return over the period, as a fraction."""
    sharpe: float | None = None
    """Annualised Sharpe ratio (None before two bars)."""
    max_drawdown: float = 0.0
    """Largest drawdown within the period, as a fraction."""


class PaperCheck(Model):
    """Paper trading against a backtest of the same bars, stepped by the runner on the same kernel."""

    since: datetime
    """First bar both cover (the runner's first bar with nothing held; later after a restart)."""
    bars: Annotated[int, Field(ge=0)] = 0
    """Bars covered."""
    paper: PeriodResult = defaulted(PeriodResult)
    """What the paper book (the executor's fills) made of them."""
    backtest: PeriodResult = defaulted(PeriodResult)
    """What the backtester made of the same bars, from the same capital."""
    matched_trades: Annotated[int, Field(ge=0)] = 0
    """Paper trades with the backtest's entry bar, exit bar and side."""


class StrategyStatus(Model):
    """What the operator and the runner observe about the strategy."""

    phase: Annotated[StrategyPhase, OPERATOR] = "Pending"
    """Pending, Paper, Live, Paused, Retired or Failed."""
    observed_generation: Annotated[int | None, Field(ge=0), OPERATOR] = None
    """The .metadata.generation this status reflects."""
    runner: Annotated[str | None, OPERATOR] = None
    """Name of the runner workload."""
    equity: float | None = None
    """Current equity of the strategy's ledger."""
    pnl: float | None = None
    """Realised plus unrealised profit and loss."""
    sharpe: float | None = None
    """Annualised Sharpe ratio of live or paper trading so far."""
    drawdown: float | None = None
    """Current drawdown from the equity peak, as a fraction."""
    max_drawdown: float | None = None
    """Maximum drawdown so far, as a fraction."""
    trades: Annotated[int, Field(ge=0)] | None = None
    """Closed trades so far."""
    open_positions: Annotated[int, Field(ge=0)] | None = None
    """Positions currently open."""
    last_signal_time: datetime | None = None
    """Time of the last signal the runner computed."""
    paper_since: Annotated[datetime | None, OPERATOR] = None
    """When paper trading started."""
    live_since: Annotated[datetime | None, OPERATOR] = None
    """When the strategy was promoted to live."""
    backtest: PerformanceSummary | None = None
    """Backtest results the strategy was selected on."""
    evidence: SelectionEvidence | None = None
    """Out-of-sample evidence (walk-forward windows, deflated Sharpe, PBO, benchmark) and the gates' verdict."""
    paper_check: PaperCheck | None = None
    """Paper trading against a backtest of the same bars (what the review's live gate compares)."""
    message: Annotated[str | None, OPERATOR] = None
    """A short explanation of the current phase."""
    conditions: Annotated[list[Condition], OPERATOR] = conditions_field()
    """Ready, Progressing, Degraded and RunnerReady conditions.  RunnerReady says what the runner's pods say
    while it is not available: Starting, or why it cannot run (ImageNotFound, SecretMissing, ConfigMissing,
    CrashLoop, OOMKilled, Unschedulable, ContainerError), with the message to act on."""


class Strategy(Resource):
    """A trading strategy: its logic, markets, mode, capital and limits."""

    kind_name: ClassVar[str] = "Strategy"
    plural: ClassVar[str] = "strategies"
    singular: ClassVar[str] = "strategy"
    short_names: ClassVar[tuple[str, ...]] = ("strat", "strats")
    spec_model: ClassVar[type[Model]] = StrategySpec
    status_model: ClassVar[type[Model]] = StrategyStatus
    printer_columns: ClassVar[tuple[dict[str, Any], ...]] = (
        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Symbol", "type": "string", "jsonPath": ".spec.symbols[0]", "priority": 1},
        {"name": "TF", "type": "string", "jsonPath": ".spec.timeframe", "priority": 1},
        {"name": "PnL", "type": "number", "jsonPath": ".status.pnl"},
        {"name": "Sharpe", "type": "number", "jsonPath": ".status.sharpe"},
        {"name": "Drawdown", "type": "number", "jsonPath": ".status.drawdown"},
        {"name": "Trades", "type": "integer", "jsonPath": ".status.trades"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    )

    kind: Literal["Strategy"] = "Strategy"
    spec: StrategySpec
    status: StrategyStatus | None = None
