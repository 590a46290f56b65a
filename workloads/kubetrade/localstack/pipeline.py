"""The local pipeline, in the order a cluster would bring it up.

history -> evolution -> policies + risk manager + executor -> ledgers -> runners -> replay
collector (+ candle store) -> API, then a progress line until the stop, then an orderly
shutdown (runners first, so no order is left half-sent) and a summary.

Each stage is a small function over the shared :class:`Stack`; what a person needs to see
goes to the console, what a machine needs (endpoints, the summary) to ``state_dir``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml
from rich.console import Console

from kubetrade.localstack import control, report, services
from kubetrade.localstack import data as market
from kubetrade.localstack.manifests import ResourceSet
from kubetrade.localstack.servers.processes import ManagedProcess
from kubetrade.messaging import auth, codec, subjects
from kubetrade.messaging.schemas import StatusReport
from kubetrade.resources.strategy import Strategy
from kubetrade.runner.config import RunnerConfig, RunnerConfigError, parse
from kubetrade.runner.runner import Runner, RunnerOptions

log = logging.getLogger("kubetrade.localstack")


@dataclass
class PipelineOptions:
    state_dir: Path
    api_port: int
    duration: float | None = None
    speed: float | None = None
    live_days: float = 7.0
    population: int = 48
    generations: int = 4
    max_evolved: int = 3
    seed: int = 7
    evolve: bool = True


@dataclass
class StrategyEntry:
    strategy: Strategy
    origin: str
    """examples (the user's YAML) or evolved."""
    config: RunnerConfig | None = None
    problem: str | None = None
    runner: Runner | None = None

    @property
    def name(self) -> str:
        return str(self.strategy.metadata["name"])


@dataclass
class Stack:
    rs: ResourceSet
    opts: PipelineOptions
    console: Console
    nats_url: str
    dsn: str
    api_url: str = ""
    data: market.MarketData = field(default_factory=market.MarketData)
    entries: list[StrategyEntry] = field(default_factory=list)
    processes: list[ManagedProcess] = field(default_factory=list)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    policy_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    goal_sizing: dict[str, Any] = field(default_factory=dict)
    goal_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Goal status fields the evolution runs set (lastSelection, lastEvolution)."""
    replay_clock: int = 0
    replayed: int = 0
    replay_done: bool = False
    nc: Any = None
    collector_nc: Any = None
    dirty: set[tuple[str, str]] = field(default_factory=set)
    api_key_file: Path | None = None

    def ok(self, text: str) -> None:
        self.console.print(f"[green]✓[/green] {text}")

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]![/yellow] {text}")
        log.warning(text)


# --- stages -----------------------------------------------------------------------------------


async def load_history(stack: Stack) -> None:
    from kubetrade.storage.candles import ingest

    stack.data = market.load(stack.rs.collectors, stack.opts.live_days, stack.opts.speed)
    for p in stack.data.problems:
        stack.warn(p)
    rows = 0
    async with await psycopg.AsyncConnection.connect(stack.dsn, autocommit=True) as conn:
        for r in stack.data.replays:
            for key, c in r.history.items():
                rows += await ingest(conn, key, c)
    if stack.data.replays:
        first = min(int(c.time[0]) for r in stack.data.replays for c in r.live.values())
        stack.ok(f"history   {rows:,} candles stored; replay starts {report.when(first)} "
                 f"({stack.data.offered()})")


def check_strategies(stack: Stack, strategies: list[tuple[Strategy, str]]) -> None:
    """Each strategy either gets a runner config or a problem a person can act on."""
    for st, origin in strategies:
        entry = StrategyEntry(st, origin)
        spec = st.spec
        name = entry.name
        if spec.retired:
            entry.problem = "retired"
        elif spec.mode == "live":
            entry.problem = "mode live: not traded by kubetrade up (paper only, no exchange keys locally)"
        else:
            missing = [s for s in spec.symbols if not stack.data.provides(spec.exchange, s, spec.timeframe)]
            if missing:
                entry.problem = (f"spec.symbols: {', '.join(missing)} {spec.timeframe} on {spec.exchange} is not "
                                 f"provided by any collector (provided: {stack.data.offered()})")
            else:
                try:
                    entry.config = parse(st.to_k8s() | {"metadata": {**st.metadata, "namespace": "default"}},
                                         f"{origin}/{name}")
                except RunnerConfigError as exc:
                    entry.problem = str(exc)
        if entry.problem and entry.problem != "retired":
            stack.warn(f"Strategy/{name}: not started: {entry.problem}")
        stack.entries.append(entry)


def evolve_goals(stack: Stack) -> list[tuple[Strategy, str]]:
    """The Goals' evolution runs, with the very recipe and gate of the CronJob (:func:`run_goal_evolution`)."""
    from kubetrade.engine.publish import Candidate, store_selection, write_manifests
    from kubetrade.goalevolution.goalrun import GoalRunError, run_goal_evolution

    out: list[tuple[Strategy, str]] = []
    if not stack.opts.evolve:
        return out
    for goal in stack.rs.goals:
        name = goal.metadata["name"]
        evo = goal.spec.evolution
        available = stack.data.history_for(evo.exchange, evo.timeframe)
        if not available:
            stack.warn(f"Goal/{name}: no {evo.exchange} {evo.timeframe} candles from any collector; evolution skipped")
            continue
        started = datetime.now(UTC)
        with stack.console.status(f"Goal/{name}: evolving (population {stack.opts.population}, "
                                  f"{stack.opts.generations} generations)") as status:
            def progress(done: int, total: int, msg: str, status: Any = status, name: str = name) -> None:
                status.update(f"Goal/{name}: evolving - {msg}")

            try:
                run = run_goal_evolution(
                    name, goal.spec, available, seed=stack.opts.seed, progress=progress,
                    overrides={"population": stack.opts.population, "generations": stack.opts.generations,
                               "top": stack.opts.max_evolved},
                    capital_per_strategy=goal.spec.target.capital.amount / max(1, stack.opts.max_evolved))
            except (GoalRunError, ValueError) as exc:
                stack.warn(f"Goal/{name}: evolution failed: {exc}")
                continue
        chosen = ", ".join(run.symbols)
        picked = f"pair selection picked {chosen}" if run.pairs else f"symbols {chosen}"
        sel = run.selection
        line = (f"evolution Goal/{name}: {sel.trials} genomes tried over {len(run.walk.windows)} walk-forward "
                f"windows, {sel.candidates} scored out of sample; {picked}; {sel.message}")
        (stack.ok if run.strategies else stack.warn)(line)
        store_selection(stack.dsn, run.run_id, started, run.walk, run.config, run.data,
                        [Candidate(r.rank, run.walk.candidates[r.key].genome, r.evidence, r.strategy)
                         for r in run.ranked], goal=name)
        write_manifests(run.strategies, stack.opts.state_dir / "strategies")
        stack.goal_status[name] = run.goal_status()
        out += [(s, "evolved") for s in run.strategies]
    return out


async def start_services(stack: Stack) -> None:
    logs = stack.opts.state_dir / "logs"
    for p in stack.rs.policies:
        await services.publish_policy(stack.nc, "default", p.metadata["name"], p.spec)
    with stack.console.status("starting the risk manager and the paper executor"):
        stack.processes.append(await asyncio.to_thread(services.start_risk_manager, stack.nats_url, stack.dsn, logs))
        stack.processes.append(await asyncio.to_thread(services.start_executor, stack.nats_url, stack.dsn, logs))
    stack.ok(f"risk      risk manager and paper executor running ({len(stack.rs.policies)} RiskPolicy published); "
             f"logs in {logs}")


async def allocate(stack: Stack) -> None:
    from kubetrade.ledger import allocation, connection

    conn = await connection.connect(stack.dsn)
    try:
        for e in stack.entries:
            if e.config is not None:
                s = e.strategy.spec
                await allocation.allocate(conn, "paper", e.name, s.capital.amount, "default",
                                          s.risk_policy_ref.name, s.capital.currency)
    finally:
        await conn.close()
    names = {e.name for e in stack.entries if e.config is not None}
    deadline = time.monotonic() + 60
    while names and time.monotonic() < deadline:  # the risk manager re-reads the ledgers every second
        with contextlib.suppress(Exception):
            reply = await services.risk_metrics(stack.nc)
            if names <= {s for p in reply.portfolios for s in p.strategies}:
                return
        await asyncio.sleep(0.3)


async def start_runners(stack: Stack) -> list[asyncio.Task[None]]:
    tasks = []
    for e in stack.entries:
        if e.config is None:
            continue
        e.runner = Runner(e.config, stack.nats_url, stack.dsn,
                          RunnerOptions(probe_port=None, status_interval=5.0, status_min_interval=1.0))
        tasks.append(asyncio.create_task(e.runner.run(), name=f"runner-{e.name}"))
    for e in stack.entries:
        if e.runner is not None:
            await asyncio.wait_for(e.runner.started.wait(), 120)
    running = [e.name for e in stack.entries if e.runner is not None]
    stack.ok(f"runners   {len(running)} paper strategies: {', '.join(running) or 'none'}")
    return tasks


async def replay(stack: Stack, stop: asyncio.Event) -> None:
    from kubetrade.collector.health import Health, HealthReporter
    from kubetrade.collector.publish import Publisher
    from kubetrade.collector.publish import ensure_streams as ensure_md_streams
    from kubetrade.collector.replay import ReplayCollector

    nc = await _collector_connection(stack)
    js = nc.jetstream()
    await ensure_md_streams(js)

    class CountingPublisher(Publisher):
        async def publish(self, message: Any) -> None:
            await super().publish(message)
            stack.replayed += 1
            stack.replay_clock = max(stack.replay_clock, int(message.time))

    async def one(r: market.ReplayData) -> None:
        name = r.collector.metadata["name"]
        health = Health("default", name, "replay", r.collector.spec.provider)
        reporter = HealthReporter(nc, health)
        collector = ReplayCollector(r.live, r.exchange, CountingPublisher(js), health, speed=r.speed)
        task = asyncio.create_task(collector.run(stop))
        while not task.done():
            await reporter.report()
            await asyncio.wait([task], timeout=5)
        await reporter.report()
        task.result()

    await asyncio.gather(*(one(r) for r in stack.data.replays))
    stack.replay_done = True


async def store_candles(stack: Stack, stop: asyncio.Event) -> None:
    from kubetrade.collector.sink import Sink

    await Sink(await _collector_connection(stack), stack.dsn).run(stop)


async def _collector_connection(stack: Stack) -> Any:
    """The replay and its candle store connect as a collector would: market data is all they may publish."""
    import nats

    if stack.collector_nc is None:
        stack.collector_nc = await nats.connect(stack.nats_url, **auth.credentials("collector"),
                                                name="kubetrade-up-collector", max_reconnect_attempts=-1)
    return stack.collector_nc


async def serve_api(stack: Stack, port: int, stop: asyncio.Event) -> None:
    import uvicorn

    from kubetrade.api import create_app
    from kubetrade.api.commands import STOP_GRACE

    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=STOP_GRACE)  # open console streams end with the stop
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task


async def watch_status(stack: Stack) -> None:
    async def on_status(msg: Any) -> None:
        with contextlib.suppress(codec.BadMessage):
            r = codec.decode(StatusReport, msg.data)
            target = stack.statuses if r.kind == "Strategy" else stack.policy_status if r.kind == "RiskPolicy" else None
            if target is not None:
                target[r.name] = dict(r.status)
                stack.dirty.add((r.kind, r.name))

    await stack.nc.subscribe(subjects.STATUS_ALL, cb=on_status)


def _phase(e: StrategyEntry) -> dict[str, Any]:
    if e.config is not None:
        return {"phase": "Paper", "message": "paper trading under kubetrade up"}
    if e.problem == "retired":
        return {"phase": "Retired", "message": "retired"}
    if e.strategy.spec.mode == "live":
        return {"phase": "Pending", "message": e.problem}
    return {"phase": "Failed", "message": e.problem}


async def feed_status(stack: Stack, stop: asyncio.Event) -> None:
    """The operator's status feed, locally: reports -> the stored resources the API serves."""
    while True:
        for kind, name in list(stack.dirty):
            stack.dirty.discard((kind, name))
            source = stack.statuses if kind == "Strategy" else stack.policy_status
            fields = control.report_fields(kind, source.get(name, {}))
            if fields:
                with contextlib.suppress(Exception):
                    await control.write_status(stack.dsn, kind, name, fields)
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def size_goals(stack: Stack, stop: asyncio.Event) -> None:
    """The operator's Goal status work, locally: progress and the sizing multiplier the runners use."""
    from kubetrade.sizing.goal import goal_sizing

    peaks: dict[str, float] = {}
    while not stop.is_set():
        if stack.replay_clock:
            now = datetime.fromtimestamp(stack.replay_clock / 1000, UTC)
            first = min((int(c.time[0]) for r in stack.data.replays for c in r.live.values()), default=0)
            start = datetime.fromtimestamp(first / 1000, UTC).date()
            for goal in stack.rs.goals:
                name = goal.metadata["name"]
                counted = [e for e in stack.entries if e.runner is not None and
                           (e.strategy.metadata.get("labels") or {}).get("kubetrade.io/goal") == name]
                pnl = sum(stack.statuses.get(e.name, {}).get("pnl", 0.0) for e in counted)
                equity = goal.spec.target.capital.amount + pnl
                peaks[name] = max(peaks.get(name, equity), equity)
                policy = next((p.spec for p in stack.rs.policies
                               if p.metadata["name"] == goal.spec.risk_policy_ref.name), None)
                s = goal_sizing(goal.spec.target, equity, peaks[name], now, goal.spec.target.start_date or start,
                                max_multiplier=goal.spec.max_sizing_multiplier,
                                policy_max_drawdown=policy.portfolio_limits.max_drawdown_pct if policy else None)
                stack.goal_sizing[name] = {"equity": equity, "multiplier": s.multiplier, "state": s.state,
                                           "explanation": s.explanation, "strategies": len(counted)}
                with contextlib.suppress(Exception):
                    await services.publish_goal_multiplier(stack.nc, "default", name, s.multiplier, s.explanation)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5)


async def show_progress(stack: Stack, stop: asyncio.Event, every: float = 10.0) -> None:
    announced = False
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        if stop.is_set():
            break
        stack.console.print(await report.progress_line(stack))
        if stack.replay_done and not announced:
            announced = True
            stack.console.print("replay finished: the API keeps serving; press Ctrl-C to stop")


def write_resources(stack: Stack) -> Path:
    """The effective resources (the user's and the evolved ones), as ``kubectl get -o yaml`` would show them."""
    folder = stack.opts.state_dir / "resources"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    docs = [*(p.to_k8s() for p in stack.rs.policies), *(g.to_k8s() for g in stack.rs.goals),
            *(c.to_k8s() for c in stack.rs.collectors), *(e.strategy.to_k8s() for e in stack.entries)]
    for d in docs:
        d.setdefault("metadata", {})["namespace"] = "default"
        (folder / f"{d['kind'].lower()}-{d['metadata']['name']}.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    return folder


async def run_pipeline(stack: Stack, stop: asyncio.Event, on_api: Callable[[str], None] | None = None) -> None:
    import nats

    from kubetrade.messaging.streams import ensure_streams

    stack.nc = await nats.connect(stack.nats_url, **auth.credentials("operator"), name="kubetrade-up",
                                  max_reconnect_attempts=-1)
    await ensure_streams(stack.nc.jetstream())
    background: list[asyncio.Task[Any]] = []
    runner_tasks: list[asyncio.Task[None]] = []
    try:
        await load_history(stack)
        evolved = await asyncio.to_thread(evolve_goals, stack)
        if stop.is_set():  # Ctrl-C during the evolution: nothing was started yet
            return
        check_strategies(stack, [(s, "examples") for s in stack.rs.strategies] + evolved)
        write_resources(stack)
        await control.store_resources(stack.dsn, [*(p.to_k8s() for p in stack.rs.policies),
                                                  *(g.to_k8s() for g in stack.rs.goals),
                                                  *(c.to_k8s() for c in stack.rs.collectors),
                                                  *(e.strategy.to_k8s() for e in stack.entries)])
        for e in stack.entries:
            evidence = e.strategy.status.to_k8s() if e.strategy.status is not None else {}
            selected = {k: v for k, v in evidence.items() if k in ("backtest", "evidence")}
            await control.write_status(stack.dsn, "Strategy", e.name, selected | _phase(e))
        for goal_name, fields in stack.goal_status.items():
            await control.write_status(stack.dsn, "Goal", goal_name, fields)
        stack.api_key_file = await control.local_api_key(stack.dsn, stack.opts.state_dir)
        await start_services(stack)
        await allocate(stack)
        await watch_status(stack)
        runner_tasks = await start_runners(stack)
        if on_api:
            on_api(stack.api_url)
        background = [asyncio.create_task(c) for c in (
            replay(stack, stop), store_candles(stack, stop), serve_api(stack, int(stack.api_url.rsplit(":", 1)[1]),
                                                                        stop),
            size_goals(stack, stop), show_progress(stack, stop), feed_status(stack, stop))]
        report.where_to_look(stack)
        await stop.wait()
    finally:
        stack.console.print("stopping: runners first (no order is left half-sent)")
        for e in stack.entries:
            if e.runner is not None:
                e.runner.stopping.set()
        if runner_tasks:
            done, _ = await asyncio.wait(runner_tasks, timeout=60)
            for t in done:
                if t.exception() is not None:
                    stack.warn(f"runner {t.get_name()} failed: {t.exception()!r}")
        await asyncio.sleep(0.5)  # the runners' last reports reach the status feed
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
        with contextlib.suppress(Exception):
            summary = await report.final_summary(stack)
            (stack.opts.state_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        for p in reversed(stack.processes):
            await asyncio.to_thread(p.stop, 30.0)
        with contextlib.suppress(Exception):
            await stack.nc.drain()
        if stack.collector_nc is not None:
            with contextlib.suppress(Exception):
                await stack.collector_nc.drain()
