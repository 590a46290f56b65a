"""Health probes and Prometheus metrics on one port (the pod's ``metrics`` port, 9090).

``/healthz`` (readiness) is 200 once the strategy is warmed up and connected, 503 with the
reason otherwise; ``/livez`` is 200 while the main loop keeps turning (a wedged loop gets
the pod restarted); ``/metrics`` is the Prometheus text format of the runner's own registry
(one registry per runner, so several runners can share a process under ``kubetrade up``).
A plain asyncio server: three fixed routes do not need a web framework in every pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest


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
        self.orders = Counter("kubetrade_runner_orders", "Terminal order states", ["strategy", "status"], registry=r)
        self.strategy = strategy


class Probes:
    def __init__(self, metrics: RunnerMetrics, ready: Callable[[], str | None], stall_seconds: float = 120.0) -> None:
        self.metrics = metrics
        self.ready = ready
        """Returns None when ready, else the reason it is not."""
        self.stall_seconds = stall_seconds
        self.heartbeat = time.monotonic()
        self._server: asyncio.base_events.Server | None = None

    def beat(self) -> None:
        self.heartbeat = time.monotonic()

    async def start(self, port: int, host: str = "0.0.0.0") -> int:
        self._server = await asyncio.start_server(self._handle, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def respond(self, path: str) -> tuple[int, str, bytes]:
        if path == "/healthz":
            reason = self.ready()
            return (200, "text/plain", b"ok\n") if reason is None else (503, "text/plain", f"{reason}\n".encode())
        if path == "/livez":
            age = time.monotonic() - self.heartbeat
            if age > self.stall_seconds:
                return 503, "text/plain", f"main loop stalled for {age:.0f}s\n".encode()
            return 200, "text/plain", b"ok\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry)
        return 404, "text/plain", b"not found\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode(errors="replace").split()
            status, ctype, body = self.respond(parts[1].split("?")[0] if len(parts) > 1 else "/")
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
