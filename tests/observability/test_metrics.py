"""Resource status and portfolio risk become gauges with bounded, secret-free labels."""

from __future__ import annotations

import uuid

from prometheus_client import REGISTRY

from kubetrade.messaging.schemas import PortfolioRisk
from kubetrade.observability import metrics


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_strategy_and_goal_status_become_gauges_and_go_away_with_the_resource() -> None:
    ns = f"ns-{uuid.uuid4().hex[:6]}"
    metrics.export_status("Strategy", ns, "ema-7", {"phase": "Live", "equity": 10_450.5, "pnl": 450.5,
                                                    "drawdown": 0.031, "trades": 12, "sharpe": 1.7},
                          {"mode": "live"})
    labels = {"namespace": ns, "strategy": "ema-7", "mode": "live"}
    assert value("kubetrade_strategy_equity", **labels) == 10_450.5
    assert value("kubetrade_strategy_drawdown_ratio", **labels) == 0.031
    assert value("kubetrade_strategy_phase", namespace=ns, strategy="ema-7", phase="Live") == 1
    assert value("kubetrade_strategy_phase", namespace=ns, strategy="ema-7", phase="Paper") == 0
    assert value("kubetrade_strategy_open_positions", **labels) is None  # not reported: no made-up zero

    metrics.export_status("Goal", ns, "monthly-8", {"returnPct": 0.081, "progressPct": 1.2, "onTrack": True},
                          {"target": {"returnPct": 0.08}})
    assert value("kubetrade_goal_return_ratio", namespace=ns, goal="monthly-8") == 0.081
    assert value("kubetrade_goal_target_return_ratio", namespace=ns, goal="monthly-8") == 0.08
    assert value("kubetrade_goal_on_track", namespace=ns, goal="monthly-8") == 1

    # a new evolution summary is one more run; the same summary seen again is not
    for when in ("2026-11-25T03:40:00Z", "2026-11-26T03:41:00Z", "2026-11-26T03:41:00Z"):
        metrics.export_status("Goal", ns, "monthly-8", {"lastEvolution": {"time": when, "survived": 7}}, {})
    assert value("kubetrade_evolution_runs_total", namespace=ns, goal="monthly-8", result="survivors") == 1
    assert value("kubetrade_evolution_last_run_timestamp_seconds", namespace=ns, goal="monthly-8") == 1795664460.0
    assert value("kubetrade_evolution_survivors", namespace=ns, goal="monthly-8") == 7

    metrics.forget("Strategy", ns, "ema-7")
    metrics.forget("Goal", ns, "monthly-8")
    assert value("kubetrade_strategy_equity", **labels) is None
    assert value("kubetrade_goal_return_ratio", namespace=ns, goal="monthly-8") is None


def test_portfolio_risk_from_the_risk_manager() -> None:
    ns = f"ns-{uuid.uuid4().hex[:6]}"
    risk = PortfolioRisk(environment="live", namespace=ns, policy="default", equity=9_000.0, peak_equity=10_000.0,
                         drawdown=0.1, daily_pnl_pct=-0.02, gross_exposure=4_000.0, open_positions=2, var=0.031,
                         cvar=0.045, breaker_open=True, violations=3)
    metrics.export_portfolio(risk, drawdown_limit=0.15, var_limit=0.05)
    labels = {"environment": "live", "namespace": ns, "policy": "default"}
    assert value("kubetrade_portfolio_drawdown_ratio", **labels) == 0.1
    assert value("kubetrade_portfolio_var_ratio", **labels) == 0.031
    assert value("kubetrade_risk_breaker_tripped", **labels) == 1
    assert value("kubetrade_risk_drawdown_limit_ratio", **labels) == 0.15


def test_a_metric_defined_twice_is_shared_not_a_crash() -> None:
    """Modules written in parallel may define the same series; the second gets the first."""
    from prometheus_client import Counter, Gauge

    again = metrics._metric(Counter, "kubetrade_orders_total", "again", ["environment", "state"])
    assert again is metrics.ORDERS
    try:
        metrics._metric(Gauge, "kubetrade_orders_total", "wrong kind")
    except TypeError as exc:
        assert "already registered as Counter" in str(exc)
    else:
        raise AssertionError("a kind mismatch must not pass silently")
