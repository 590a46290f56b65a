"""What one ``kubetrade up`` run holds: its options, its resources, its running parts and what they saw."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from kubetrade.cluster.database import DatabaseStore
from kubetrade.goalmanager.manager import GoalManager
from kubetrade.localstack import data as market
from kubetrade.localstack.cluster import LocalCluster, RunnerPods
from kubetrade.localstack.manifests import ResourceSet
from kubetrade.localstack.supervisor import Drained, Supervisor

log = logging.getLogger("kubetrade.localstack")
NAMESPACE = "default"


@dataclass
class PipelineOptions:
    state_dir: Path
    api_port: int = 8000
    duration: float | None = None
    """Stop after this many seconds (for scripted runs); None runs until Ctrl-C."""
    speed: float | None = None
    """Replay speed; None takes each replay Collector's own."""
    live_days: float = 7.0
    population: int = 48
    generations: int = 4
    max_evolved: int = 3
    seed: int = 7
    evolve: bool = True


@dataclass
class Stack:
    rs: ResourceSet
    opts: PipelineOptions
    console: Console
    nats_url: str
    dsn: str
    api_url: str = ""
    data: market.MarketData = field(default_factory=market.MarketData)
    origins: dict[str, str] = field(default_factory=dict)
    """Strategy name -> examples (the user's YAML) or evolved."""
    supervisor: Supervisor = field(default_factory=Supervisor)
    store: DatabaseStore | None = None
    cluster: LocalCluster | None = None
    pods: RunnerPods | None = None
    goals: GoalManager | None = None
    replay_clock: int = 0
    replayed: int = 0
    replay_done: bool = False
    nc: Any = None
    collector_nc: Any = None
    """The replay and candle store's connection (the collector role)."""
    goal_nc: Any = None
    """The goal manager's connection (its own role)."""
    api_key_file: Path | None = None
    drained: Drained | None = None
    problems: list[str] = field(default_factory=list)
    """What went wrong while running (the exit code says so)."""

    def ok(self, text: str) -> None:
        self.console.print(f"[green]✓[/green] {text}")

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]![/yellow] {text}")
        log.warning(text)

    @property
    def replay_start(self) -> date | None:
        first = min((int(c.time[0]) for r in self.data.replays for c in r.live.values()), default=None)
        return None if first is None else datetime.fromtimestamp(first / 1000, UTC).date()

    def replay_now(self) -> datetime:
        """The local stack's clock: the replay's, once it has begun (the candles are history)."""
        if self.replay_clock:
            return datetime.fromtimestamp(self.replay_clock / 1000, UTC)
        return datetime.now(UTC)
