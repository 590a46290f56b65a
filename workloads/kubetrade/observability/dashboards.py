"""The Grafana dashboards, as code: ``python -m kubetrade.observability.dashboards charts/kubetrade/files/dashboards``.

Why code: five dashboards share a datasource variable, filters and panel shapes, and
their queries must stay in step with the metric names (docs/metrics.md).  The JSON the
chart ships is generated from here; tests/observability checks that the shipped JSON is
what this module produces, that every query parses (``promtool``) and that every metric a
query names is defined in the code.  The pages mirror the seed's Monitoring UI: system
overview, strategies, goals, risk, data sources.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
MONEY = "currencyUSD"
"""Equity, PnL, exposure and fees are in the quote currency (USDT, a US-dollar stablecoin): shown as dollars."""

ANNOTATIONS: list[dict[str, Any]] = [
    {
        "name": "Promotions to live",
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": "green",
        "expr": 'sum(increase(kubetrade_lifecycle_actions_total{action="promote"}[2m])) > 0',
        "step": "1m",
        "titleFormat": "promoted to live",
        "textFormat": "{{value}} strategies promoted by the goal review",
    },
    {
        "name": "Circuit breaker trips",
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": "red",
        "expr": "(max by (namespace, policy, environment) (kubetrade_risk_breaker_tripped) == 1) unless "
                "(max by (namespace, policy, environment) (kubetrade_risk_breaker_tripped offset 2m) == 1)",
        "step": "1m",
        "titleFormat": "circuit breaker tripped",
        "textFormat": "{{namespace}}/{{policy}} ({{environment}})",
    },
]
"""Marked on every time series of every dashboard: when a strategy went live, when a breaker tripped."""


def mode_variable(label: str = "mode", metric: str = "kubetrade_strategy_phase") -> dict[str, Any]:
    """``$mode``: paper or live (or both), so that simulated and real money are never summed unseen."""
    var = _variable("mode", f"label_values({metric}, {label})", "Mode (paper / live)")
    return var


@dataclass
class Panel:
    title: str
    queries: list[tuple[str, str]]
    """(PromQL, legend) pairs."""
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = ""
    thresholds: list[tuple[float, str]] = field(default_factory=list)


def _variable(name: str, query: str, label: str, multi: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"var-{name}"},
        "definition": query,
        "refresh": 2,
        "includeAll": multi,
        "multi": multi,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def _datasource_variable() -> dict[str, Any]:
    return {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
            "current": {}, "refresh": 1}


def _panel(p: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": p.unit}
    if p.thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in p.thresholds],
        }
    return {
        "id": panel_id,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": p.height, "w": p.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if p.kind == "timeseries" else {},
        "targets": [
            {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i)}
            for i, (expr, legend) in enumerate(p.queries)
        ],
    }


def dashboard(uid: str, title: str, description: str, panels: list[Panel],
              variables: list[dict[str, Any]]) -> dict[str, Any]:
    laid_out = []
    x = y = row_height = 0
    for i, p in enumerate(panels, start=1):
        if x + p.width > 24:
            x, y, row_height = 0, y + row_height, 0
        laid_out.append(_panel(p, i, x, y))
        x += p.width
        row_height = max(row_height, p.height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["kubetrade"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": [_datasource_variable(), *variables]},
        "annotations": {"list": [dict(a) for a in ANNOTATIONS]},
        "links": [{"title": "kubetrade", "type": "dashboards", "tags": ["kubetrade"], "asDropdown": True}],
        "panels": laid_out,
    }


NS = 'namespace=~"$namespace"'
RI = "$__rate_interval"


def overview() -> dict[str, Any]:
    panels = [
        Panel("Processes up", [('sum by (job) (up{job=~"kubetrade.*"})', "{{job}}")], kind="stat", width=8,
              height=5, description="Scraped kubetrade processes per job; 0 means down."),
        Panel("Versions running", [("sum by (role, version) (kubetrade_build_info)", "{{role}} {{version}}")],
              kind="table", width=8, height=5),
        Panel("Dependencies (API health check)", [("kubetrade_dependency_up", "{{dependency}}")], kind="stat",
              width=8, height=5, description="PostgreSQL/TimescaleDB, NATS and Kubernetes as the API sees them.",
              thresholds=[(0.5, "green")]),
        Panel("API requests", [(f"sum by (route, status) (rate(kubetrade_http_requests_total[{RI}]))",
                                "{{route}} {{status}}")], unit="reqps"),
        Panel("API latency p95", [(
            f"histogram_quantile(0.95, sum by (le, route) (rate(kubetrade_http_request_duration_seconds_bucket[{RI}])))",  # noqa: E501
            "{{route}}")], unit="s"),
        Panel("CPU", [(f'rate(process_cpu_seconds_total{{job=~"kubetrade.*"}}[{RI}])', "{{job}} {{instance}}")],
              unit="percentunit"),
        Panel("Memory", [('process_resident_memory_bytes{job=~"kubetrade.*"}', "{{job}} {{instance}}")],
              unit="bytes"),
        Panel("Operator reconciles", [(f"sum by (kind, result) (rate(kubetrade_operator_reconciles_total[{RI}]))",
                                       "{{kind}} {{result}}")], unit="ops"),
        Panel("Reconcile duration p95", [(
            f"histogram_quantile(0.95, sum by (le, kind) (rate(kubetrade_operator_reconcile_duration_seconds_bucket[{RI}])))",  # noqa: E501
            "{{kind}}")], unit="s"),
        Panel("Operator leader", [("max(kubetrade_operator_leader)", "leader")], kind="stat", width=6, height=5),
        Panel("Collectors running", [("sum(kubetrade_collector_running)", "running")], kind="stat", width=6,
              height=5),
        Panel("Orders per minute", [(f"sum by (environment) (rate(kubetrade_orders_total[{RI}])) * 60",
                                     "{{environment}}")], width=12, height=5),
    ]
    return dashboard("kubetrade-overview", "kubetrade / System overview",
                     "Services, dependencies, API and operator health.", panels, [])


def strategies() -> dict[str, Any]:
    sel = f'{NS}, strategy=~"$strategy", mode=~"$mode"'
    env = f'{NS}, strategy=~"$strategy", environment=~"$mode"'
    panels = [
        Panel("Equity", [(f"kubetrade_strategy_equity{{{sel}}}", "{{namespace}}/{{strategy}} ({{mode}})")],
              width=24, height=9, unit=MONEY,
              description="Equity curve of each strategy's ledger (quote currency); $mode keeps paper and live apart."),
        Panel("PnL", [(f"kubetrade_strategy_pnl{{{sel}}}", "{{strategy}} ({{mode}})")], unit=MONEY),
        Panel("Drawdown", [(f"kubetrade_strategy_drawdown_ratio{{{sel}}}", "{{strategy}} ({{mode}})")],
              unit="percentunit"),
        Panel("Strategies by phase", [(f'sum by (phase) (kubetrade_strategy_phase{{{NS}, mode=~"$mode"}})',
                                       "{{phase}}")], kind="bargauge", width=8),
        Panel("Sharpe", [(f"kubetrade_strategy_sharpe{{{sel}}}", "{{strategy}}")], kind="bargauge", width=8),
        Panel("Closed trades", [(f"kubetrade_strategy_trades{{{sel}}}", "{{strategy}}")], kind="bargauge",
              width=8),
        Panel("Fills per hour", [(f"sum by (strategy, environment) (increase(kubetrade_fills_total{{{env}}}[1h]))",
                                  "{{strategy}} ({{environment}})")]),
        Panel("Fees per day", [(f"sum by (strategy, currency) (increase(kubetrade_fees_total{{{env}}}[1d]))",
                                "{{strategy}} {{currency}}")], unit=MONEY),
        Panel("Orders by state", [(
            f'sum by (environment, state) (increase(kubetrade_orders_total{{environment=~"$mode"}}[{RI}]))',
            "{{environment}} {{state}}")]),
        Panel("Signals", [(f"sum by (strategy, side) (rate(kubetrade_signals_total{{{sel}}}[{RI}]))",
                           "{{strategy}} {{side}}")], unit="ops"),
        Panel("Open positions", [(f"kubetrade_strategy_open_positions{{{sel}}}", "{{strategy}}")]),
        Panel("Runner bars processed", [(f'sum by (strategy) (rate(kubetrade_runner_bars_total{{strategy=~"$strategy"}}[{RI}]))',  # noqa: E501
                                         "{{strategy}}")], unit="ops"),
    ]
    variables = [
        mode_variable(),
        _variable("namespace", "label_values(kubetrade_strategy_phase, namespace)", "Namespace"),
        _variable("strategy", 'label_values(kubetrade_strategy_phase{namespace=~"$namespace", mode=~"$mode"}, '
                  'strategy)', "Strategy"),
    ]
    return dashboard("kubetrade-strategies", "kubetrade / Strategies",
                     "Equity curves, PnL, phases and trades of every strategy.", panels, variables)


def goals() -> dict[str, Any]:
    sel = f'{NS}, goal=~"$goal"'
    panels = [
        Panel("Return against target", [
            (f"kubetrade_goal_return_ratio{{{sel}}}", "{{goal}} return"),
            (f"kubetrade_goal_target_return_ratio{{{sel}}}", "{{goal}} target"),
        ], unit="percentunit", width=24, height=9),
        Panel("Progress on the path", [(f"kubetrade_goal_progress_ratio{{{sel}}}", "{{goal}}")], kind="gauge",
              unit="percentunit", width=8, description="Achieved return over the return expected by now."),
        Panel("On track", [(f"kubetrade_goal_on_track{{{sel}}}", "{{goal}}")], kind="stat", width=8,
              thresholds=[(0.5, "green")]),
        Panel("Position-sizing multiplier", [(f"kubetrade_goal_sizing_multiplier{{{sel}}}", "{{goal}}")],
              kind="stat", width=8),
        Panel("Equity of counted strategies", [(f"kubetrade_goal_equity{{{sel}}}", "{{goal}}")], unit=MONEY),
        Panel("Promotions and retirements", [(
            "sum by (action) (increase(kubetrade_lifecycle_actions_total[1d]))", "{{action}}")], kind="barchart"),
        Panel("Evolution survivors (latest run)", [(f"kubetrade_evolution_survivors{{{sel}}}", "{{goal}}")],
              kind="bargauge"),
        Panel("Evolution runs (7 days)", [(
            f"sum by (goal, result) (increase(kubetrade_evolution_runs_total{{{sel}}}[7d]))",
            "{{goal}} {{result}}")], kind="bargauge"),
        Panel("Evolution run duration (median)", [(
            f"histogram_quantile(0.5, sum by (le, goal) (rate(kubetrade_evolution_run_duration_seconds_bucket{{{sel}}}[1d])))",  # noqa: E501
            "{{goal}}")], unit="s"),
    ]
    variables = [
        _variable("namespace", "label_values(kubetrade_goal_on_track, namespace)", "Namespace"),
        _variable("goal", 'label_values(kubetrade_goal_on_track{namespace=~"$namespace"}, goal)', "Goal"),
    ]
    return dashboard("kubetrade-goals", "kubetrade / Goals", "Progress of each goal against its target.", panels,
                     variables)


def risk() -> dict[str, Any]:
    sel = f'{NS}, policy=~"$policy", environment=~"$mode"'
    panels = [
        Panel("Drawdown and limit", [
            (f"kubetrade_portfolio_drawdown_ratio{{{sel}}}", "{{policy}} ({{environment}})"),
            (f"kubetrade_risk_drawdown_limit_ratio{{{sel}}}", "{{policy}} limit"),
        ], unit="percentunit", width=24, height=9),
        Panel("Value at risk", [
            (f"kubetrade_portfolio_var_ratio{{{sel}}}", "VaR {{policy}} ({{environment}})"),
            (f"kubetrade_portfolio_cvar_ratio{{{sel}}}", "CVaR {{policy}} ({{environment}})"),
            (f"kubetrade_risk_var_limit_ratio{{{sel}}}", "VaR limit {{policy}}"),
        ], unit="percentunit"),
        Panel("Circuit breakers", [(f"kubetrade_risk_breaker_tripped{{{sel}}}", "{{policy}} ({{environment}})")],
              kind="stat", thresholds=[(1, "red")], description="1 = open: no new positions."),
        Panel("Rejections and reductions by rule", [(
            'sum by (rule) (increase(kubetrade_risk_decisions_total{decision!="approved", environment=~"$mode"}[1h]))',
            "{{rule}}")], kind="barchart"),
        Panel("Decisions", [(
            f'sum by (decision) (rate(kubetrade_risk_decisions_total{{environment=~"$mode"}}[{RI}]))',
            "{{decision}}")], unit="ops"),
        Panel("Daily PnL", [(f"kubetrade_portfolio_daily_pnl_ratio{{{sel}}}", "{{policy}} ({{environment}})")],
              unit="percentunit"),
        Panel("Gross exposure", [(f"kubetrade_portfolio_gross_exposure{{{sel}}}", "{{policy}} ({{environment}})")],
              unit=MONEY),
        Panel("Open positions", [(f"kubetrade_portfolio_open_positions{{{sel}}}", "{{policy}} ({{environment}})")]),
        Panel("Violations", [(f"kubetrade_risk_violations{{{sel}}}", "{{policy}} ({{environment}})")]),
        Panel("Book refresh", [
            (f"histogram_quantile(0.99, sum by (le) (rate(kubetrade_risk_refresh_seconds_bucket[{RI}])))", "p99"),
            ("time() - max(kubetrade_risk_last_refresh_timestamp_seconds)", "since the last one"),
        ], unit="s", description="How long the risk manager's refresh from PostgreSQL takes (paced: tens of "
           "milliseconds), and how long ago the last one completed; decisions in between use that state."),
    ]
    variables = [
        mode_variable("environment", "kubetrade_portfolio_equity"),
        _variable("namespace", "label_values(kubetrade_portfolio_equity, namespace)", "Namespace"),
        _variable("policy", 'label_values(kubetrade_portfolio_equity{namespace=~"$namespace"}, policy)', "Policy"),
    ]
    return dashboard("kubetrade-risk", "kubetrade / Risk", "Drawdown, VaR, breakers and rejections by rule.", panels,
                     variables)


def data_sources() -> dict[str, Any]:
    sel = f'{NS}, collector=~"$collector"'
    panels = [
        Panel("Freshness (seconds since the newest sample)", [(
            f"time() - kubetrade_collector_last_sample_timestamp_seconds{{{sel}}}", "{{namespace}}/{{collector}}")],
            unit="s", width=24, height=9, thresholds=[(900, "red")]),
        Panel("Running", [(f"kubetrade_collector_running{{{sel}}}", "{{collector}}")], kind="stat",
              thresholds=[(0.5, "green")]),
        Panel("Lag", [(f"kubetrade_collector_lag_seconds{{{sel}}}", "{{collector}}")], unit="s"),
        Panel("Samples per second", [(
            f"sum by (collector, source, provider) (rate(kubetrade_collector_samples_total{{{sel}}}[{RI}]))",
            "{{collector}} ({{source}}/{{provider}})")], unit="ops"),
        Panel("Errors per minute", [(
            f"sum by (collector) (rate(kubetrade_collector_errors_total{{{sel}}}[{RI}])) * 60", "{{collector}}")]),
    ]
    variables = [
        _variable("namespace", "label_values(kubetrade_collector_running, namespace)", "Namespace"),
        _variable("collector", 'label_values(kubetrade_collector_running{namespace=~"$namespace"}, collector)',
                  "Collector"),
    ]
    return dashboard("kubetrade-data-sources", "kubetrade / Data sources", "Freshness and errors of every collector.",
                     panels, variables)


DASHBOARDS = {
    "overview": overview,
    "strategies": strategies,
    "goals": goals,
    "risk": risk,
    "data-sources": data_sources,
}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"{name}.json": json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render().items():
        path = folder / name
        path.write_text(text)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write(Path(sys.argv[1] if len(sys.argv) > 1 else "charts/kubetrade/files/dashboards")):
        print(written)
