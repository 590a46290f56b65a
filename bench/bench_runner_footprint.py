"""Memory of paper runners: one runner after warm-up, after 1 h and 1 day of 1m bars, and many at once.

Real processes over loopback: NATS, PostgreSQL holding the warm-up history (``WARMUP`` 1m bars
of the 90-day BTC/USDT file), the risk manager and the paper executor, and ``kubetrade runner``
processes as a Strategy's pod runs them (``--config strategy.json``, paper), trading the same
genome as ``runner_bar_cost`` (EMA cross, RSI, Bollinger Bands, stops).  Bars are published on
the candle subject as a collector does; each step waits until every runner has reported the
bar (``status.lastSignalTime``).  Memory is read from ``/proc/PID/smaps_rollup``: RSS (resident,
shared pages counted whole in every process: what one container's cgroup sees at most), PSS
(each shared page split between the processes mapping it) and USS (the pages only that process
holds: what each further runner adds).

As in the image: every module imported from compiled byte code (the image compiles its whole
site at build time; this checkout may have none, and a process compiling its imports from source
keeps the compiler's garbage).  The bench compiles the interpreter's site, ``workloads`` and
``operator`` once into ``~/.cache/kubetrade/bench-pycache/<key>`` and the runners read it
(``PYTHONPYCACHEPREFIX``).

Sides, in one run:

- ``kernel``: the runner stepping the numba kernel (``KUBETRADE_RUNNER_SIGNAL=kernel``), which
  every runner did before: numba, LLVM and the compiled kernels in the pod - the baseline;
- ``stream``: the runner as it runs now, the genome streamed in plain Python, its database work
  (ledger, fills, warm-up history) in a short-lived process of its own;
- ``many``: ``RUNNERS`` stream runners at once on the same candles.  Runners per 8 GiB node: by
  mean PSS (shared pages - the interpreter, the libraries' code, the image's files in the page
  cache - counted once over all runners on the node: the node's figure), by mean USS (each
  runner's own pages only: what is left if the shared pages were free) and by mean RSS (nothing
  shared: the floor).  The peak RSS of the database-work process each runner starts (for about a
  second at start) is reported apart; it is gone before the first bar.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

WARMUP = int(os.environ.get("BENCH_FOOTPRINT_WARMUP", "1000"))
HOUR, DAY = 60, 1440
RUNNERS = int(os.environ.get("BENCH_FOOTPRINT_RUNNERS", "20"))
NODE_BYTES = 8 * 1024**3
PERMISSIVE = {
    "strategyLimits": {"maxPositionPct": 1.0, "maxRiskPerTradePct": 1.0},
    "portfolioLimits": {"maxDrawdownPct": 1.0, "dailyLossLimitPct": 1.0, "maxSymbolExposurePct": 1.0,
                        "maxGrossExposurePct": 1.0, "maxCorrelation": 1.0, "varLimitPct": 1.0, "cvarLimitPct": 1.0},
    "stopLoss": {"defaultStopPct": 0.9, "trailing": False, "enforceWithoutRunner": False},
    "circuitBreaker": {"priceAnomalyPct": 1.0, "staleDataSeconds": 86400},
}


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS and USS of a process in MB, from /proc."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
            out[key] = int(rest.split()[0]) / 1024
    return {"rss": out["Rss"], "pss": out["Pss"], "uss": out["Private_Clean"] + out["Private_Dirty"]}


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def bytecode_cache() -> Path:
    """Byte code of everything a runner may import, compiled once per interpreter and checkout (as the image has)."""
    import hashlib
    import site
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    key = hashlib.sha256(f"{sys.prefix}|{sys.version}|{root}".encode()).hexdigest()[:16]
    cache = Path.home() / ".cache" / "kubetrade" / "bench-pycache" / key
    dirs = [str(root / "workloads"), str(root / "operator"), *site.getsitepackages()]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPYCACHEPREFIX": str(cache)}
    # up to date files are skipped: a second run costs a stat per file
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", *dirs], env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800)
    return cache


def _strategy(name: str, genome: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "kubetrade.io/v1alpha1", "kind": "Strategy",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {"symbols": ["BTC/USDT"], "timeframe": "1m", "mode": "paper", "capital": {"amount": 10_000},
                     "riskPolicyRef": {"name": "loose"}, "warmupBars": WARMUP, "genome": genome,
                     "execution": {"feeRate": 0.001, "slippageBps": 2}}}


async def _side(nc: Any, candles: Any, names: list[str], env: dict[str, str], logs: Path, genome: dict[str, Any],
                first: int, steps: dict[str, int]) -> tuple[dict[str, list[dict[str, float]]], int]:
    """Start runners, feed them bars from ``first``, read their memory after each step; (memory per step, next bar)."""
    from kubetrade.localstack.servers import free_port
    from kubetrade.localstack.servers.processes import ManagedProcess
    from kubetrade.localstack.services import kubetrade_argv
    from kubetrade.messaging import codec, subjects
    from kubetrade.messaging.schemas import Candle, StatusReport

    seen: dict[str, int] = {}

    async def on_status(msg: Any) -> None:
        report = codec.decode(StatusReport, msg.data)
        last = report.status.get("lastSignalTime")
        if report.name in names and last:
            seen[report.name] = int(datetime.fromisoformat(str(last).replace("Z", "+00:00")).timestamp() * 1000)

    sub = await nc.subscribe(subjects.status_report("Strategy", "default", "*"), cb=on_status)
    runners = []
    for name in names:
        config = logs / f"{name}.json"
        config.write_text(json.dumps(_strategy(name, genome)))
        runners.append(ManagedProcess(name, kubetrade_argv("runner", "--config", str(config), "--port",
                                                           str(free_port()), "--status-min-interval", "0"),
                                      logs / f"{name}.log", env=env))
    out: dict[str, list[dict[str, float]]] = {}
    helper_peak, sampling, sampler = 0.0, True, None
    try:
        for r in runners:
            r.start()
        for r in runners:
            r.wait_ready(lambda r=r: "runner started" in r.log_path.read_text(), 300, 0.2)
        # the first bar makes each runner read its warm-up history in a child process: watch those

        async def sample() -> None:
            nonlocal helper_peak
            while sampling:
                for r in runners:
                    for child in children(r.proc.pid) if r.proc is not None else []:
                        with contextlib.suppress(OSError, KeyError):  # it exited meanwhile
                            helper_peak = max(helper_peak, memory(child)["rss"])
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        bar, step_ms = first, 60_000
        for label, until in steps.items():
            while bar < until:
                c = Candle(exchange="binance", symbol="BTC/USDT", timeframe="1m", time=int(candles.time[bar]),
                           open=float(candles.open[bar]), high=float(candles.high[bar]), low=float(candles.low[bar]),
                           close=float(candles.close[bar]), volume=float(candles.volume[bar]))
                await nc.publish(subjects.candle("binance", "BTC/USDT", "1m"), codec.encode(c))
                bar += 1
            want = int(candles.time[bar - 1]) + step_ms
            deadline = time.monotonic() + 600
            while any(seen.get(n, 0) < want for n in names):
                if time.monotonic() > deadline:
                    behind = [n for n in names if seen.get(n, 0) < want]
                    raise RuntimeError(f"runners {behind} did not report bar {want} ({label}): "
                                       f"{runners[names.index(behind[0])].log_tail()}")
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # the last status report published, the bar's garbage collected
            out[label] = [memory(r.proc.pid) for r in runners if r.proc is not None]
            if sampling:
                sampling = False
                await sampler
                out["helper_peak"] = [{"rss": helper_peak}]
        return out, bar
    finally:
        sampling = False
        for r in runners:
            r.stop(timeout=30)
        await sub.unsubscribe()


async def _scenario(nats_url: str, dsn: str, candles: Any, logs: Path, pycache: Path) -> dict[str, Any]:
    import nats
    import psycopg

    from bench_runner_bar_cost import _genome
    from kubetrade.localstack.services import publish_policy, start_executor, start_risk_manager
    from kubetrade.storage.candles import SeriesKey, ingest

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await ingest(conn, SeriesKey("binance", "BTC/USDT", "1m"), candles.slice(0, WARMUP))
    nc = await nats.connect(nats_url)
    genome = _genome().to_k8s()
    env = {**os.environ, "KUBETRADE_NATS_URL": nats_url, "KUBETRADE_DATABASE_URL": dsn,
           "KUBETRADE_ENVIRONMENT": "paper", "KUBETRADE_LOG_LEVEL": "warning", "PYTHONPYCACHEPREFIX": str(pycache)}
    await publish_policy(nc, "default", "loose", PERMISSIVE)
    risk = start_risk_manager(nats_url, dsn, logs, refresh_seconds=1.0)
    executor = start_executor(nats_url, dsn, logs)
    try:
        single = {"warmed_up": WARMUP + 1, "hour": WARMUP + 1 + HOUR, "day": WARMUP + 1 + DAY}
        kernel, _ = await _side(nc, candles, ["fp-kernel"], env | {"KUBETRADE_RUNNER_SIGNAL": "kernel"}, logs,
                                genome, WARMUP, single)
        # each side a runner of its own from the same first bar: its warm-up reads the same stored history
        stream, _ = await _side(nc, candles, ["fp-stream"], env, logs, genome, WARMUP, single)
        many, _ = await _side(nc, candles, [f"fp-many-{i}" for i in range(RUNNERS)], env, logs, genome, WARMUP,
                              {"warmed_up": WARMUP + 1, "hour": WARMUP + 1 + HOUR})
    finally:
        executor.stop()
        risk.stop()
        await nc.drain()
    return {"kernel": kernel, "stream": stream, "many": many}


def run() -> dict[str, Any]:
    from kubetrade.candles import load_csv, shared_files
    from kubetrade.localstack.servers import NatsServer, PostgresServer
    from kubetrade.storage import migrate

    candles = load_csv(shared_files("binance-spot", "BTC_USDT-1m.csv.gz", exchange="binance", pairs="BTC/USDT",
                                    timeframe="1m", days=90)[0]).slice(0, WARMUP + DAY + 10)
    logs = Path(tempfile.mkdtemp(prefix="bench-footprint-"))
    pycache = bytecode_cache()
    nats_server = NatsServer(logs / "nats")
    pg = PostgresServer(durable=False)
    nats_server.start()
    pg.start()
    try:
        dsn = pg.create_database("bench_footprint")
        migrate.apply(dsn)
        got = asyncio.run(_scenario(nats_server.url, dsn, candles, logs, pycache))
    finally:
        pg.cleanup()
        nats_server.cleanup()
    k, s, m = got["kernel"], got["stream"], got["many"]
    out: dict[str, Any] = {"warmup_bars": WARMUP}
    for side, mem in (("kernel", k), ("stream", s)):
        for label in ("warmed_up", "hour", "day"):
            out[f"{side}_rss_mb_{label}"] = round(mem[label][0]["rss"], 1)
        out[f"{side}_pss_mb_hour"] = round(mem["hour"][0]["pss"], 1)
        out[f"{side}_uss_mb_hour"] = round(mem["hour"][0]["uss"], 1)
    hour = m["hour"]
    mean = {key: sum(x[key] for x in hour) / len(hour) for key in ("rss", "pss", "uss")}
    per_node = {key: int(NODE_BYTES / (mean[key] * 1024**2)) for key in mean}
    out |= {
        "stream_db_helper_peak_rss_mb": round(s["helper_peak"][0]["rss"], 1),
        "many_runners": len(hour),
        "many_mean_rss_mb_hour": round(mean["rss"], 1),
        "many_mean_pss_mb_hour": round(mean["pss"], 1),
        "many_mean_uss_mb_hour": round(mean["uss"], 1),
        "many_db_helper_peak_rss_mb": round(m["helper_peak"][0]["rss"], 1),
        "runners_per_8gib_node_by_pss": per_node["pss"],
        "runners_per_8gib_node_by_uss": per_node["uss"],
        "runners_per_8gib_node_by_rss": per_node["rss"],
        "kernel_runners_per_8gib_node_by_pss": int(NODE_BYTES / (k["hour"][0]["pss"] * 1024**2)),
        "kernel_runners_per_8gib_node_by_rss": int(NODE_BYTES / (k["hour"][0]["rss"] * 1024**2)),
        "ratio_rss_kernel_over_stream_hour": round(k["hour"][0]["rss"] / s["hour"][0]["rss"], 2),
        "ratio_pss_kernel_over_stream_hour": round(k["hour"][0]["pss"] / s["hour"][0]["pss"], 2),
        "ratio_uss_kernel_over_stream_hour": round(k["hour"][0]["uss"] / s["hour"][0]["uss"], 2),
        "method": (f"/proc/PID/smaps_rollup of each runner process after 1 h of 1m bars, bytecode compiled as "
                   f"in the image; runners per node = 8 GiB / mean of {len(hour)} runners running at once "
                   "(PSS: shared pages once over all runners, the node's figure; USS: own pages only; RSS: "
                   "nothing shared); the database-work helper's peak is apart (alive ~1 s at start)"),
        "pod_on_real_node": "not measured here: bench_node measures runner pods from the built image",
        "load_average": round(os.getloadavg()[0], 1),
        "target": "RSS <= 80 MB (stretch 40) after 1 h; >= 200 paper runners on an 8 GiB node",
        "target_met": s["hour"][0]["rss"] <= 80 and per_node["pss"] >= 200,
        "stretch_met": s["hour"][0]["rss"] <= 40 and per_node["pss"] >= 200,
    }
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
