"""Collector health: last sample time, lag, counts - as Prometheus metrics and as a KV record.

The same numbers go three ways: Prometheus gauges/counters (alerting on stale data), a
:class:`CollectorHealth` record in the ``collector-health`` KV bucket (read by the API's
``/health/collectors`` and by the risk manager to refuse trading on stale data), and a
``StatusReport`` that the operator merges into the Collector's status.  Metric labels
are the collector's identity only - never a key, a URL or an error text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge

from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import CollectorHealth, StatusReport

log = logging.getLogger("kubetrade.collector.health")

_LABELS = ("namespace", "collector", "source", "provider")
SAMPLES = Counter("kubetrade_collector_samples", "Samples published by a collector", _LABELS)
ERRORS = Counter("kubetrade_collector_errors", "Errors seen by a collector (each retried)", _LABELS)
LAST_SAMPLE = Gauge("kubetrade_collector_last_sample_timestamp_seconds",
                    "Time of the newest sample a collector published", _LABELS)
LAG = Gauge("kubetrade_collector_lag_seconds", "How far the newest sample is behind now", _LABELS)
UP = Gauge("kubetrade_collector_running", "1 while the collector is Running, 0 otherwise", _LABELS)


def wall_ms() -> int:
    return int(time.time() * 1000)


class Health:
    """Mutable health of one collector; cheap to update on every sample."""

    def __init__(self, namespace: str, name: str, source: str, provider: str,
                 clock: Callable[[], int] = wall_ms) -> None:
        self.namespace, self.name, self.source, self.provider = namespace, name, source, provider
        self.clock = clock
        self.phase: str = "Pending"
        self.reason = ""
        self.last_sample_ms: int | None = None
        self.samples = 0
        self.errors = 0
        self.last_error: str | None = None
        self._labels = {"namespace": namespace, "collector": name, "source": source, "provider": provider}

    def set_phase(self, phase: str, reason: str = "") -> None:
        self.phase, self.reason = phase, reason
        UP.labels(**self._labels).set(1 if phase == "Running" else 0)

    def sample(self, sample_time_ms: int, count: int = 1, *, end_ms: int | None = None) -> None:
        """Record ``count`` samples; ``end_ms`` is when the newest one was complete (candle close)."""
        self.samples += count
        SAMPLES.labels(**self._labels).inc(count)
        newest = end_ms if end_ms is not None else sample_time_ms
        if self.last_sample_ms is None or newest > self.last_sample_ms:
            self.last_sample_ms = newest
            LAST_SAMPLE.labels(**self._labels).set(newest / 1000)

    def error(self, exc: BaseException | str) -> None:
        self.errors += 1
        ERRORS.labels(**self._labels).inc()
        # The class and message of an exception from ccxt/httpx; URLs carry no keys because
        # every provider here sends its key in a header, and the message is cut short.
        self.last_error = exc if isinstance(exc, str) else f"{type(exc).__name__}: {str(exc)[:300]}"

    def lag_seconds(self) -> float | None:
        if self.last_sample_ms is None:
            return None
        lag = max(0.0, (self.clock() - self.last_sample_ms) / 1000)
        LAG.labels(**self._labels).set(lag)
        return lag

    def snapshot(self) -> CollectorHealth:
        return CollectorHealth(
            namespace=self.namespace, name=self.name, source=self.source, provider=self.provider,
            phase=self.phase,
            reason=self.reason, last_sample_time=self.last_sample_ms, lag_seconds=self.lag_seconds(),
            samples_total=self.samples, error_count=self.errors, last_error=self.last_error, time=self.clock(),
        )

    def status_fields(self) -> dict[str, object]:
        """The Collector status fields this workload owns (camelCase, as in the CRD)."""
        snap = self.snapshot()
        fields: dict[str, object] = {"samplesTotal": snap.samples_total, "errorCount": snap.error_count}
        if snap.last_sample_time is not None:
            fields["lastSampleTime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(snap.last_sample_time / 1000))
            fields["lagSeconds"] = snap.lag_seconds
        if snap.last_error:
            fields["lastError"] = snap.last_error
        return fields


class HealthReporter:
    """Writes the health record to KV and a status report to the operator, tolerating NATS outages."""

    def __init__(self, nc: Any, health: Health) -> None:
        self.nc = nc
        self.health = health
        self._kv: Any = None

    async def report(self) -> None:
        h = self.health
        try:
            if self._kv is None:
                js = self.nc.jetstream()
                try:
                    self._kv = await js.key_value(subjects.COLLECTOR_HEALTH_BUCKET)
                except Exception:
                    self._kv = await js.create_key_value(bucket=subjects.COLLECTOR_HEALTH_BUCKET, history=1)
            await self._kv.put(subjects.collector_health_key(h.namespace, h.name), codec.encode(h.snapshot()))
            report = StatusReport(kind="Collector", namespace=h.namespace, name=h.name,
                                  status=h.status_fields(), time=h.clock())
            await self.nc.publish(subjects.status_report("Collector", h.namespace, h.name), codec.encode(report))
        except Exception as exc:  # health must never take the collector down
            log.warning("health report failed", extra={"error": type(exc).__name__})
