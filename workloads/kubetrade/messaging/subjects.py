"""NATS subjects and JetStream streams.

Tokens that come from data (symbols, strategy names) are escaped so that a ``/``, a
``.`` or a ``:`` in a ccxt symbol cannot add subject levels: ``BTC/USDT:USDT`` becomes
``BTC_USDT_USDT``.

=====================================================  ================================
subject                                                 what
=====================================================  ================================
``md.<exchange>.<symbol>.candle.<timeframe>``           closed OHLCV candles
``md.<exchange>.<symbol>.ticker``                       latest ticker
``md.<exchange>.<symbol>.trades``                       public trades
``alt.<source>.<provider>.<topic>``                     alternative data points
``control.collector.<namespace>.<name>``                pause/resume a local collector (``stop``/``start``)
KV ``collector-health``, key ``<namespace>.<name>``     each collector's health (CollectorHealth)
``risk.check``                                          signal -> risk decision (request/reply)
``risk.policy.<namespace>.<name>``                      policy updates (also in KV ``risk-policies``)
``orders.<environment>.submit``                         approved orders to the executor
``orders.<environment>.cancel``                         cancel requests
``events.orders.<environment>.<strategy>``              order state changes and fills
``events.strategy.<strategy>.state``                    runner state for the operator
``events.strategy.<strategy>.rejected``                 signals the risk manager refused (RiskRejection)
``events.alerts.<severity>``                            platform alerts
``dlq.<original subject>``                              messages that could not be parsed
``status.<kind>.<namespace>.<name>``                    workload-reported status for the operator (core NATS)
``control.orders.<environment>.close-strategy``         operator -> executor: close a strategy (request/reply)
=====================================================  ================================
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

# JetStream streams: name -> subjects it captures.
STREAMS: dict[str, list[str]] = {
    # candles are the record (the sinks store them), tickers and trades a live view: apart, so that
    # each keeps as long as it is useful (MARKET_DATA first: it gave up md.> for MARKET_TICKS)
    "MARKET_DATA": ["md.*.*.candle.*"],
    "MARKET_TICKS": ["md.*.*.ticker", "md.*.*.trades"],
    "ALT_DATA": ["alt.>"],
    "ORDERS": ["orders.>"],
    # not events.orders.>: an order's events are notifications whose record is the database
    # (orders, fills, order_events); kept here they were a thousand stored messages a second
    # that nothing reads back, and 30 days of them without a size limit
    "EVENTS": ["events.alerts.>", "events.strategy.>", "events.exchange-errors.>"],
    "DLQ": ["dlq.>"],
}

RISK_CHECK = "risk.check"
RISK_POLICY_BUCKET = "risk-policies"
RISK_CONTROL = "control.risk"
"""Request/reply to the risk manager: ``{"action": "reset-breaker" | "metrics", ...}`` (outside every stream)."""


def token(value: str) -> str:
    """Make a data value safe as one subject token."""
    if not value:
        raise ValueError("empty subject token")
    return _UNSAFE.sub("_", value)


def candle(exchange: str, symbol: str, timeframe: str) -> str:
    return f"md.{token(exchange)}.{token(symbol)}.candle.{token(timeframe)}"


def ticker(exchange: str, symbol: str) -> str:
    return f"md.{token(exchange)}.{token(symbol)}.ticker"


def trades(exchange: str, symbol: str) -> str:
    return f"md.{token(exchange)}.{token(symbol)}.trades"


def alt(source: str, provider: str, topic: str) -> str:
    return f"alt.{token(source)}.{token(provider)}.{token(topic)}"


def risk_policy(namespace: str, name: str) -> str:
    return f"risk.policy.{token(namespace)}.{token(name)}"


def order_submit(environment: str) -> str:
    return f"orders.{token(environment)}.submit"


def order_cancel(environment: str) -> str:
    return f"orders.{token(environment)}.cancel"


def _token_or_wildcard(value: str) -> str:
    return value if value in ("*", ">") else token(value)


def exchange_errors(environment: str) -> str:
    """Order events that report an exchange error, published here as well as on the strategy's subject,
    so that whoever counts error bursts (the risk manager) does not receive the thousand ordinary
    events a second."""
    return f"events.exchange-errors.{_token_or_wildcard(environment)}"


def order_events(environment: str, strategy: str = "*") -> str:
    """Events of one strategy's orders; ``*`` (either part) or ``>`` (the last) subscribe to many."""
    if environment == ">":
        raise ValueError("'>' must be the last token: use order_events('*', '>')")
    return f"events.orders.{_token_or_wildcard(environment)}.{_token_or_wildcard(strategy)}"


def strategy_state(strategy: str) -> str:
    return f"events.strategy.{token(strategy)}.state"


def risk_rejected(strategy: str) -> str:
    """Signals the risk manager refused; ``*`` subscribes to every strategy's."""
    return f"events.strategy.{_token_or_wildcard(strategy)}.rejected"


def alerts(severity: str) -> str:
    return f"events.alerts.{token(severity)}"


def dead_letter(original: str) -> str:
    return f"dlq.{original}"


def status_report(kind: str, namespace: str = "*", name: str = "*") -> str:
    """Status a workload reports about its resource; wildcards subscribe to many."""
    parts = [token(kind.lower()) if kind not in ("*", ">") else kind]
    parts += [p if p in ("*", ">") else token(p) for p in (namespace, name)]
    return "status." + ".".join(parts)


STATUS_ALL = "status.>"


def close_strategy(environment: str) -> str:
    """Request/reply, deliberately outside every stream (a stream would answer with a PubAck)."""
    return f"control.orders.{token(environment)}.close-strategy"


COLLECTOR_HEALTH_BUCKET = "collector-health"
"""KV bucket: key ``<namespace>.<collector>`` -> CollectorHealth, read by the API and the risk manager."""


def collector_health_key(namespace: str, name: str) -> str:
    return f"{token(namespace)}.{token(name)}"


def collector_control(namespace: str, name: str) -> str:
    """Start/stop requests to a collector running outside Kubernetes (``kubetrade up``)."""
    return f"control.collector.{token(namespace)}.{token(name)}"


GOAL_SIZING_BUCKET = "goal-sizing"
"""KV bucket: key ``<namespace>.<goal>`` -> ``{"multiplier": float, "detail": str}``, the goal-oriented sizing
multiplier (Goal.status.sizingMultiplier) that the goal's strategy runners apply; absent means 1.0."""


def goal_sizing_key(namespace: str, goal: str) -> str:
    return f"{token(namespace)}.{token(goal)}"
