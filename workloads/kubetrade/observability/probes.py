"""Health probes and Prometheus metrics on one port: the same three paths for every role.

* ``/healthz`` (and its older name ``/livez``): **alive**. 200 while the role's main loop
  keeps turning (it calls :meth:`ProbeServer.beat`); 503 once it has not for
  ``stall_seconds`` - a wedged loop gets the pod restarted by the liveness probe.  That the
  server answers at all says the event loop runs.
* ``/readyz``: **ready**. 200 when every dependency the role needs is there, else 503
  with one line per missing one (``nats: disconnected``, ``database: unreachable for
  12s``, ``lease: held by another executor``...), so ``kubectl describe pod`` shows why a
  pod is not Ready.  The role supplies the checks; they read state it keeps anyway (no
  query per probe).
* ``/metrics``: the Prometheus text format of a registry (the process's default one, or a
  runner's own).

A plain asyncio server: three fixed routes do not need a web framework in every pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from kubetrade.observability.metrics import METRICS_PORT_ENV

Checks = Callable[[], list[str]]
"""Returns what is missing, one short line each; empty when ready."""

_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


class ProbeServer:
    def __init__(self, checks: Checks, registry: CollectorRegistry = REGISTRY, stall_seconds: float = 120.0) -> None:
        self.checks = checks
        self.registry = registry
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
            self._server = None

    def missing(self) -> list[str]:
        try:
            return self.checks()
        except Exception as exc:  # a probe reports, it never raises
            return [f"readiness check failed: {type(exc).__name__}: {exc}"]

    def respond(self, path: str) -> tuple[int, str, bytes]:
        if path == "/readyz":
            missing = self.missing()
            if missing:
                return 503, "text/plain", ("".join(f"{m}\n" for m in missing)).encode()
            return 200, "text/plain", b"ok\n"
        if path in ("/healthz", "/livez"):
            age = time.monotonic() - self.heartbeat
            if age > self.stall_seconds:
                return 503, "text/plain", f"main loop stalled for {age:.0f}s\n".encode()
            return 200, "text/plain", b"ok\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        return 404, "text/plain", b"not found\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode(errors="replace").split()
            status, ctype, body = self.respond(parts[1].split("?")[0] if len(parts) > 1 else "/")
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


def port_from_env() -> int | None:
    """``$KUBETRADE_METRICS_PORT``, the port the chart gives every workload (None when unset)."""
    raw = os.environ.get(METRICS_PORT_ENV, "").strip()
    return int(raw) if raw else None
