"""One Collector resource, run: build the right collector, report health, obey start/stop.

This is what the collector Deployment runs (``kubetrade collect --config ...``).  It
connects to NATS (retrying forever, so a NATS restart is survived), optionally stores
what it publishes (``--store``, when the pod has a database URL), reports health every
``report_seconds`` and listens on ``control.collector.<namespace>.<name>`` so that the
API can pause and resume it without Kubernetes (on a cluster ``spec.suspend`` scales the
Deployment to zero instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from kubetrade import settings
from kubetrade.ccxtclient import point_ccxt
from kubetrade.collector.exchange import first_set
from kubetrade.collector.health import Health, HealthReporter
from kubetrade.collector.publish import Publisher, ensure_streams, stream_resume
from kubetrade.messaging import auth, subjects
from kubetrade.resources.collector import Collector

log = logging.getLogger("kubetrade.collector")

RunFn = Callable[[asyncio.Event], Coroutine[Any, Any, Any]]


@dataclass
class Options:
    nats_url: str
    database_url: str | None = None
    store: bool = False
    report_seconds: float = 10.0
    exchange_url: str | None = None
    """Send the ccxt client to this base URL (a proxy, or the local exchange)."""


def exchange_client(exchange_id: str, websocket: bool, credentials: Any, base_url: str | None) -> Any:
    """An async ccxt client (ccxt.pro when streaming is wanted and offered), rate-limited by ccxt."""
    import ccxt.async_support as ccxt_async

    if exchange_id not in ccxt_async.exchanges:
        raise ValueError(f"provider {exchange_id!r} is not a ccxt exchange id (e.g. binance, kraken, okx)")
    module: Any = ccxt_async
    if websocket:
        import ccxt.pro as ccxt_pro  # only when asked for: importing it costs seconds

        if exchange_id in ccxt_pro.exchanges:
            module = ccxt_pro
    config: dict[str, Any] = {"enableRateLimit": True, "timeout": 15_000}
    if exchange_id.startswith("binance"):
        config["options"] = {"fetchMarkets": {"types": ["spot"]}}
    if credentials.api_key:
        config |= {"apiKey": credentials.api_key, "secret": credentials.secret}
    client = getattr(module, exchange_id)(config)
    if base_url:
        point_ccxt(client, base_url)
    return client


Closer = Callable[[], Awaitable[None]]


async def build(resource: Collector, js: Any, health: Health, opts: Options) -> tuple[RunFn, Closer]:
    """The collector's ``run(stop)`` and an async ``close()`` for what it holds."""
    from kubetrade.collector.alt import PROVIDERS, AltCollector, Credentials

    spec = resource.spec
    creds = Credentials.from_env()
    publisher = Publisher(js)

    async def nothing() -> None:
        return None

    if spec.source == "exchange":
        from kubetrade.collector.exchange import ExchangeCollector, exchange_clock

        client = exchange_client(spec.provider, spec.websocket, creds, opts.exchange_url)
        col = ExchangeCollector(client=client, exchange_id=spec.exchange or spec.provider, symbols=list(spec.symbols),
                                close_grace_ms=2000, clock=await exchange_clock(client),
                                timeframes=list(spec.timeframes), publisher=publisher, health=health,
                                resume=stream_resume(js), backfill_days=spec.backfill_days,
                                interval_seconds=float(spec.interval_seconds), websocket=spec.websocket)
        return col.run, client.close
    if spec.source == "replay":
        from kubetrade.collector.replay import ReplayCollector, data_dir, load_series

        replay = spec.replay
        assert replay is not None  # the model refuses replay without settings
        series = load_series(data_dir(replay.path), list(spec.symbols), list(spec.timeframes))
        rc = ReplayCollector(series, spec.exchange or "binance", publisher, health, speed=replay.speed,
                             loop=replay.loop, start=replay.start, resume=stream_resume(js))

        async def run_replay(stop: asyncio.Event) -> None:
            await rc.run(stop)
            health.reason = "ReplayFinished"
            await stop.wait()  # stay up: a restarted pod would only find nothing new to play

        return run_replay, nothing
    provider = PROVIDERS[spec.provider](creds)
    alt = AltCollector(provider, list(spec.topics) or list(spec.symbols), publisher, health,
                       interval_seconds=float(spec.interval_seconds))
    return alt.run, nothing


async def run(resource: Collector, opts: Options, stop: asyncio.Event, probes: Any = None) -> None:
    """Run the collector until ``stop``; ``probes`` (a :class:`~kubetrade.observability.probes.ProbeServer`)
    is told what readiness means here (NATS connected) and gets a heartbeat with every report."""
    import nats

    ns = resource.metadata.get("namespace") or "default"
    name = resource.metadata["name"]
    health = Health(ns, name, resource.spec.source, resource.spec.provider)
    nc = await nats.connect(opts.nats_url, **auth.credentials("collector"), name=f"collector-{ns}-{name}",
                            max_reconnect_attempts=-1, reconnect_time_wait=1, connect_timeout=5)
    js = nc.jetstream()
    await ensure_streams(js)
    if probes is not None:
        probes.checks = lambda: [] if nc.is_connected else ["nats: not connected"]
    reporter = HealthReporter(nc, health)
    paused = asyncio.Event()
    if resource.spec.suspend:
        paused.set()

    async def on_control(msg: Any) -> None:
        (paused.set if msg.data == b"stop" else paused.clear)()
        wake.set()

    wake = asyncio.Event()
    await nc.subscribe(subjects.collector_control(ns, name), cb=on_control)
    beat = probes.beat if probes is not None else (lambda: None)
    background: list[asyncio.Task[Any]] = [
        asyncio.create_task(_report_loop(reporter, opts.report_seconds, stop, beat))]
    if opts.store and opts.database_url:
        from kubetrade.collector.sink import Sink

        background.append(asyncio.create_task(Sink(nc, opts.database_url).run(stop)))
    run_fn, close = await build(resource, js, health, opts)
    try:
        while not stop.is_set():
            if paused.is_set():
                health.set_phase("Suspended", "SuspendedByUser")
                await reporter.report()
                wake.clear()
                await first_set(stop, wake)
                continue
            inner = asyncio.Event()
            task = asyncio.create_task(run_fn(inner))
            wake.clear()
            await first_set(stop, wake, _done(task))
            inner.set()
            await task
            await reporter.report()
            if task.done() and not paused.is_set() and not stop.is_set():
                break  # the collector ended by itself (it never does unless broken)
    finally:
        stop.set()
        for t in background:
            with contextlib.suppress(Exception):
                await t
        await close()
        await reporter.report()
        await nc.drain()


async def _report_loop(reporter: HealthReporter, every: float, stop: asyncio.Event,
                       beat: Callable[[], None] = lambda: None) -> None:
    while not stop.is_set():
        beat()
        await reporter.report()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


def _done(task: asyncio.Task[Any]) -> asyncio.Event:
    ev = asyncio.Event()
    task.add_done_callback(lambda _: ev.set())
    return ev


def options_from_env(store: bool | None, exchange_url: str | None) -> Options:
    env = settings.current()
    if not env.nats_url:
        raise SystemExit("kubetrade collect: set KUBETRADE_NATS_URL (the collector publishes to NATS JetStream)")
    db = env.database_url
    return Options(nats_url=env.nats_url, database_url=db, store=bool(db) if store is None else store,
                   report_seconds=env.health_report_seconds, exchange_url=exchange_url or env.exchange_url)
