"""Helpers shared by the observability tests: metric names in PromQL and in the code.

Names in a query are found by a small lexer (strings, label matchers, grouping clauses,
durations and function calls removed); names in the code come from the metrics that are
really registered once every module is imported, plus metrics that live in a registry of
their own (the strategy runner's) found by scanning the source.  So the check follows the
code as other people change it.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

from prometheus_client import REGISTRY

REPO = Path(__file__).resolve().parents[2]

PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless",
    "inf", "nan", "atan2", "start", "end",
}
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE",
                  "alertmanager_notifications_failed_total"}
"""Series Prometheus makes itself, or that Alertmanager exports about itself (scraped by Prometheus), not the code."""


def metric_names_in(expr: str) -> set[str]:
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    s = re.sub(r"\{[^}]*\}", "", s)  # label matchers
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\[[^\]]*\]", "", s)  # ranges and subqueries
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        word = m.group(0)
        rest = s[m.end():].lstrip()
        if rest.startswith("("):
            continue  # a function or aggregation
        if word in PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        prev = s[:m.start()].rstrip()
        if prev and (prev[-1].isdigit() or prev.endswith(".")):
            continue  # the exponent of a number like 1.5e9
        names.add(word)
    return names


def _import_everything() -> list[str]:
    """Import every module of both packages, so each module-level metric registers itself."""
    failures = []
    for package in ("kubetrade", "kubetrade_operator"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if info.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(info.name)
            except Exception as exc:  # reported with a missing metric, not on its own
                failures.append(f"{info.name}: {type(exc).__name__}: {exc}")
    return failures


_SOURCE_METRIC = re.compile(r"""\b(Counter|Gauge|Histogram|Summary|gauge|counter)\(\s*["'](kubetrade_\w+)["']""")


def exposed_names(name: str, kind: str) -> set[str]:
    """The sample names a metric of this kind appears under in the exposition format."""
    kind = kind.lower()
    if kind == "counter":
        base = name.removesuffix("_total")
        return {f"{base}_total", f"{base}_created"}
    if kind in ("histogram", "summary"):
        return {name, f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
    return {name}


def metrics_in_code() -> tuple[set[str], list[str]]:
    """(every sample name the code can expose, import failures)."""
    failures = _import_everything()
    names: set[str] = set()
    for family in REGISTRY.collect():
        names |= exposed_names(family.name, family.type)
        names |= {s.name for s in family.samples}
    for path in [*(REPO / "workloads").rglob("*.py"), *(REPO / "operator").rglob("*.py")]:
        for kind, name in _SOURCE_METRIC.findall(path.read_text(errors="replace")):
            names |= exposed_names(name, kind)
    return names, failures
