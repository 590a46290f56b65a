"""The goal manager's loop: read the resources, compute each goal's figures, publish and report them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from kubetrade.cluster import ResourceStore, StoreError
from kubetrade.lifecycle.goalfigures import GoalFigures, goal_figures
from kubetrade.messaging import codec, kv, subjects
from kubetrade.messaging.schemas import StatusReport
from kubetrade.resources.goal import GoalSpec
from kubetrade.resources.riskpolicy import RiskPolicySpec

log = logging.getLogger("kubetrade.goalmanager")

Clock = Callable[[], datetime]
StartOf = Callable[[dict[str, Any]], date | None]


def wall_clock() -> datetime:
    return datetime.now(UTC)


class GoalManager:
    """Every ``interval`` seconds, the figures of every Goal the store holds.

    ``clock`` is the time the figures are computed at (the wall clock; ``kubetrade up`` passes
    its replay clock).  ``start_of`` may name where a goal's target path starts when its spec
    does not (``kubetrade up``: the first replayed day); by default the Goal's creation day.
    """

    def __init__(self, store: ResourceStore, nc: Any, interval: float = 10.0, clock: Clock = wall_clock,
                 start_of: StartOf | None = None) -> None:
        self.store = store
        self.nc = nc
        self.interval = interval
        self.clock = clock
        self.start_of = start_of
        self.peaks: dict[tuple[str, str], float] = {}
        self.figures: dict[tuple[str, str], GoalFigures] = {}
        self.stopping = asyncio.Event()
        self.rounds = 0
        self.beat: Callable[[], None] = lambda: None
        """Called each time the loop turns (the liveness probe's heartbeat)."""
        self.last_round: float | None = None
        """monotonic time of the last round that read every Goal and published its figures."""
        self.last_error = ""

    async def compute(self) -> dict[tuple[str, str], GoalFigures]:
        """One round: the figures of every Goal whose strategies have reported a PnL."""
        now = self.clock()
        goals = await self.store.list_all("goals")
        strategies: dict[str, list[dict[str, Any]]] = {}
        policies: dict[tuple[str, str], RiskPolicySpec | None] = {}
        out: dict[tuple[str, str], GoalFigures] = {}
        for goal in goals:
            meta = goal["metadata"]
            ns, name = meta.get("namespace") or "default", meta["name"]
            try:
                spec = GoalSpec.model_validate(goal.get("spec") or {})
            except ValidationError:
                continue  # the operator says what is wrong with it, in its status
            start = self.start_of(goal) if self.start_of is not None else None
            if start is not None and spec.target.start_date is None:
                spec = spec.model_copy(update={"target": spec.target.model_copy(update={"start_date": start})})
            if ns not in strategies:
                strategies[ns] = await self.store.list("strategies", ns)
            ref = (ns, spec.risk_policy_ref.name)
            if ref not in policies:
                policies[ref] = await self._policy(*ref)
            figures = goal_figures(spec, goal, strategies[ns], now, policies[ref], self.peaks.get((ns, name)))
            if figures is not None:
                self.peaks[(ns, name)] = figures.peak_equity
                out[(ns, name)] = figures
        self.figures = out
        return out

    async def _policy(self, namespace: str, name: str) -> RiskPolicySpec | None:
        try:
            body = await self.store.get("riskpolicies", namespace, name)
            return RiskPolicySpec.model_validate(body.get("spec") or {})
        except (StoreError, ValidationError):
            return None

    async def publish(self, figures: dict[tuple[str, str], GoalFigures]) -> None:
        """The multiplier where the goal's runners read it, and the figures for the Goal's status."""
        bucket = await kv.goal_sizing_bucket(self.nc.jetstream())
        for (ns, name), f in figures.items():
            entry = kv.GoalSizingEntry(multiplier=f.sizing_multiplier, detail=f.sizing_explanation[:500])
            await bucket.put(kv.goal_sizing_key(ns, name), kv.encode(entry))
            report = StatusReport(kind="Goal", namespace=ns, name=name, status=f.status(),
                                  time=int(time.time() * 1000))
            await self.nc.publish(subjects.status_report("Goal", ns, name), codec.encode(report))

    async def round(self) -> dict[tuple[str, str], GoalFigures]:
        figures = await self.compute()
        await self.publish(figures)
        self.rounds += 1
        self.last_round = time.monotonic()
        self.last_error = ""
        return figures

    def readiness(self) -> list[str]:
        """What keeps the goal figures from being current (empty: ready); the pod's ``/readyz``."""
        missing = []
        if self.nc is None or not self.nc.is_connected:
            missing.append("nats: not connected")
        stale = max(30.0, 3 * self.interval)
        if self.last_round is None:
            missing.append("starting: no round of the goals' figures yet"
                           + (f" ({self.last_error})" if self.last_error else ""))
        elif time.monotonic() - self.last_round > stale:
            missing.append(f"goals: no round for {time.monotonic() - self.last_round:.0f}s"
                           + (f" ({self.last_error})" if self.last_error else ""))
        return missing

    async def run(self) -> None:
        log.info("goal manager ready", extra={"interval": self.interval})
        while not self.stopping.is_set():
            self.beat()
            try:
                await self.round()
            except (StoreError, OSError) as exc:
                self.last_error = f"resources unreadable: {str(exc)[:200]}"
                log.warning("goal figures not computed this round", extra={"error": str(exc)[:300]})
            except Exception as exc:  # a NATS hiccup: the next round publishes again
                self.last_error = f"not published: {type(exc).__name__}"
                log.warning("goal figures not published this round", extra={"error": repr(exc)[:300]})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.interval)
