"""Message schemas carried over NATS.  Add new message types here, nowhere else.

Messages use the same conventions as the resources (camelCase on the wire, unknown
fields refused) so a producer's typo is caught by the first consumer, not by a trade.
Times are UTC milliseconds since the epoch, the exchanges' own convention.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from kubetrade.resources.base import ExchangeId, Model, Symbol, Timeframe

Millis = Annotated[int, Field(ge=0)]
ClientOrderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,36}$")]
"""Client order id: at most 36 characters of [A-Za-z0-9_-], Binance's limit."""


class Candle(Model):
    """A closed OHLCV candle."""

    exchange: ExchangeId
    symbol: Symbol
    timeframe: Timeframe
    time: Millis
    """Open time of the candle."""
    open: Annotated[float, Field(gt=0)]
    high: Annotated[float, Field(gt=0)]
    low: Annotated[float, Field(gt=0)]
    close: Annotated[float, Field(gt=0)]
    volume: Annotated[float, Field(ge=0)]

    def msg_id(self) -> str:
        """JetStream de-duplication id: one message per candle, however often it is sent."""
        return f"{self.exchange}:{self.symbol}:{self.timeframe}:{self.time}"


Side = Literal["buy", "sell"]


class Signal(Model):
    """A strategy's wish to change its position, sent to the risk manager for a decision."""

    strategy: str
    namespace: str = "default"
    client_order_id: ClientOrderId
    """Fixed when the signal is decided; follows the order to the exchange."""
    exchange: ExchangeId
    symbol: Symbol
    side: Side
    quantity: Annotated[float, Field(gt=0)]
    """Requested quantity in the base asset."""
    price: Annotated[float, Field(gt=0)]
    """Reference price the signal was computed at."""
    stop_price: Annotated[float, Field(gt=0)] | None = None
    """Protective stop for the position this order opens."""
    reduce_only: bool = False
    """True when the order only reduces or closes a position."""
    time: Millis
    mode: Literal["paper", "live"] = "paper"


# --- orders and risk (issue 5) ---------------------------------------------------------------

Environment = Literal["paper", "live"]
OrderStatus = Literal["pending", "open", "partially_filled", "filled", "cancelled", "rejected", "expired"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"filled", "cancelled", "rejected", "expired"})


class RiskDecision(Model):
    """The risk manager's answer to a Signal: approved (maybe reduced, with why) or rejected (with the rule)."""

    client_order_id: ClientOrderId
    strategy: str
    approved: bool
    quantity: Annotated[float, Field(ge=0)]
    """Approved quantity (0 when rejected); at most the requested quantity."""
    requested_quantity: Annotated[float, Field(gt=0)]
    rule: str | None = None
    """The rule that rejected the signal, or that bound the reduced size."""
    reasons: list[str] = Field(default_factory=list)
    """Human-readable explanations: what was asked and what each binding limit allowed."""
    stop_price: Annotated[float, Field(gt=0)] | None = None
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
    quantity: Annotated[float, Field(gt=0)]
    price: Annotated[float, Field(gt=0)]
    """Limit price, or the reference price of a market order."""
    stop_price: Annotated[float, Field(gt=0)] | None = None
    trailing_pct: Annotated[float, Field(gt=0, le=1)] | None = None
    reduce_only: bool = False
    fee_rate: Annotated[float, Field(ge=0, le=0.05)] = 0.001
    slippage_bps: Annotated[float, Field(ge=0, le=500)] = 2.0
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
    quantity: Annotated[float, Field(gt=0)]
    price: Annotated[float, Field(gt=0)]
    fee: Annotated[float, Field(ge=0)] = 0.0
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
    quantity: Annotated[float, Field(gt=0)]
    filled_quantity: Annotated[float, Field(ge=0)] = 0.0
    average_price: float | None = None
    fee: Annotated[float, Field(ge=0)] = 0.0
    fill: Fill | None = None
    reason: str | None = None
    exchange_error: bool = False
    """True when the event reports an error from the exchange (counted by the error-burst breaker)."""
    time: Millis
