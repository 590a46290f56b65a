"""Signal -> risk decision -> paper fill recorded, over real NATS and PostgreSQL.

The risk manager and the paper executor run as their own processes (``kubetrade
risk-manager``, ``kubetrade executor --environment paper``), as in a deployment.  This
process is the load: 100 strategies sending signals at a fixed total rate (open loop: a
slow system is not allowed to slow the load down), each a ``risk.check`` request; the
end-to-end time is from sending the signal to receiving the executor's ``filled`` event,
which it publishes only after the fill is committed to PostgreSQL.  Market data ticks
every 100 ms (prices on a random walk of about 1 bp a tick) and 120 days of daily candles
are loaded first, so every decision evaluates VaR/CVaR and correlation on real-sized
histories.

The system is measured warm, as it runs in production: 5 s of the same load first
(``BENCH_ORDER_WARMUP``; its latencies are reported apart, as ``warmup_*``), and a
database whose WAL segments are recycled ones (written past ``min_wal_size`` and
checkpointed).  NATS runs with ``GOMAXPROCS=1``, as a 1-CPU limit on its pod gives it
(``BENCH_NATS_GOMAXPROCS``).  Everything - the load included - shares the machine's cores:
the load stands in for 100 runner pods elsewhere, so it does as little as it can per
signal (signals encoded before the clock starts, answers to one inbox).

``BENCH_ORDER_TRACE=<file>`` writes every measured order as ``[sent (Unix time), end to end ms,
decision ms]``, to see when the slowest ones happened (stalls of some component, or spread
out) and on which side of the decision their time went.

Baseline in the same run: a bare NATS request/reply round trip, a bare JetStream publish
(file storage, duplicate window) and a bare PostgreSQL INSERT commit: the floor any order
path that answers a signal, submits the order durably and records the fill pays.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RATE = int(os.environ.get("BENCH_ORDER_RATE", "1000"))
SECONDS = float(os.environ.get("BENCH_ORDER_SECONDS", "10"))
WARMUP = float(os.environ.get("BENCH_ORDER_WARMUP", "5"))
STRATEGIES = 100
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
PRICES = {"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0, "SOL/USDT": 100.0}


def _cpu_seconds(root_pid: int, descendants: bool = True) -> float:
    """User + system CPU of a process and (by default) all its descendants (Linux /proc), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo, seen = 0.0, [root_pid], set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        total += stats[pid][1]
        if descendants:
            todo += [child for child, (parent, _) in stats.items() if parent == pid]
    return total


def _pid(service: Any) -> int:
    proc = service.process.proc
    assert proc is not None, f"{type(service).__name__} is not running"
    return int(proc.pid)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


async def _bench(root: Path) -> dict[str, Any]:
    import nats

    from kubetrade.ledger import allocation, connection, queries
    from kubetrade.localstack.servers import NatsServer, PostgresServer
    from kubetrade.messaging import codec, kv, subjects
    from kubetrade.messaging.schemas import Candle, RiskDecision, Signal, Ticker
    from kubetrade.storage import migrate

    pg = PostgresServer(root / "pg", durable=True)
    # NATS with one CPU's worth of Go threads, as a CPU limit of 1 on its pod gives it (the
    # chart's nats.goMaxProcs): on 2 cores shared with four busy processes, letting its
    # runtime spread over both cost more thread hand-offs per message than it gained
    ns = NatsServer(root / "nats", gomaxprocs=int(os.environ.get("BENCH_NATS_GOMAXPROCS", "1")))
    await asyncio.to_thread(pg.start)
    ns.start()
    dsn = pg.create_database("bench")
    migrate.apply(dsn)
    procs: list[subprocess.Popen[bytes]] = []
    nc = await nats.connect(ns.url)
    try:
        conn = await connection.connect(dsn)
        for i in range(STRATEGIES):
            await allocation.allocate(conn, "paper", f"s{i:03d}", 1_000_000.0, risk_policy="default")
        # baseline: a bare INSERT commit
        await conn.execute("CREATE TABLE bench_floor (id bigserial PRIMARY KEY, v double precision)")
        floor_pg = []
        for _ in range(300):
            t = time.perf_counter()
            await conn.execute("INSERT INTO bench_floor (v) VALUES (1)")
            floor_pg.append((time.perf_counter() - t) * 1000)
        # an aged database: one that has been running recycles its WAL segments, where a fresh
        # cluster zero-fills a new 16 MB segment at every switch (an ~11 ms stall of the commit
        # that crosses it, measured, once per ~6,000 fills).  Write past min_wal_size and
        # checkpoint, so that the segments ahead are recycled ones, as in production.
        await conn.execute(
            "CREATE TABLE bench_wal AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 500000) g"
        )
        await conn.execute("DROP TABLE bench_wal")
        await conn.execute("CHECKPOINT")
        await conn.execute("CHECKPOINT")
        await conn.close()

        async def echo(msg: Any) -> None:
            await msg.respond(msg.data)

        await nc.subscribe("bench.echo", cb=echo)
        floor_nats = []
        for _ in range(300):
            t = time.perf_counter()
            await nc.request("bench.echo", b"x" * 300, timeout=2)
            floor_nats.append((time.perf_counter() - t) * 1000)
        # and a bare JetStream publish of the same size to a file-backed stream with a duplicate
        # window, as the risk manager's submission (the part of a decision no design can skip)
        from nats.js.api import StreamConfig

        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="BENCH_FLOOR", subjects=["bench.floor"], duplicate_window=3600.0))
        floor_js = []
        for i in range(300):
            t = time.perf_counter()
            await js.publish("bench.floor", b"x" * 300, headers={"Nats-Msg-Id": f"floor-{i}"})
            floor_js.append((time.perf_counter() - t) * 1000)
        await js.delete_stream("BENCH_FLOOR")

        bucket = await kv.policy_bucket(nc.jetstream())
        await bucket.put(
            kv.policy_key("default", "default"),
            json.dumps(
                {
                    "namespace": "default",
                    "name": "default",
                    "spec": {
                        "portfolioLimits": {
                            "maxOpenPositions": 1000,
                            "varLimitPct": 0.5,
                            "cvarLimitPct": 0.5,
                            "maxCorrelation": 1.0,
                        }
                    },
                }
            ).encode(),
        )
        procs += _spawn(root, dsn, ns.url)
        # history: 120 daily candles per symbol, so VaR/CVaR and correlation are evaluated on every decision
        rng = random.Random(3)
        day = 86_400_000
        start = (int(time.time() * 1000) // day - 121) * day

        async def candles() -> None:
            for sym in SYMBOLS:
                px = PRICES[sym]
                for d in range(120):
                    px *= math.exp(rng.gauss(0, 0.03))
                    c = Candle(
                        exchange="binance",
                        symbol=sym,
                        timeframe="1d",
                        time=start + d * day,
                        open=px,
                        high=px * 1.01,
                        low=px * 0.99,
                        close=px,
                        volume=1.0,
                    )
                    await nc.publish(subjects.candle("binance", sym, "1d"), codec.encode(c))
                c = Candle(
                    exchange="binance",
                    symbol=sym,
                    timeframe="1d",
                    time=start + 120 * day,
                    open=PRICES[sym],
                    high=PRICES[sym],
                    low=PRICES[sym],
                    close=PRICES[sym],
                    volume=1.0,
                )
                await nc.publish(subjects.candle("binance", sym, "1d"), codec.encode(c))

        stop_ticks = asyncio.Event()

        async def ticks() -> None:
            # prices move as they do (a random walk of ~1 bp a tick, kept within 1% of the
            # reference): every stop's best price moves, as it would in production
            walk = random.Random(7)
            last = dict(PRICES)
            while not stop_ticks.is_set():
                for sym in SYMBOLS:
                    step = last[sym] * (1 + walk.gauss(0, 0.0001))
                    last[sym] = min(max(step, PRICES[sym] * 0.99), PRICES[sym] * 1.01)
                    t = Ticker(exchange="binance", symbol=sym, time=int(time.time() * 1000), last=last[sym])
                    await nc.publish(subjects.ticker("binance", sym), codec.encode(t))
                await asyncio.sleep(0.1)

        class Phase:
            """One open-loop run of the load: what it sent, what got decided and filled, and when."""

            def __init__(self, prefix: str, seconds: float) -> None:
                self.prefix, self.total = prefix, int(RATE * seconds)
                self.sent: dict[str, float] = {}
                self.filled: dict[str, float] = {}
                self.decided: list[float] = []
                self.outcomes: dict[str, int] = {}
                self.expected: int | None = None
                self.answered: set[str] = set()
                self.all_answered = asyncio.Event()
                self.all_filled = asyncio.Event()
                self.send_seconds = self.elapsed = 0.0
                self.decided_by: dict[str, float] = {}

            def e2e(self) -> list[float]:
                return [(self.filled[c] - self.sent[c]) * 1000 for c in self.filled]

        current = Phase("", 0)

        async def on_event(msg: Any) -> None:
            # the load stands in for 100 runner pods on their own cores: it reads only what it measures
            # (plain JSON, not the validated schema) so that it takes as little CPU from the system under test
            e = json.loads(msg.data)
            coid = e.get("clientOrderId")
            ph = current
            if e.get("status") == "filled" and coid in ph.sent and coid not in ph.filled:
                ph.filled[coid] = time.perf_counter()
                if ph.expected is not None and len(ph.filled) >= ph.expected:
                    ph.all_filled.set()

        await nc.subscribe(subjects.order_events("paper", ">"), cb=on_event)
        ticker_task = asyncio.create_task(ticks())
        # wait for both processes: a signal for a known strategy gets a real decision once all is up
        deadline = time.monotonic() + 120
        probe = 0
        while True:
            await candles() if probe % 20 == 0 else None
            probe += 1
            try:
                sig = Signal(
                    strategy="s000",
                    client_order_id=f"probe-{probe}",
                    exchange="binance",
                    symbol="BTC/USDT",
                    side="buy",
                    quantity=0.0001,
                    price=50_000,
                    time=int(time.time() * 1000),
                )
                reply = await nc.request(subjects.RISK_CHECK, codec.encode(sig), timeout=2)
                r = codec.decode(RiskDecision, reply.data)
                if r.approved:
                    conn = await connection.connect(dsn)
                    row = await queries.order(conn, sig.client_order_id)
                    await conn.close()
                    if row is not None and row["status"] == "filled":
                        break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"risk manager / executor did not come up; see {root / 'procs.log'}")
            await asyncio.sleep(0.25)

        # the answers come to one inbox, ``<inbox>.<clientOrderId>``: a runner pod sends one
        # request at a time, the load sends a thousand a second, and a task, a future and a
        # timer per request (nats-py's request) would cost the system under test the CPU
        inbox = nc.new_inbox()

        async def on_decision(msg: Any) -> None:
            ph = current
            coid = msg.subject[len(inbox) + 1 :]
            t = ph.sent.get(coid)
            if t is None or coid in ph.answered:
                return
            ph.answered.add(coid)
            ph.decided.append((time.perf_counter() - t) * 1000)
            ph.decided_by[coid] = ph.decided[-1]
            d = json.loads(msg.data)
            key = "approved" if d.get("approved") else f"rejected:{d.get('rule') or d.get('error')}"
            ph.outcomes[key] = ph.outcomes.get(key, 0) + 1
            if len(ph.answered) == ph.total:
                ph.all_answered.set()

        await nc.subscribe(f"{inbox}.*", cb=on_decision)

        async def run_phase(ph: Phase) -> None:
            nonlocal current
            current = ph
            # each runner pod encodes its own signal: done before the clock starts, not by the load's loop
            now = int(time.time() * 1000)
            payloads = [
                codec.encode(
                    Signal(
                        strategy=f"s{i % STRATEGIES:03d}",
                        client_order_id=f"{ph.prefix}{i:07d}",
                        exchange="binance",
                        symbol=SYMBOLS[i % len(SYMBOLS)],
                        side="buy",
                        quantity=round(10.0 / PRICES[SYMBOLS[i % len(SYMBOLS)]], 6),
                        price=PRICES[SYMBOLS[i % len(SYMBOLS)]],
                        time=now + i * 1000 // RATE,
                    )
                )
                for i in range(ph.total)
            ]
            # the load generator's own collector pauses would be counted as the
            # system's latency: it does not collect while it measures (the system under test does)
            gc.collect()
            gc.disable()
            t0 = time.perf_counter()
            for i in range(ph.total):
                target = t0 + i / RATE
                delay = target - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                coid = f"{ph.prefix}{i:07d}"
                ph.sent[coid] = time.perf_counter()
                await nc.publish(subjects.RISK_CHECK, payloads[i], reply=f"{inbox}.{coid}")
            ph.send_seconds = time.perf_counter() - t0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ph.all_answered.wait(), 10)
            unanswered = ph.total - len(ph.answered)
            if unanswered:
                ph.outcomes["error:no answer in 10 s"] = unanswered
            ph.expected = ph.outcomes.get("approved", 0)
            if len(ph.filled) < ph.expected:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ph.all_filled.wait(), 60)
            ph.elapsed = max(ph.filled.values(), default=t0) - t0
            gc.enable()

        # warm-up: the same load, not measured.  A fresh NATS server grows its heap (its first
        # collections each stall it for up to ~17 ms, measured) and rolls its streams' first
        # blocks; Python processes fill their caches; none of that recurs in a system that has
        # been running, and it is reported apart below
        warm = Phase("w-", WARMUP)
        if warm.total:
            await run_phase(warm)
        roles = {"risk_manager": procs[0].pid, "executor": procs[1].pid, "nats": _pid(ns), "postgres": _pid(pg)}
        roles["load_generator"] = os.getpid()

        def cpu_now() -> dict[str, float]:
            return {k: _cpu_seconds(v, descendants=k != "load_generator") for k, v in roles.items()}

        cpu0 = cpu_now()
        ph = Phase("b-", SECONDS)
        await run_phase(ph)
        total, outcomes, filled, decided, elapsed = ph.total, ph.outcomes, ph.filled, ph.decided, ph.elapsed
        send_seconds = ph.send_seconds
        cpu = {k: (v - cpu0[k]) * 1000 / max(1, len(filled)) for k, v in cpu_now().items()}
        stop_ticks.set()
        await ticker_task
        warm_e2e = warm.e2e()
        trace = os.environ.get("BENCH_ORDER_TRACE")
        if trace:  # per order: when it was sent (wall clock), end to end and decision ms
            offset = time.time() - time.perf_counter()
            rows = [(ph.sent[c] + offset, (ph.filled[c] - ph.sent[c]) * 1000, ph.decided_by.get(c)) for c in ph.filled]
            await asyncio.to_thread(Path(trace).write_text, json.dumps(sorted(rows)))
        e2e = ph.e2e()
        # where the slowest 1% spent their time: before the decision (risk manager, NATS request)
        # or after it (JetStream, executor, PostgreSQL, the fill event)
        slowest = sorted(ph.filled, key=lambda c: ph.filled[c] - ph.sent[c])[-max(1, len(ph.filled) // 100) :]
        after = sum(1 for c in slowest if ph.decided_by.get(c, 0.0) < (ph.filled[c] - ph.sent[c]) * 500)
        return {
            "signals": total,
            "target_rate_per_s": RATE,
            "strategies": STRATEGIES,
            "achieved_send_rate_per_s": round(total / send_seconds, 1),
            "outcomes": outcomes,
            "fills_recorded": len(filled),
            "throughput_fills_per_s": round(len(filled) / elapsed, 1) if elapsed > 0 else None,
            "decision_ms_p50": round(pct(decided, 0.5), 3),
            "decision_ms_p99": round(pct(decided, 0.99), 3),
            "e2e_ms_p50": round(pct(e2e, 0.5), 3),
            "e2e_ms_p95": round(pct(e2e, 0.95), 3),
            "e2e_ms_p99": round(pct(e2e, 0.99), 3),
            "e2e_ms_max": round(max(e2e, default=float("nan")), 3),
            "target_p99_ms": 5.0,
            "slowest_1pct_mostly_after_decision": f"{after} of {len(slowest)}",
            "warmup_seconds": WARMUP,
            "warmup_e2e_ms_p50": round(pct(warm_e2e, 0.5), 3),
            "warmup_e2e_ms_p99": round(pct(warm_e2e, 0.99), 3),
            "baseline_nats_request_ms_p50": round(pct(floor_nats, 0.5), 3),
            "baseline_jetstream_publish_ms_p50": round(pct(floor_js, 0.5), 3),
            "baseline_pg_commit_ms_p50": round(pct(floor_pg, 0.5), 3),
            "e2e_p50_over_baseline": round(
                pct(e2e, 0.5) / (pct(floor_nats, 0.5) + pct(floor_js, 0.5) + 2 * pct(floor_pg, 0.5)), 2
            ),
            "cpu_ms_per_fill": {k: round(v, 3) for k, v in cpu.items()},
            "cpu_ms_per_fill_system": round(sum(v for k, v in cpu.items() if k != "load_generator"), 3),
            "postgres": "durable (fsync on, synchronous_commit on)",
            "cpus": os.cpu_count(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        }
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        await nc.drain()
        ns.cleanup()
        pg.cleanup()


def _spawn(root: Path, dsn: str, nats_url: str) -> list[subprocess.Popen[bytes]]:
    """The risk manager and the paper executor as their own processes, as deployed."""
    env = dict(os.environ, KUBETRADE_DATABASE_URL=dsn, KUBETRADE_NATS_URL=nats_url)
    log = open(root / "procs.log", "ab")  # noqa: SIM115 - handed to the children
    return [
        subprocess.Popen(
            [sys.executable, "-m", module, *argv, "--log-level", "warning"], env=env, stdout=log, stderr=log
        )
        for module, argv in (
            ("kubetrade.risk", ["risk-manager"]),
            ("kubetrade.executor", ["executor", "--environment", "paper"]),
        )
    ]


def run() -> dict[str, Any]:
    from kubetrade import eventloop

    root = Path(tempfile.mkdtemp(prefix="kubetrade-bench-orders-"))
    os.chmod(root, 0o755)  # PostgreSQL may run as its service user, who must reach the folder
    try:
        return eventloop.run(_bench(root))  # the runners it stands in for run on the same loop
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k:32} {v}")
