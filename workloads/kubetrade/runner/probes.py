"""Health probes and Prometheus metrics on one port (the pod's ``metrics`` port, 9090).

``/readyz`` is 200 once the strategy is warmed up and connected, 503 with the reason
otherwise; ``/healthz`` (and ``/livez``) is 200 while the main loop keeps turning (a wedged
loop gets the pod restarted); ``/metrics`` is the Prometheus text format of the runner's
own registry (one registry per runner, so several runners can share a process under
``kubetrade up``).  The server is :class:`kubetrade.observability.probes.ProbeServer`, the
one every role uses.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from kubetrade.observability.probes import ProbeServer


class RunnerMetrics:
    def __init__(self, strategy: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"strategy": strategy}
        r = self.registry

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, ["strategy"], registry=r)

        self.equity = gauge("kubetrade_runner_equity", "Equity of the strategy's book").labels(**labels)
        self.pnl = gauge("kubetrade_runner_pnl", "Realised plus unrealised PnL").labels(**labels)
        self.drawdown = gauge(
            "kubetrade_runner_drawdown_ratio", "Drawdown from the equity peak, as a fraction (0.1 = 10%)"
        ).labels(**labels)
        self.open_positions = gauge("kubetrade_runner_open_positions", "Open positions").labels(**labels)
        self.multiplier = gauge("kubetrade_runner_sizing_multiplier", "Goal sizing multiplier in use").labels(**labels)
        self.last_bar = gauge("kubetrade_runner_last_bar_timestamp_seconds", "Close time of the last bar").labels(
            **labels
        )
        self.trades = Counter("kubetrade_runner_trades", "Closed trades", ["strategy"], registry=r).labels(**labels)
        self.bars = Counter("kubetrade_runner_bars", "Bars processed", ["strategy"], registry=r).labels(**labels)
        self.decisions = Counter(
            "kubetrade_runner_risk_decisions", "Risk decisions by result", ["strategy", "result"], registry=r
        )
        self.risk_unreachable = Counter(
            "kubetrade_runner_risk_unreachable", "risk.check requests without an answer", ["strategy"], registry=r
        ).labels(**labels)
        self.model_refused = gauge(
            "kubetrade_runner_model_refused",
            "1 while the strategy does not trade because its model (or the model's input) was refused").labels(**labels)
        self.orders = Counter("kubetrade_runner_orders", "Terminal order states", ["strategy", "status"], registry=r)
        self.strategy = strategy


class Probes(ProbeServer):
    """The runner's probes: ready once warmed up and connected (``ready`` returns the reason it
    is not, or None), alive while its main loop turns; ``/metrics`` is the runner's own registry."""

    def __init__(self, metrics: RunnerMetrics, ready: Callable[[], str | None], stall_seconds: float = 120.0) -> None:
        self.metrics = metrics
        self.ready = ready

        def checks() -> list[str]:
            reason = ready()
            return [] if reason is None else [reason]

        super().__init__(checks, registry=metrics.registry, stall_seconds=stall_seconds)
