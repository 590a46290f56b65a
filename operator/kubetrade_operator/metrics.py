"""Prometheus metrics of the operator itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("kubetrade_operator_reconciles_total", "Reconciliations, by kind and result.", ["kind", "result"])
RECONCILE_SECONDS = Histogram(
    "kubetrade_operator_reconcile_duration_seconds",
    "Time spent reconciling one object.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IN_FLIGHT = Gauge(
    "kubetrade_operator_reconciles_in_flight", "Reconciliations running now (the work queue's depth).", ["kind"]
)
LEADER = Gauge("kubetrade_operator_leader", "1 while this replica holds the leader lease.")
STATUS_REPORTS = Counter(
    "kubetrade_operator_status_reports_total",
    "Workload status reports received, by kind and result.",
    ["kind", "result"],
)
LIFECYCLE_ACTIONS = Counter(
    "kubetrade_lifecycle_actions_total", "Promotions and retirements applied by the goal review.", ["action"]
)


@contextmanager
def reconciling(kind: str) -> Iterator[None]:
    IN_FLIGHT.labels(kind).inc()
    started = time.perf_counter()
    try:
        yield
    except Exception:
        RECONCILES.labels(kind, "error").inc()
        raise
    else:
        RECONCILES.labels(kind, "ok").inc()
    finally:
        IN_FLIGHT.labels(kind).dec()
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)
