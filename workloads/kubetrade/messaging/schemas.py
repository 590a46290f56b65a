"""Message schemas carried over NATS.  Add new message types here, nowhere else.

Messages use the same conventions as the resources (camelCase on the wire, unknown
fields refused) so a producer's typo is caught by the first consumer, not by a trade.
Times are UTC milliseconds since the epoch, the exchanges' own convention.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from kubetrade.resources.base import ExchangeId, Model, Symbol, Timeframe

Millis = Annotated[int, Field(ge=0, le=253_402_300_799_999)]
"""UTC milliseconds, at most the end of year 9999 (a 400-digit integer is no time)."""
ClientOrderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,36}$")]
"""Client order id: at most 36 characters of [A-Za-z0-9_-], Binance's limit."""


class Candle(Model):
    """A closed OHLCV candle."""

    exchange: ExchangeId
    symbol: Symbol
    timeframe: Timeframe
    time: Millis
    """Open time of the candle."""
    open: Annotated[float, Field(strict=True, gt=0)]
    high: Annotated[float, Field(strict=True, gt=0)]
    low: Annotated[float, Field(strict=True, gt=0)]
    close: Annotated[float, Field(strict=True, gt=0)]
    volume: Annotated[float, Field(strict=True, ge=0)]

    def msg_id(self) -> str:
        """JetStream de-duplication id: one message per candle, however often it is sent."""
        return f"{self.exchange}:{self.symbol}:{self.timeframe}:{self.time}"


Side = Literal["buy", "sell"]


Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)]
"""A Strategy's name or namespace (Kubernetes names): bounded, so a message always fits NATS' payload limit."""


class BarExit(Model):
    """An exit decided on a closed bar whose stop or take-profit that bar reached: which bar, which levels.

    It carries no price.  A paper fill takes its price from the bar itself, as the paper venue
    received it on NATS, by the kernel's own rule (:func:`kubetrade.engine.stoprule.bar_fill`:
    the open if it gapped through a level, else the level the bar reached) - so the fill is
    where the backtest fills it, and never at a price the bar did not trade.
    """

    timeframe: Timeframe
    bar_time: Millis
    """Open time of the bar the exit was decided on."""
    stop: Annotated[float, Field(strict=True, gt=0)] | None = None
    """The position's stop level (fixed or trailed) on that bar."""
    target: Annotated[float, Field(strict=True, gt=0)] | None = None
    """The position's take-profit level."""


class Signal(Model):
    """A strategy's wish to change its position, sent to the risk manager for a decision."""

    strategy: Name
    namespace: Name = "default"
    client_order_id: ClientOrderId
    """Fixed when the signal is decided; follows the order to the exchange."""
    exchange: ExchangeId
    symbol: Symbol
    side: Side
    quantity: Annotated[float, Field(strict=True, gt=0)]
    """Requested quantity in the base asset."""
    price: Annotated[float, Field(strict=True, gt=0)]
    """Reference price the signal was computed at."""
    stop_price: Annotated[float, Field(strict=True, gt=0)] | None = None
    """Protective stop for the position this order opens."""
    reduce_only: bool = False
    """True when the order only reduces or closes a position."""
    time: Millis
    mode: Literal["paper", "live"] = "paper"
    order_type: Literal["market", "limit"] = "market"
    """From the Strategy's execution settings; a limit order rests at ``price``."""
    fee_rate: Annotated[float, Field(strict=True, ge=0, le=0.05)] | None = None
    """The Strategy's execution.feeRate (paper fills use it; default 0.001)."""
    slippage_bps: Annotated[float, Field(strict=True, ge=0, le=500)] | None = None
    """The Strategy's execution.slippageBps (paper fills use it; default 2)."""
    trailing_pct: Annotated[float, Field(strict=True, gt=0, le=1)] | None = None
    """Trail the position's stop at this distance (else the policy's stopLoss setting)."""
    bar_exit: BarExit | None = None
    """A reduce-only exit the kernel filled inside the bar (stop-loss, trailing stop, take-profit): the bar and
    the levels, from which a paper fill takes its price.  A live exchange never sees it."""
    dry_run: bool = False
    """Only ask what the risk manager would decide: nothing is reserved or submitted."""
    position: Annotated[float, Field(strict=True, allow_inf_nan=False)] | None = None
    """The signed position in ``symbol`` the sender believes it holds (a runner: from the fills it has
    booked), the basis of a reduce-only order.  A risk book whose last read of the ledger holds another
    position re-reads it before refusing or cutting the order (the fill may have landed since), and
    refuses with rule ``bookBehind`` (retry with the same id) when it cannot re-read it in time."""


# --- orders and risk ---------------------------------------------------------------------

Environment = Literal["paper", "live"]
OrderStatus = Literal["pending", "open", "partially_filled", "filled", "cancelled", "rejected", "expired"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"filled", "cancelled", "rejected", "expired"})


class RiskDecision(Model):
    """The risk manager's answer to a Signal: approved (maybe reduced, with why) or rejected (with the rule)."""

    client_order_id: ClientOrderId
    strategy: str
    approved: bool
    quantity: Annotated[float, Field(strict=True, ge=0)]
    """Approved quantity (0 when rejected); at most the requested quantity."""
    requested_quantity: Annotated[float, Field(strict=True, gt=0)]
    rule: str | None = None
    """The rule that rejected the signal, or that bound the reduced size."""
    reasons: list[str] = Field(default_factory=list)
    """Human-readable explanations: what was asked and what each binding limit allowed."""
    stop_price: Annotated[float, Field(strict=True, gt=0)] | None = None
    """The stop the position gets (the signal's, or the policy default)."""
    policy: str | None = None
    """namespace/name of the RiskPolicy applied."""
    policy_revision: int | None = None
    time: Millis


class OrderRequest(Model):
    """An approved order, published on ``orders.<environment>.submit`` with ``Nats-Msg-Id = clientOrderId``."""

    client_order_id: ClientOrderId
    strategy: str
    namespace: str = "default"
    environment: Environment
    exchange: ExchangeId
    symbol: Symbol
    side: Side
    type: Literal["market", "limit"] = "market"
    quantity: Annotated[float, Field(strict=True, gt=0)]
    price: Annotated[float, Field(strict=True, gt=0)]
    """Limit price, or the reference price of a market order."""
    stop_price: Annotated[float, Field(strict=True, gt=0)] | None = None
    trailing_pct: Annotated[float, Field(strict=True, gt=0, le=1)] | None = None
    reduce_only: bool = False
    bar_exit: BarExit | None = None
    """Paper only, reduce-only only: the bar and levels a paper fill takes its price from (see BarExit)."""
    fee_rate: Annotated[float, Field(strict=True, ge=0, le=0.05)] = 0.001
    slippage_bps: Annotated[float, Field(strict=True, ge=0, le=500)] = 2.0
    time: Millis
    """When the order was decided."""
    expires_at: Millis | None = None
    """An order not on the exchange by then is expired instead of submitted (a stale decision)."""


class CancelRequest(Model):
    """A request to cancel an order, on ``orders.<environment>.cancel``."""

    client_order_id: ClientOrderId
    environment: Environment
    time: Millis


class Fill(Model):
    """One execution of an order."""

    trade_id: str
    quantity: Annotated[float, Field(strict=True, gt=0)]
    price: Annotated[float, Field(strict=True, gt=0)]
    fee: Annotated[float, Field(strict=True, ge=0)] = 0.0
    fee_currency: str = "USDT"
    time: Millis


class OrderEvent(Model):
    """A change of an order's state, on ``events.orders.<environment>.<strategy>``."""

    client_order_id: ClientOrderId
    strategy: str
    namespace: str = "default"
    environment: Environment
    exchange: ExchangeId
    symbol: Symbol
    side: Side
    status: OrderStatus
    quantity: Annotated[float, Field(strict=True, gt=0)]
    filled_quantity: Annotated[float, Field(strict=True, ge=0)] = 0.0
    average_price: float | None = None
    fee: Annotated[float, Field(strict=True, ge=0)] = 0.0
    fill: Fill | None = None
    reason: str | None = None
    exchange_error: bool = False
    """True when the event reports an error from the exchange (counted by the error-burst breaker)."""
    time: Millis


class RiskRejection(Model):
    """A signal the risk manager refused, and why (``events.strategy.<strategy>.rejected``, kept by the
    EVENTS stream): no order row exists for it, so this is its only record."""

    client_order_id: ClientOrderId
    strategy: str
    namespace: str = "default"
    environment: Environment
    exchange: ExchangeId
    symbol: Symbol
    side: Side
    quantity: Annotated[float, Field(strict=True, gt=0)]
    """The quantity asked for."""
    price: Annotated[float, Field(strict=True, gt=0)]
    reduce_only: bool = False
    rule: str | None = None
    reasons: list[str] = Field(default_factory=list)
    policy: str | None = None
    time: Millis


class StatusReport(Model):
    """A workload's report about its resource, merged into the resource's status by the operator.

    ``status`` holds fields of the kind's status model (e.g. ``pnl``, ``sharpe`` for a
    Strategy; ``breaker`` for a RiskPolicy); the operator validates them against that model
    and ignores the fields it owns itself (phase, conditions, observedGeneration).
    """

    kind: Literal["Strategy", "Collector", "RiskPolicy", "Goal"]
    namespace: str
    name: str
    status: dict[str, object]
    time: Millis


class CloseStrategyRequest(Model):
    """Operator -> executor: cancel a strategy's open orders and close its positions."""

    strategy: str
    namespace: str = "default"


class CloseStrategyResult(Model):
    """Executor -> operator: what was done; ``ok`` false with a reason when it could not be."""

    ok: bool
    cancelled_orders: int = 0
    closed_positions: int = 0
    message: str = ""


# --- market and alternative data ---------------------------------------------------------


class Ticker(Model):
    """Latest ticker of a market, as a collector last saw it."""

    exchange: ExchangeId
    symbol: Symbol
    time: Millis
    last: Annotated[float, Field(strict=True, gt=0)]
    bid: Annotated[float, Field(strict=True, gt=0)] | None = None
    ask: Annotated[float, Field(strict=True, gt=0)] | None = None
    base_volume: Annotated[float, Field(strict=True, ge=0)] | None = None
    """24h volume in the base asset."""

    def msg_id(self) -> str:
        return f"{self.exchange}:{self.symbol}:ticker:{self.time}"


class PublicTrade(Model):
    """One public trade print of a market."""

    exchange: ExchangeId
    symbol: Symbol
    id: str
    time: Millis
    price: Annotated[float, Field(strict=True, gt=0)]
    amount: Annotated[float, Field(strict=True, gt=0)]
    side: Side | None = None

    def msg_id(self) -> str:
        return f"{self.exchange}:{self.symbol}:trade:{self.id}"


class AltPoint(Model):
    """One alternative-data observation, the same shape for every provider.

    ``topic`` is what was followed (a Glassnode metric, a subreddit, an index ticker, a
    watched address), ``metric`` what was measured about it (value, mentions, sentiment,
    close, usd); ``attrs`` keeps provider detail such as a transaction hash.
    """

    source: Literal["onchain", "social", "macro"]
    provider: str
    topic: str
    metric: str
    time: Millis
    value: float
    attrs: dict[str, str | float | int | bool] = Field(default_factory=dict)

    def msg_id(self) -> str:
        return f"{self.source}:{self.provider}:{self.topic}:{self.metric}:{self.time}"


class CollectorHealth(Model):
    """A collector's health, kept in the ``collector-health`` KV bucket under ``<namespace>.<name>``."""

    namespace: str
    name: str
    source: str
    provider: str
    phase: Literal["Pending", "Running", "Suspended", "Disabled", "Failed"]
    reason: str = ""
    """Why the phase is what it is, e.g. NoCredentials; never a secret."""
    last_sample_time: Millis | None = None
    lag_seconds: float | None = None
    samples_total: Annotated[int, Field(ge=0)] = 0
    error_count: Annotated[int, Field(ge=0)] = 0
    last_error: str | None = None
    time: Millis


class RiskControlRequest(Model):
    """To the risk manager on ``control.risk``: reset a tripped breaker, or report metrics."""

    action: Literal["reset-breaker", "metrics"]
    environment: Environment | None = None
    namespace: str | None = None
    policy: str | None = None


class PortfolioRisk(Model):
    """One portfolio's live risk figures (a RiskPolicy in one environment)."""

    environment: Environment
    namespace: str
    policy: str
    policy_revision: int | None = None
    equity: float
    peak_equity: float
    drawdown: float
    daily_pnl_pct: float
    gross_exposure: float
    open_positions: int
    var: float | None = None
    cvar: float | None = None
    breaker_open: bool
    breaker_reason: str | None = None
    kill_switch: bool = False
    violations: int = 0
    strategies: list[str] = Field(default_factory=list)


class RiskControlReply(Model):
    ok: bool
    message: str = ""
    portfolios: list[PortfolioRisk] = Field(default_factory=list)


AlertLabelName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class AlertEvent(Model):
    """An alert raised or resolved, on ``events.alerts.<severity>``.

    ``source`` rule: a user-defined condition (the evaluator publishes it after recording it).
    ``source`` platform: an event a workload raises (the risk manager's breaker trip); the API's
    alert dispatcher records it and hands it to Alertmanager, once per ``key``.
    """

    name: str
    severity: Literal["info", "warning", "critical"]
    status: Literal["firing", "resolved"]
    rule_id: str | None = None
    namespace: str | None = None
    target: str | None = None
    """Strategy or Goal name, or ``exchange:symbol`` for a price."""
    metric: str | None = None
    value: float | None = None
    message: str = ""
    time: Millis
    source: Literal["rule", "platform"] = "rule"
    alertname: Annotated[str, StringConstraints(pattern=r"^Kubetrade[A-Za-z0-9]{1,60}$")] | None = None
    """A platform event's Alertmanager alert name."""
    key: Annotated[str, StringConstraints(min_length=1, max_length=300)] | None = None
    """What the occurrence is about, unique per occurrence: a platform event raised twice is sent once."""
    labels: Annotated[dict[AlertLabelName, Annotated[str, StringConstraints(max_length=200)]],
                      Field(max_length=12)] = Field(default_factory=dict)
    """A platform event's identifying labels besides alertname and severity (bounded names and values)."""
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    expires_seconds: Annotated[int, Field(gt=0, le=7 * 86_400)] | None = None
    """An event that is news, not a state, resolves by itself this long after ``time``."""

    @model_validator(mode="after")
    def _platform_events_say_what(self) -> AlertEvent:
        if self.source == "platform" and (self.alertname is None or self.key is None):
            raise ValueError("a platform event needs alertname and key")
        if {"alertname", "severity"} & set(self.labels):
            raise ValueError("labels must not repeat alertname or severity")
        return self
