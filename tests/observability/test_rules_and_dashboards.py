"""Alert rules and Grafana dashboards, checked with the real tools (Alertmanager's routing: tests/alerts).

``promtool`` and ``amtool`` come from the Debian packages (scripts/testbed/install-monitoring.sh).
Every query a dashboard panel or a rule runs must parse, and every metric it names must
exist in the code: a dashboard that silently shows "No data" because a metric was renamed
fails here instead.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetrade.observability import dashboards
from tests.observability.promql import PROMETHEUS_OWN, REPO, metric_names_in, metrics_in_code

CHART = REPO / "charts" / "kubetrade"
RULES = CHART / "files" / "prometheus" / "kubetrade-rules.yaml"
DASHBOARDS = CHART / "files" / "dashboards"


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def code_metrics() -> tuple[set[str], list[str]]:
    return metrics_in_code()


def test_rules_load_in_promtool() -> None:
    out = run("promtool", "check", "rules", RULES)
    assert out.returncode == 0, out.stdout + out.stderr
    written = sum(len(g["rules"]) for g in yaml.safe_load(Path(RULES).read_text())["groups"])
    assert written >= 17 and f"SUCCESS: {written} rules found" in out.stdout  # promtool loaded every rule


def test_rules_unit_tests_pass() -> None:
    """Each alert fires on the input that should fire it and stays quiet next to it."""
    out = run("promtool", "test", "rules", REPO / "tests" / "observability" / "rules_test.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_has_a_unit_test_and_the_seed_severities() -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    tested = set(re.findall(r"alertname: (\w+)", (REPO / "tests" / "observability" / "rules_test.yaml").read_text()))
    assert {r["alert"] for r in rules} <= tested
    assert {r["labels"]["severity"] for r in rules} == {"critical", "warning", "info"}
    assert {r["labels"]["category"] for r in rules} == {"system", "trading", "risk", "data"}


def test_prometheusrule_in_the_chart_is_the_tested_file() -> None:
    """The chart's PrometheusRule renders .Files.Get of the same file (no second copy)."""
    template = (CHART / "templates" / "monitoring.yaml").read_text()
    assert '.Files.Get "files/prometheus/kubetrade-rules.yaml"' in template


def test_shipped_dashboards_are_the_generated_ones() -> None:
    rendered = dashboards.render()
    shipped = {p.name: p.read_text() for p in DASHBOARDS.glob("*.json")}
    assert shipped == rendered, "run: .venv/bin/python scripts/generate-chart-files.py"
    titles = {json.loads(t)["title"] for t in rendered.values()}
    assert titles == {"kubetrade / System overview", "kubetrade / Strategies", "kubetrade / Goals",
                      "kubetrade / Risk", "kubetrade / Data sources"}


def _dashboard_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board: dict[str, Any] = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                out.append((f"{path.name}: {panel['title']}", target["expr"]))
        for var in board["templating"]["list"]:
            q = var.get("query")
            if isinstance(q, dict):
                m = re.fullmatch(r"label_values\((.*),\s*\w+\)", q["query"])
                assert m, q
                out.append((f"{path.name}: variable {var['name']}", m.group(1)))
        for note in board["annotations"]["list"]:  # promotions and breaker trips, marked on every panel
            out.append((f"{path.name}: annotation {note['name']}", note["expr"]))
    return out


def _grafana_to_promql(expr: str) -> str:
    """Grafana's variables as Prometheus would see them after interpolation."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def test_every_panel_query_parses(tmp_path: Path) -> None:
    """promtool parses each query as the expression of a recording rule."""
    queries = _dashboard_queries()
    assert len(queries) >= 40
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query_{i}", "expr": _grafana_to_promql(expr)} for i, (_, expr) in enumerate(queries)
    ]}]}
    path = tmp_path / "dashboards-as-rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    out = run("promtool", "check", "rules", path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_metric_a_panel_or_rule_uses_exists_in_the_code(code_metrics: tuple[set[str], list[str]]) -> None:
    names, failures = code_metrics
    used: dict[str, set[str]] = {}
    for where, expr in _dashboard_queries():
        for name in metric_names_in(_grafana_to_promql(expr)):
            used.setdefault(name, set()).add(where)
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            for name in metric_names_in(rule["expr"]):
                used.setdefault(name, set()).add(f"rule {rule['alert']}")
    missing = {n: sorted(w) for n, w in used.items() if n not in names and n not in PROMETHEUS_OWN}
    assert not missing, f"metrics used but not defined in the code: {missing}\nimport failures: {failures}"
    # the lexer itself finds what it should (a test that can fail the other way, too)
    assert metric_names_in('sum by (le) (rate(kubetrade_x_bucket{a="b"}[5m])) > 1.5e9 and on (n) up') == {
        "kubetrade_x_bucket", "up"}


def test_metric_names_follow_the_convention(code_metrics: tuple[set[str], list[str]]) -> None:
    """kubetrade_ prefix; units in the name; no label that could carry a secret or grow without bound."""
    from prometheus_client import REGISTRY

    metrics_in_code()  # every module imported
    forbidden_labels = {"key", "secret", "token", "password", "url", "error", "message", "client_order_id",
                        "order_id", "price", "trace_id", "request_id", "path"}
    problems = []
    for collector, names in list(REGISTRY._collector_to_names.items()):
        labels = set(getattr(collector, "_labelnames", ()))
        for name in names:
            if not name.startswith("kubetrade_"):
                continue
            if labels & forbidden_labels:
                problems.append(f"{name}: labels {sorted(labels & forbidden_labels)}")
            if re.search(r"_(ms|millis|milliseconds|percent|pct)($|_)", name):
                problems.append(f"{name}: use base units (_seconds, _ratio)")
            if ("duration" in name or "latency" in name) and "_seconds" not in name:
                problems.append(f"{name}: durations are in _seconds")
    assert not problems, problems


def test_dashboards_keep_paper_and_live_apart_in_money_and_mark_promotions_and_trips() -> None:
    """Paper and live are never summed unseen ($mode on every query of strategies and risk), money
    is shown as money, and promotions to live and breaker trips are marked on every time series."""
    for name in ("strategies.json", "risk.json"):
        board = json.loads((DASHBOARDS / name).read_text())
        assert any(v["name"] == "mode" for v in board["templating"]["list"]), name
        filtered = 0
        for panel in board["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                # every series that carries the mode (label mode or environment) is filtered by it; the
                # others are per strategy, and $strategy offers only the strategies of $mode
                moded = any(m in expr for m in ("kubetrade_strategy_", "kubetrade_portfolio_", "_total"))
                if moded and "kubetrade_runner_" not in expr and "refresh" not in expr:
                    assert "$mode" in expr, (name, panel["title"], expr)
                    filtered += 1
        assert filtered >= 6, (name, filtered)
    money = {("strategies.json", "Equity"), ("strategies.json", "PnL"), ("strategies.json", "Fees per day"),
             ("risk.json", "Gross exposure"), ("goals.json", "Equity of counted strategies")}
    for name, title in money:
        panel = next(p for p in json.loads((DASHBOARDS / name).read_text())["panels"] if p["title"] == title)
        assert panel["fieldConfig"]["defaults"]["unit"] == "currencyUSD", (name, title)
    for path in sorted(DASHBOARDS.glob("*.json")):
        notes = {n["name"]: n for n in json.loads(path.read_text())["annotations"]["list"]}
        assert set(notes) == {"Promotions to live", "Circuit breaker trips"}, path.name
        assert 'action="promote"' in notes["Promotions to live"]["expr"]
        assert "kubetrade_risk_breaker_tripped" in notes["Circuit breaker trips"]["expr"]
