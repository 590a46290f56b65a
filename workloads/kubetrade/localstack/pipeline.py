"""The local pipeline, in the order a cluster would bring it up, run by the operator's own code.

history -> evolution -> the resources into the local store -> risk manager + executor (supervised
processes) -> the operator's reconcilers over a local cluster (policies published, a runner task
per Strategy Deployment, the status feed, the Goal review) and the goal manager -> replay
collector (+ candle store) -> API, then a progress line until the stop, then an orderly shutdown
(runners first, so no order is left half-sent; then the ORDERS stream drained) and a summary.

What a person needs to see goes to the console, what a machine needs (endpoints, the summary)
to ``state_dir``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import psycopg
import uvicorn
import yaml
from psycopg_pool import AsyncConnectionPool

from kubetrade.api import create_app
from kubetrade.api.commands import STOP_GRACE
from kubetrade.cluster import Conflict
from kubetrade.cluster.database import DatabaseStore
from kubetrade.collector.health import Health, HealthReporter
from kubetrade.collector.publish import Publisher
from kubetrade.collector.publish import ensure_streams as ensure_md_streams
from kubetrade.collector.replay import ReplayCollector
from kubetrade.collector.sink import Sink
from kubetrade.engine.publish import write_manifests
from kubetrade.goalevolution import outcome
from kubetrade.goalevolution.goalrun import GoalRun, GoalRunError, run_goal_evolution
from kubetrade.goalmanager.manager import GoalManager
from kubetrade.ledger import allocation, connection
from kubetrade.localstack import apikey, report, services
from kubetrade.localstack import data as market
from kubetrade.localstack.cluster import LocalCluster, RunnerPods
from kubetrade.localstack.stack import NAMESPACE, PipelineOptions, Stack
from kubetrade.localstack.supervisor import drain_orders
from kubetrade.messaging import auth, subjects
from kubetrade.messaging.streams import ensure_streams
from kubetrade.resources import BY_KIND
from kubetrade.resources.strategy import Strategy
from kubetrade.runner.config import RunnerConfig
from kubetrade.storage.candles import ingest
from kubetrade_operator import goals, riskpolicies, statusfeed, strategies

__all__ = ["PipelineOptions", "Stack", "run_pipeline"]

log = logging.getLogger("kubetrade.localstack")
CONTROL_PERIOD = 5.0
"""Seconds between two reconciles of every Strategy and Goal (the operator's resync, shortened)."""


# --- stages -----------------------------------------------------------------------------------


async def load_history(stack: Stack) -> None:
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


def evolve_goals(stack: Stack) -> dict[str, GoalRun]:
    """The Goals' evolution runs, with the very recipe and gate of the CronJob (:func:`run_goal_evolution`),
    each stored as the CronJob's job stores it (:func:`outcome.store`)."""
    out: dict[str, GoalRun] = {}
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
        line = (f"evolution Goal/{name}: {run.tried()} over {len(run.walk.windows)} walk-forward "
                f"windows, {sel.candidates} scored out of sample; {picked}; {sel.message}")
        (stack.ok if run.strategies else stack.warn)(line)
        outcome.store(stack.dsn, run, started, name)
        write_manifests(run.strategies, stack.opts.state_dir / "strategies")
        out[name] = run
    return out


def manifests(stack: Stack, evolved: list[Strategy]) -> list[dict[str, Any]]:
    """Every resource of the run as ``kubectl apply`` would send it: the user's and the evolved."""
    for s in stack.rs.strategies:
        stack.origins[s.metadata["name"]] = "examples"
    for s in evolved:
        stack.origins[s.metadata["name"]] = "evolved"
    docs = [*(p.to_k8s() for p in stack.rs.policies), *(g.to_k8s() for g in stack.rs.goals),
            *(c.to_k8s() for c in stack.rs.collectors), *(s.to_k8s() for s in [*stack.rs.strategies, *evolved])]
    for d in docs:
        d.setdefault("metadata", {})["namespace"] = NAMESPACE
        d.pop("status", None)  # what a workload reported elsewhere is not this run's
    return docs


async def store_resources(stack: Stack, docs: list[dict[str, Any]]) -> None:
    """The user's resources, as ``kubectl apply`` creates them (the evolved ones come from :func:`record_runs`)."""
    assert stack.store is not None
    for d in docs:
        if stack.origins.get(d["metadata"]["name"]) == "evolved" and d["kind"] == "Strategy":
            continue
        with contextlib.suppress(Conflict):
            await stack.store.create(BY_KIND[d["kind"]].plural, NAMESPACE, d)
    for st in stack.rs.strategies:
        # the selection evidence a manifest of `kubetrade evolve` carries in its status (what the review reads)
        carried = {k: v for k, v in (st.status.to_k8s() if st.status is not None else {}).items()
                   if k in ("backtest", "evidence")}
        if carried:
            await stack.store.patch_status("strategies", NAMESPACE, st.metadata["name"], carried)


async def record_runs(stack: Stack, runs: dict[str, GoalRun]) -> None:
    """Each evolution run's Strategies (their evidence in status), its Goal's status and Event, as the
    CronJob's job leaves them (:func:`outcome.record`)."""
    assert stack.store is not None and stack.cluster is not None
    for name, run in runs.items():
        goal = await stack.store.get("goals", NAMESPACE, name)
        await outcome.record(stack.store, goal, run)
        stack.cluster.event(goal, *run.event())


def write_resources(stack: Stack, docs: list[dict[str, Any]]) -> Path:
    """The effective resources (the user's and the evolved ones), as ``kubectl get -o yaml`` would show them."""
    folder = stack.opts.state_dir / "resources"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    for d in docs:
        (folder / f"{d['kind'].lower()}-{d['metadata']['name']}.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    return folder


async def start_services(stack: Stack) -> None:
    logs = stack.opts.state_dir / "logs"
    with stack.console.status("starting the risk manager and the paper executor"):
        await stack.supervisor.add("risk-manager",
                                   lambda: services.start_risk_manager(stack.nats_url, stack.dsn, logs))
        await stack.supervisor.add("executor-paper", lambda: services.start_executor(stack.nats_url, stack.dsn, logs))
    stack.supervisor.watch()
    stack.ok(f"risk      risk manager and paper executor running (supervised: restarted if they die); logs in {logs}")


def refusal(stack: Stack) -> Callable[[dict[str, Any]], tuple[str, str] | None]:
    """What this machine will not run of a Strategy (the reconciler reports it in the Strategy's status)."""

    def refused(doc: dict[str, Any]) -> tuple[str, str] | None:
        spec = doc.get("spec") or {}
        if spec.get("mode") == "live":
            return "NotRunHere", "mode live: not traded by kubetrade up (paper only, no exchange keys locally)"
        exchange, timeframe = spec.get("exchange", "binance"), spec.get("timeframe", "")
        missing = [s for s in spec.get("symbols") or [] if not stack.data.provides(exchange, s, timeframe)]
        if missing:
            return "NoData", (f"spec.symbols: {', '.join(missing)} {timeframe} on {exchange} is not provided by any "
                              f"collector (provided: {stack.data.offered()})")
        return None

    return refused


def before_runner(stack: Stack) -> Callable[[RunnerConfig], Any]:
    """A runner's ledger, sized to its capital and seen by the risk manager, before its first bar."""

    async def allocate(cfg: RunnerConfig) -> None:
        s = cfg.spec
        conn = await connection.connect(stack.dsn)
        try:
            await allocation.allocate(conn, s.mode, cfg.name, s.capital.amount, cfg.namespace, s.risk_policy_ref.name,
                                      s.capital.currency)
        finally:
            await conn.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the risk manager re-reads the ledgers every second
            with contextlib.suppress(Exception):
                reply = await services.risk_metrics(stack.nc)
                if cfg.name in {s for p in reply.portfolios for s in p.strategies}:
                    return
            await asyncio.sleep(0.3)

    return allocate


async def publish_policies(stack: Stack) -> None:
    """The operator's RiskPolicy reconcile: into the bucket the risk manager hot-reloads, status Published."""
    assert stack.store is not None and stack.cluster is not None
    for body in await stack.store.list("riskpolicies", NAMESPACE):
        fields = await riskpolicies.publish(body, stack.nc, stack.cluster)
        await stack.store.patch_status("riskpolicies", NAMESPACE, body["metadata"]["name"], fields)


async def subscribe_status_feed(stack: Stack) -> None:
    """The operator's status feed, over the local cluster: workload reports -> resource status."""
    cluster = stack.cluster
    assert cluster is not None

    async def on_report(msg: Any) -> None:
        await statusfeed.apply_report(stack.nc, msg, cluster)

    await stack.nc.subscribe(subjects.STATUS_ALL, cb=on_report)


async def reconcile_all(stack: Stack) -> None:
    """One pass of the operator's Strategy and Goal reconcilers over the local cluster."""
    assert stack.store is not None and stack.cluster is not None
    for body in await stack.store.list("strategies", NAMESPACE):
        changes = await asyncio.to_thread(strategies.reconcile, body, None, None, stack.cluster)
        if changes:
            await stack.store.patch_status("strategies", NAMESPACE, body["metadata"]["name"], changes)
    for body in await stack.store.list("goals", NAMESPACE):
        fields = await asyncio.to_thread(goals.reconcile, body, goals.review_due(body), stack.cluster)
        await stack.store.patch_status("goals", NAMESPACE, body["metadata"]["name"], fields)


async def control_loop(stack: Stack, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CONTROL_PERIOD)
        if stop.is_set():
            return
        try:
            await reconcile_all(stack)
        except Exception as exc:  # the next pass tries again, as a resync would
            log.warning("reconcile failed", extra={"error": repr(exc)[:300]})


async def start_runners(stack: Stack) -> None:
    """The first reconcile starts a runner per runnable Strategy; replay waits until all listen."""
    assert stack.pods is not None
    await reconcile_all(stack)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        waiting = [p for p in stack.pods.pods.values() if p.refused is None and not p.ready]
        if not waiting:
            break
        await asyncio.sleep(0.2)
    await reconcile_all(stack)  # the phases, now that the runners are up
    running = sorted(p.strategy for p in stack.pods.pods.values() if p.ready)
    for p in sorted(stack.pods.pods.values(), key=lambda p: p.strategy):
        if p.refused is not None:
            stack.warn(f"Strategy/{p.strategy}: not started: {p.refused[1]}")
    stack.ok(f"runners   {len(running)} paper strategies: {', '.join(running) or 'none'}")


async def replay(stack: Stack, stop: asyncio.Event) -> None:
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
        health = Health(NAMESPACE, name, "replay", r.collector.spec.provider)
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
    await Sink(await _collector_connection(stack), stack.dsn).run(stop)


async def _collector_connection(stack: Stack) -> Any:
    """The replay and its candle store connect as a collector would: market data is all they may publish."""
    if stack.collector_nc is None:
        stack.collector_nc = await nats.connect(stack.nats_url, **auth.credentials("collector"),
                                                name="kubetrade-up-collector", max_reconnect_attempts=-1)
    return stack.collector_nc


async def serve_api(stack: Stack, port: int, stop: asyncio.Event) -> None:
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=STOP_GRACE)  # open console streams end with the stop
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task


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


async def run_pipeline(stack: Stack, stop: asyncio.Event, on_api: Callable[[str], None] | None = None) -> None:
    loop = asyncio.get_running_loop()
    stack.supervisor.say = stack.warn
    stack.nc = await nats.connect(stack.nats_url, **auth.credentials("operator"), name="kubetrade-up",
                                  max_reconnect_attempts=-1)
    await ensure_streams(stack.nc.jetstream())
    pool = AsyncConnectionPool(stack.dsn, min_size=1, max_size=4, open=False)
    await pool.open()
    stack.store = DatabaseStore(pool)
    stack.pods = RunnerPods(loop, stack.nats_url, stack.dsn, refusal(stack), before_runner(stack),
                            on_restart=lambda pod, error: stack.warn(pod.history[-1]))
    stack.cluster = LocalCluster(stack.store, stack.pods, loop)
    background: list[asyncio.Task[Any]] = []
    try:
        await load_history(stack)
        runs = await asyncio.to_thread(evolve_goals, stack)
        if stop.is_set():  # Ctrl-C during the evolution: nothing was started yet
            return
        docs = manifests(stack, [s for run in runs.values() for s in run.strategies])
        write_resources(stack, docs)
        await store_resources(stack, docs)
        await record_runs(stack, runs)
        stack.api_key_file = await apikey.local_api_key(stack.dsn, stack.opts.state_dir)
        await start_services(stack)
        await publish_policies(stack)
        stack.ok(f"policies  {len(stack.rs.policies)} RiskPolicy published by the operator's reconciler")
        await subscribe_status_feed(stack)
        await start_runners(stack)
        start = stack.replay_start
        # the goal manager connects as its own role, as its pod does
        stack.goal_nc = await nats.connect(stack.nats_url, **auth.credentials("goal-manager"),
                                           name="kubetrade-up-goal-manager", max_reconnect_attempts=-1)
        stack.goals = GoalManager(stack.store, stack.goal_nc, interval=CONTROL_PERIOD, clock=stack.replay_now,
                                  start_of=lambda goal: start)
        if on_api:
            on_api(stack.api_url)
        port = int(stack.api_url.rsplit(":", 1)[1])
        background = [asyncio.create_task(c) for c in (
            replay(stack, stop), store_candles(stack, stop), serve_api(stack, port, stop), stack.goals.run(),
            control_loop(stack, stop), show_progress(stack, stop))]
        report.where_to_look(stack)
        await stop.wait()
    finally:
        stack.console.print("stopping: runners first (no order is left half-sent), then the orders drained")
        failures = await stack.pods.stop_all(60)
        stack.problems += failures
        await asyncio.sleep(0.5)  # the runners' last reports reach the status feed
        stop.set()
        if stack.goals is not None:
            stack.goals.stopping.set()
        with contextlib.suppress(Exception):
            stack.drained = await drain_orders(stack.nc.jetstream(), stack.dsn, within=60)
        if stack.drained is not None and not stack.drained.clean:
            stack.problems.append(stack.drained.describe())
        stack.problems += [f"{name} failed and was given up" for name in stack.supervisor.failed]
        await asyncio.gather(*background, return_exceptions=True)
        with contextlib.suppress(Exception):
            summary = await report.final_summary(stack)
            (stack.opts.state_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        await stack.supervisor.stop(30.0)
        await pool.close()
        with contextlib.suppress(Exception):
            await stack.nc.drain()
        for extra in (stack.collector_nc, stack.goal_nc):
            if extra is not None:
                with contextlib.suppress(Exception):
                    await extra.drain()
