"""The local supervisor: what a Deployment does for the risk manager and the executor in a cluster.

``kubetrade up`` runs the risk manager and the paper executor as processes of their own (their
own CLIs, as their pods would).  The supervisor watches them: one that dies is started again
after a back-off (1, 2, 5, 10, 30 s, reset after a minute of running, like the kubelet's
CrashLoopBackOff), its deaths and restarts are counted for the progress line and the summary,
and it gives up - saying so - after :data:`MAX_RESTARTS` deaths in a row.

Before the stack stops, :func:`drain_orders` waits until the executor has taken every approved
order from the ``ORDERS`` stream and the order record holds none still live; what remains after
the wait is reported, and ``kubetrade up`` exits non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubetrade.ledger import connection, queries
from kubetrade.localstack.servers.processes import ManagedProcess

log = logging.getLogger("kubetrade.localstack.supervisor")

BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
STEADY_SECONDS = 60.0
MAX_RESTARTS = 10
"""Deaths in a row (each within STEADY_SECONDS of its start) after which a service is given up."""


@dataclass
class Service:
    """One supervised process and its record."""

    name: str
    start: Callable[[], ManagedProcess]
    """Starts the process and waits until it is ready (raises if it does not get there)."""
    process: ManagedProcess | None = None
    started_at: float = 0.0
    restarts: int = 0
    crashes: int = 0
    exits: list[int | None] = field(default_factory=list)
    state: str = "starting"
    """starting, running, restarting, failed (given up) or stopped."""
    last_error: str = ""


class Supervisor:
    def __init__(self, say: Callable[[str], None] | None = None, backoff: tuple[float, ...] = BACKOFF,
                 max_restarts: int = MAX_RESTARTS, steady_seconds: float = STEADY_SECONDS) -> None:
        self.backoff = backoff
        self.max_restarts = max_restarts
        self.steady_seconds = steady_seconds
        self.services: list[Service] = []
        self.say = say or (lambda text: log.warning(text))
        self.stopping = False
        self._task: asyncio.Task[None] | None = None

    async def add(self, name: str, start: Callable[[], ManagedProcess]) -> Service:
        service = Service(name, start)
        service.process = await asyncio.to_thread(start)
        service.started_at = time.monotonic()
        service.state = "running"
        self.services.append(service)
        return service

    def watch(self, every: float = 0.5) -> None:
        self._task = asyncio.create_task(self._watch(every), name="supervisor")

    async def _watch(self, every: float) -> None:
        restarting: set[asyncio.Task[None]] = set()
        try:
            while not self.stopping:
                for service in self.services:
                    if service.state == "running" and service.process is not None and not service.process.running:
                        service.state = "restarting"  # one restart at a time per service; the others go on
                        task = asyncio.create_task(self._restart(service), name=f"restart-{service.name}")
                        restarting.add(task)
                        task.add_done_callback(restarting.discard)
                await asyncio.sleep(every)
        finally:
            for task in list(restarting):
                task.cancel()

    async def _restart(self, service: Service) -> None:
        proc = service.process
        code = proc.proc.returncode if proc is not None and proc.proc is not None else None
        service.exits.append(code)
        if proc is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(proc.stop, 5.0)  # reap the group, close its log
        if time.monotonic() - service.started_at >= self.steady_seconds:
            service.crashes = 0
        service.crashes += 1
        if service.crashes > self.max_restarts:
            service.state = "failed"
            self.say(f"{service.name} died {service.crashes} times in a row (last exit {code}); given up")
            return
        delay = self.backoff[min(service.crashes - 1, len(self.backoff) - 1)]
        service.state = "restarting"
        self.say(f"{service.name} died (exit {code}); restarting in {delay:g}s (restart {service.restarts + 1})")
        await asyncio.sleep(delay)
        if self.stopping:
            service.state = "stopped"
            return
        try:
            service.process = await asyncio.to_thread(service.start)
        except Exception as exc:  # did not get ready: counts as a death, backs off further
            service.last_error = str(exc)[-500:]
            service.process = None
            service.started_at = time.monotonic()
            service.restarts += 1
            await self._restart(service)
            return
        service.started_at = time.monotonic()
        service.restarts += 1
        service.state = "running"
        self.say(f"{service.name} restarted (restart {service.restarts})")

    def line(self) -> str:
        """For the progress line: only what is not plainly running."""
        parts = [f"{s.name} {s.state}" + (f" ({s.restarts} restarts)" if s.restarts else "")
                 for s in self.services if s.state != "running" or s.restarts]
        return ", ".join(parts)

    def record(self) -> list[dict[str, Any]]:
        return [{"name": s.name, "state": s.state, "restarts": s.restarts, "exits": s.exits,
                 "lastError": s.last_error or None} for s in self.services]

    @property
    def failed(self) -> list[str]:
        return [s.name for s in self.services if s.state == "failed"]

    async def stop(self, grace: float = 30.0) -> None:
        """Stop watching, then stop every process (last started first)."""
        self.stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for service in reversed(self.services):
            if service.process is not None:
                await asyncio.to_thread(service.process.stop, grace)
            if service.state != "failed":
                service.state = "stopped"


@dataclass
class Drained:
    """What was left of the order path when the stack stopped."""

    pending_in_stream: int = 0
    """Approved orders the executor had not taken from ORDERS (or not acknowledged)."""
    live_orders: list[str] = field(default_factory=list)
    """Recorded orders still pending, open or partly filled: their outcome is unknown."""
    error: str | None = None

    @property
    def clean(self) -> bool:
        return self.error is None and self.pending_in_stream == 0 and not self.live_orders

    def describe(self) -> str:
        if self.error is not None:
            return f"the order path could not be checked: {self.error}"
        parts = []
        if self.pending_in_stream:
            parts.append(f"{self.pending_in_stream} approved order(s) never processed by the executor")
        if self.live_orders:
            shown = ", ".join(self.live_orders[:5]) + (" ..." if len(self.live_orders) > 5 else "")
            parts.append(f"{len(self.live_orders)} order(s) still live in the record ({shown})")
        return "; ".join(parts) or "every approved order was processed"


async def order_backlog(js: Any, environment: str = "paper") -> int:
    """Approved orders in ``ORDERS`` the executor's consumer has not yet acknowledged."""
    info = await js.consumer_info("ORDERS", f"executor-{environment}-push")
    return int(info.num_pending or 0) + int(info.num_ack_pending or 0)


async def drain_orders(js: Any, dsn: str, within: float = 60.0, environment: str = "paper") -> Drained:
    """Wait until the executor has processed every approved order (the stream empty of them, no
    live market order in the record); return what is left after ``within`` seconds.

    Limit orders may rest by design: only orders of type ``market`` count as unprocessed."""
    deadline = time.monotonic() + within
    out = Drained()
    conn = await connection.connect(dsn)
    try:
        while True:
            try:
                out.pending_in_stream = await order_backlog(js, environment)
                live = await queries.live_orders(conn, environment)
                out.live_orders = [r["client_order_id"] for r in live if r["type"] == "market"]
                out.error = None
            except Exception as exc:  # the consumer not created yet, NATS gone: say so rather than guess
                out.error = f"{type(exc).__name__}: {exc}"
            if out.clean or time.monotonic() >= deadline:
                return out
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
