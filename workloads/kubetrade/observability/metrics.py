"""Shared Prometheus metrics of the trading pipeline, and the metrics endpoint of every role.

Naming convention (see docs/metrics.md): every name starts with ``kubetrade_``, ends in
its unit (``_seconds``, ``_ratio``, ``_timestamp_seconds``; money in the quote currency
named by the ``currency`` label) and counters end in ``_total``.  Labels identify a
bounded thing - an environment, a namespace, a resource the user created, a rule from a
fixed list, a state - and never carry a secret, a URL, an error text, an order id or a
price.

Why one shared module: the same series (orders by state, risk decisions by rule) are
counted where they happen, in modules owned by different people; defining them once keeps
names and labels consistent, and the dashboards and alert rules are tested against this
registry.  Metrics that belong to one module (the collector's, the operator's
reconciles) stay in that module.

The per-resource gauges (equity, PnL, drawdown, goal progress, breaker state) are exported
by the operator from the status it merges for every resource (:func:`export_status`): it
is the one long-running process that sees all of them, so the gauges neither vanish with a
runner pod nor double when a runner restarts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase

from kubetrade import settings

log = logging.getLogger("kubetrade.observability.metrics")

M = TypeVar("M", bound=MetricWrapperBase)


_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def labelled(metric: M, *values: str) -> M:
    """``metric.labels(*values)``, remembered.  The order path counts every message, and
    ``labels()`` takes a lock and re-validates its arguments on each call.  For counters and
    histograms only: a series removed later (:func:`forget`, gauges) would not come back."""
    key = (id(metric), values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def _metric(cls: type[M], name: str, documentation: str, labels: Sequence[str] = (), **kwargs: Any) -> M:
    """Create a metric, or return the one already registered under that name.

    Another module may have defined the same series first (metrics are being added in
    parallel); reusing it keeps one time series instead of failing the import.
    """
    existing = REGISTRY._names_to_collectors.get(name)
    if existing is None and cls is Counter:
        existing = REGISTRY._names_to_collectors.get(name.removesuffix("_total"))
    if existing is not None:
        if not isinstance(existing, cls):
            raise TypeError(f"metric {name} is already registered as {type(existing).__name__}, not {cls.__name__}")
        return existing
    return cls(name, documentation, list(labels), **kwargs)


# --- identity -------------------------------------------------------------------------------

BUILD_INFO = _metric(Gauge, "kubetrade_build_info", "1 for each running kubetrade process, by version and role.",
                     ["version", "role"])

# --- signals, risk, orders ------------------------------------------------------------------

SIGNALS = _metric(Counter, "kubetrade_signals_total", "Trading signals emitted by strategy runners.",
                  ["environment", "namespace", "strategy", "side"])
RISK_DECISIONS = _metric(
    Counter, "kubetrade_risk_decisions_total",
    "Risk manager decisions on signals; rule is the rule that refused or reduced the signal, 'none' if approved.",
    ["environment", "decision", "rule"],
)
ORDERS = _metric(Counter, "kubetrade_orders_total", "Order state changes seen by the executor, by the new state.",
                 ["environment", "state"])
FILLS = _metric(Counter, "kubetrade_fills_total", "Fills booked by the executor.",
                ["environment", "namespace", "strategy"])
FEES = _metric(Counter, "kubetrade_fees_total", "Fees paid on fills, in the quote currency named by `currency`.",
               ["environment", "namespace", "strategy", "currency"])

RISK_REFRESH_SECONDS = _metric(
    Histogram, "kubetrade_risk_refresh_seconds",
    "Wall time of one refresh of the risk manager's book and stops from PostgreSQL (paced: tens of milliseconds).",
    [], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
RISK_LAST_REFRESH = _metric(
    Gauge, "kubetrade_risk_last_refresh_timestamp_seconds",
    "When the risk manager last refreshed its book from PostgreSQL (Unix time); decisions in between use that state.",
    [],
)

POSITION_LIMIT_RULES = ("maxPositionPct", "maxSymbolExposurePct", "maxGrossExposurePct", "maxOpenPositions")


def initialize_risk_decisions(environments: Sequence[str] = ("paper", "live")) -> None:
    """Create the limit-breach series at zero before the first decision.

    A counter series that appears already at 1 has no increase in Prometheus' eyes, so the
    first breach of a limit would never alert; series that exist from the start do.
    """
    for env in environments:
        for decision in ("reduced", "rejected"):
            for rule in POSITION_LIMIT_RULES:
                RISK_DECISIONS.labels(env, decision, rule)


# --- per-resource state (exported by the operator from resource status) ---------------------

STRATEGY_LABELS = ("namespace", "strategy", "mode")
STRATEGY_EQUITY = _metric(Gauge, "kubetrade_strategy_equity", "Equity of a strategy's ledger (quote currency).",
                          STRATEGY_LABELS)
STRATEGY_PNL = _metric(Gauge, "kubetrade_strategy_pnl", "Realised plus unrealised PnL of a strategy (quote currency).",
                       STRATEGY_LABELS)
STRATEGY_DRAWDOWN = _metric(Gauge, "kubetrade_strategy_drawdown_ratio",
                            "Current drawdown of a strategy from its equity peak (0..1).", STRATEGY_LABELS)
STRATEGY_SHARPE = _metric(Gauge, "kubetrade_strategy_sharpe", "Annualised Sharpe ratio of a strategy.",
                          STRATEGY_LABELS)
STRATEGY_TRADES = _metric(Gauge, "kubetrade_strategy_trades", "Trades a strategy has closed.", STRATEGY_LABELS)
STRATEGY_OPEN_POSITIONS = _metric(Gauge, "kubetrade_strategy_open_positions", "Open positions of a strategy.",
                                  STRATEGY_LABELS)
STRATEGY_PHASES = ("Pending", "Paper", "Live", "Paused", "Retired", "Failed")
STRATEGY_PHASE = _metric(Gauge, "kubetrade_strategy_phase", "1 for the phase a strategy is in, 0 for the others.",
                         ["namespace", "strategy", "phase"])

GOAL_LABELS = ("namespace", "goal")
GOAL_PROGRESS = _metric(Gauge, "kubetrade_goal_progress_ratio",
                        "Achieved return over the return the goal's compounding path expects by now (1 = on the path).",
                        GOAL_LABELS)
GOAL_TARGET = _metric(Gauge, "kubetrade_goal_target_return_ratio", "A goal's target return per period.", GOAL_LABELS)
GOAL_RETURN = _metric(Gauge, "kubetrade_goal_return_ratio",
                      "Return of a goal's counted strategies on the target capital.", GOAL_LABELS)
GOAL_EQUITY = _metric(Gauge, "kubetrade_goal_equity", "Equity of a goal's counted strategies (quote currency).",
                      GOAL_LABELS)
GOAL_ON_TRACK = _metric(Gauge, "kubetrade_goal_on_track", "1 while a goal is on track, 0 when behind.", GOAL_LABELS)
GOAL_SIZING = _metric(Gauge, "kubetrade_goal_sizing_multiplier", "Position-sizing multiplier a goal applies now.",
                      GOAL_LABELS)

# Portfolio risk: exported by the risk manager, which computes it live (one portfolio per
# RiskPolicy and environment) - see :func:`export_portfolio`.
POLICY_LABELS = ("environment", "namespace", "policy")
PORTFOLIO_DRAWDOWN = _metric(Gauge, "kubetrade_portfolio_drawdown_ratio",
                             "Drawdown of the strategies under a risk policy from their equity peak (0..1).",
                             POLICY_LABELS)
PORTFOLIO_EQUITY = _metric(Gauge, "kubetrade_portfolio_equity",
                           "Equity of the strategies under a risk policy (quote currency).", POLICY_LABELS)
PORTFOLIO_DAILY_PNL = _metric(Gauge, "kubetrade_portfolio_daily_pnl_ratio",
                              "Today's PnL of a portfolio as a fraction of its equity at the day's start.",
                              POLICY_LABELS)
PORTFOLIO_GROSS_EXPOSURE = _metric(Gauge, "kubetrade_portfolio_gross_exposure",
                                   "Sum of the absolute position values of a portfolio (quote currency).",
                                   POLICY_LABELS)
PORTFOLIO_OPEN_POSITIONS = _metric(Gauge, "kubetrade_portfolio_open_positions", "Open positions of a portfolio.",
                                   POLICY_LABELS)
PORTFOLIO_VAR = _metric(Gauge, "kubetrade_portfolio_var_ratio",
                        "Value at risk of a portfolio at the policy's confidence, as a fraction of equity.",
                        POLICY_LABELS)
PORTFOLIO_CVAR = _metric(Gauge, "kubetrade_portfolio_cvar_ratio",
                         "Conditional value at risk (expected shortfall) of a portfolio, as a fraction of equity.",
                         POLICY_LABELS)
POLICY_DRAWDOWN_LIMIT = _metric(Gauge, "kubetrade_risk_drawdown_limit_ratio",
                                "The maximum portfolio drawdown a risk policy allows (0..1).", POLICY_LABELS)
POLICY_VAR_LIMIT = _metric(Gauge, "kubetrade_risk_var_limit_ratio",
                           "The value at risk a risk policy allows, as a fraction of equity.", POLICY_LABELS)
BREAKER_TRIPPED = _metric(Gauge, "kubetrade_risk_breaker_tripped",
                          "1 while a portfolio's circuit breaker is open (no new entries), else 0.", POLICY_LABELS)
RISK_VIOLATIONS = _metric(Gauge, "kubetrade_risk_violations",
                          "Signals a risk policy refused or reduced since the risk manager started.", POLICY_LABELS)

# --- evolution ------------------------------------------------------------------------------

EVOLUTION_RUNS = _metric(Counter, "kubetrade_evolution_runs_total", "Evolution runs, by goal and result.",
                         ["namespace", "goal", "result"])
EVOLUTION_DURATION = _metric(
    Histogram, "kubetrade_evolution_run_duration_seconds", "Wall time of one evolution run.", ["namespace", "goal"],
    buckets=(60, 300, 600, 1200, 1800, 3600, 7200, 10800),
)
EVOLUTION_SURVIVORS = _metric(Gauge, "kubetrade_evolution_survivors",
                              "Strategies that passed the overfitting guards in a goal's latest run.", GOAL_LABELS)
EVOLUTION_LAST_RUN = _metric(Gauge, "kubetrade_evolution_last_run_timestamp_seconds",
                             "When a goal's latest evolution run finished.", GOAL_LABELS)

# --- platform events and dependencies -------------------------------------------------------

ALERT_EVENTS = _metric(Counter, "kubetrade_alert_events_total",
                       "Trading events sent to Alertmanager, by alert name and result.",
                       ["alertname", "severity", "result"])
DEPENDENCY_UP = _metric(Gauge, "kubetrade_dependency_up",
                        "1 while a dependency (postgres, nats, kubernetes) answers the health check.", ["dependency"])


# --- the endpoint ---------------------------------------------------------------------------

METRICS_PORT_ENV = "KUBETRADE_METRICS_PORT"
SELF_SERVING_ROLES = frozenset({"api", "operator", "collect", "runner", "up", "risk-manager", "executor",
                                "goal-manager"})
"""Roles that serve /metrics themselves (API port, --metrics-port, their probe servers: the risk
manager's, the executors' and the goal manager's :class:`~kubetrade.observability.probes.ProbeServer`)."""


def serve_from_env(role: str, version: str) -> int | None:
    """Serve /metrics on ``$KUBETRADE_METRICS_PORT`` if set; returns the port.

    Called once by the CLI for every role, so each workload the chart or the operator
    starts is scrapeable without each command growing its own flag.  The endpoint answers
    every path, so it doubles as the liveness probe target (``/livez``).
    """
    BUILD_INFO.labels(version, role).set(1)
    port = settings.current().metrics_port  # typed: a bad value has been refused, naming the variable
    if not port or role in SELF_SERVING_ROLES:
        return None
    start_http_server(port)
    log.info("metrics endpoint", extra={"port": port})
    return port


# --- resource status -> gauges ----------------------------------------------------------------


def _set(gauge: Gauge, labels: Mapping[str, str], value: object) -> None:
    if isinstance(value, bool):
        gauge.labels(**labels).set(1 if value else 0)
    elif isinstance(value, int | float):
        gauge.labels(**labels).set(float(value))


_seen_runs: dict[tuple[str, str], float] = {}


def _timestamp(value: object) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def export_status(kind: str, namespace: str, name: str, status: Mapping[str, Any],
                  spec: Mapping[str, Any] | None = None) -> None:
    """Set the per-resource gauges from a resource's (merged) status; unknown kinds are ignored."""
    spec = spec or {}
    if kind == "Strategy":
        mode = str(spec.get("mode") or "paper")
        labels = {"namespace": namespace, "strategy": name, "mode": mode}
        for gauge, key in ((STRATEGY_EQUITY, "equity"), (STRATEGY_PNL, "pnl"), (STRATEGY_DRAWDOWN, "drawdown"),
                           (STRATEGY_SHARPE, "sharpe"), (STRATEGY_TRADES, "trades"),
                           (STRATEGY_OPEN_POSITIONS, "openPositions")):
            _set(gauge, labels, status.get(key))
        phase = status.get("phase")
        if phase in STRATEGY_PHASES:
            for p in STRATEGY_PHASES:
                STRATEGY_PHASE.labels(namespace, name, p).set(1 if p == phase else 0)
    elif kind == "Goal":
        labels = {"namespace": namespace, "goal": name}
        progress = status.get("progressPct")
        _set(GOAL_PROGRESS, labels, progress)
        _set(GOAL_RETURN, labels, status.get("returnPct"))
        _set(GOAL_EQUITY, labels, status.get("equity"))
        _set(GOAL_ON_TRACK, labels, status.get("onTrack"))
        _set(GOAL_SIZING, labels, status.get("sizingMultiplier"))
        _set(GOAL_TARGET, labels, (spec.get("target") or {}).get("returnPct"))
        evolution = status.get("lastEvolution") or {}
        _set(EVOLUTION_SURVIVORS, labels, evolution.get("survived"))
        finished = _timestamp(evolution.get("time"))
        if finished is not None:
            EVOLUTION_LAST_RUN.labels(**labels).set(finished)
            # each new run summary the operator sees is one run (the CronJob's pod is gone
            # before any scrape could count it)
            if _seen_runs.get((namespace, name)) not in (None, finished):
                result = "survivors" if (evolution.get("survived") or 0) > 0 else "no_survivors"
                EVOLUTION_RUNS.labels(namespace, name, result).inc()
            _seen_runs[(namespace, name)] = finished


def export_portfolio(risk: Any, drawdown_limit: float | None = None, var_limit: float | None = None) -> None:
    """Set the portfolio gauges from the risk manager's :class:`~kubetrade.messaging.schemas.PortfolioRisk`."""
    labels = {"environment": risk.environment, "namespace": risk.namespace, "policy": risk.policy}
    _set(PORTFOLIO_DRAWDOWN, labels, risk.drawdown)
    _set(PORTFOLIO_EQUITY, labels, risk.equity)
    _set(PORTFOLIO_DAILY_PNL, labels, risk.daily_pnl_pct)
    _set(PORTFOLIO_GROSS_EXPOSURE, labels, risk.gross_exposure)
    _set(PORTFOLIO_OPEN_POSITIONS, labels, risk.open_positions)
    _set(PORTFOLIO_VAR, labels, risk.var)
    _set(PORTFOLIO_CVAR, labels, risk.cvar)
    _set(BREAKER_TRIPPED, labels, bool(risk.breaker_open))
    _set(RISK_VIOLATIONS, labels, risk.violations)
    _set(POLICY_DRAWDOWN_LIMIT, labels, drawdown_limit)
    _set(POLICY_VAR_LIMIT, labels, var_limit)


def forget(kind: str, namespace: str, name: str) -> None:
    """Drop a deleted resource's series so dashboards do not show ghosts."""
    groups: dict[str, tuple[tuple[Gauge, tuple[str, ...]], ...]] = {
        "Strategy": tuple((g, (namespace, name, mode)) for g in (
            STRATEGY_EQUITY, STRATEGY_PNL, STRATEGY_DRAWDOWN, STRATEGY_SHARPE, STRATEGY_TRADES,
            STRATEGY_OPEN_POSITIONS) for mode in ("paper", "live"))
        + tuple((STRATEGY_PHASE, (namespace, name, p)) for p in STRATEGY_PHASES),
        "Goal": tuple((g, (namespace, name)) for g in (
            GOAL_PROGRESS, GOAL_RETURN, GOAL_EQUITY, GOAL_ON_TRACK, GOAL_SIZING, GOAL_TARGET, EVOLUTION_SURVIVORS)),
    }
    for gauge, values in groups.get(kind, ()):
        with contextlib.suppress(KeyError):
            gauge.remove(*values)
