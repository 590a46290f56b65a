"""The runner when its neighbours fail: no order without an approval, no signal lost or doubled,
and a clear status, log line and probe answer for each case.  Real NATS, PostgreSQL, risk
manager and paper executor (their CLIs); the runner in-process so the test can watch it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
import yaml

from kubetrade import cli
from kubetrade.candles import Candles, load_csv
from kubetrade.data import SAMPLE_DIR
from kubetrade.engine.runs import Costs, backtest
from kubetrade.engine.templates import ema_cross
from kubetrade.ledger import allocation, connection
from kubetrade.localstack.servers import free_port
from kubetrade.localstack.services import publish_policy, risk_metrics, start_executor, start_risk_manager
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import Candle
from kubetrade.runner.config import parse
from kubetrade.runner.runner import Runner, RunnerOptions
from kubetrade.storage.candles import SeriesKey, ingest
from tests.runtime.conftest import eventually
from tests.runtime.paperreplay import PERMISSIVE
from tests.runtime.test_runner_parity import WARMUP, strategy_doc

GENOME = ema_cross(5, 20).model_copy(update={"position_pct": 0.5})


@pytest.fixture
def candles() -> Candles:
    return load_csv(SAMPLE_DIR / "BTC_USDT-5m.csv.gz").slice(20_000, 20_000 + WARMUP + 200)


@pytest.fixture
def first_trade(candles: Candles):
    t = backtest(GENOME, candles, Costs(fee=0.001, slippage=0.0002, init_cash=10_000), start=WARMUP).trades[0]
    assert t.exit_bar - t.entry_bar > 5  # room to publish a few bars while the position is wanted
    return t


async def prepare(dsn: str, nc, candles: Candles) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as plain:
        await ingest(plain, SeriesKey("binance", "BTC/USDT", "5m"), candles.slice(0, WARMUP))
    conn = await connection.connect(dsn)
    await allocation.allocate(conn, "paper", "parity", 10_000, risk_policy="loose")
    await conn.close()
    await publish_policy(nc, "default", "loose", PERMISSIVE)


async def publish(nc, candles: Candles, i: int) -> None:
    c = Candle(exchange="binance", symbol="BTC/USDT", timeframe="5m", time=int(candles.time[i]), open=candles.open[i],
               high=candles.high[i], low=candles.low[i], close=candles.close[i], volume=candles.volume[i])
    await nc.jetstream().publish(subjects.candle("binance", "BTC/USDT", "5m"), codec.encode(c),
                                 headers={"Nats-Msg-Id": c.msg_id()})


async def feed(nc, runner: Runner, candles: Candles, bars: range) -> None:
    """Publish bars one by one, each once the runner has decided the previous one."""
    for i in bars:
        await publish(nc, candles, i)
        close = int(candles.time[i]) + 300_000

        async def decided(close: int = close) -> bool:
            assert runner.issue is None or "failed" not in runner.issue, runner.issue
            return runner.last_signal_ms == close
        await eventually(decided, timeout=60, interval=0.01)


async def orders(dsn: str) -> list[dict]:
    conn = await connection.connect(dsn)
    try:
        cur = await conn.execute("SELECT client_order_id, status, side FROM orders ORDER BY id")
        return list(await cur.fetchall())
    finally:
        await conn.close()


def make_runner(url: str, dsn: str, **opts) -> Runner:
    cfg = parse(strategy_doc(GENOME.to_k8s()))
    return Runner(cfg, url, dsn, RunnerOptions(probe_port=free_port(), status_min_interval=0, risk_timeout=1.0,
                                               **opts))


async def test_risk_manager_down_means_no_order_then_the_same_signal_once(
        tmp_path, runtime_nats, runtime_dsn, rnc, candles, first_trade, caplog) -> None:
    await prepare(runtime_dsn, rnc, candles)
    runner = make_runner(runtime_nats.url, runtime_dsn, order_wait=30)
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(runner.started.wait(), 60)
    probe = httpx.AsyncClient(base_url=f"http://127.0.0.1:{runner.probe_port}")
    not_ready = await probe.get("/readyz")
    assert not_ready.status_code == 503 and "warm-up" in not_ready.text
    procs = []
    try:
        caplog.set_level(logging.WARNING, logger="kubetrade.runner")
        entry = first_trade.entry_bar
        await feed(rnc, runner, candles, range(WARMUP, entry + 1))
        # the entry was decided with nobody to approve it: nothing reached any order table
        assert await orders(runtime_dsn) == []
        assert "risk manager unreachable" in runner.status()["message"]
        undecided = [c for st in runner.symbols.values() for c in st.undecided]
        assert len(undecided) == 1 and undecided[0].split("-")[2] == str(int(candles.time[entry]))
        assert any("risk manager unreachable" in r.getMessage() and r.client_order_id == undecided[0]
                   for r in caplog.records)
        assert (await probe.get("/healthz")).status_code == 200
        metrics = (await probe.get("/metrics")).text
        assert 'kubetrade_runner_risk_unreachable_total{strategy="parity"}' in metrics
        # the risk manager comes back: the next bar asks again with the same id, and one order results
        procs.append(start_risk_manager(runtime_nats.url, runtime_dsn, tmp_path, refresh_seconds=0.2))
        procs.append(start_executor(runtime_nats.url, runtime_dsn, tmp_path))

        async def risk_knows():
            return any("parity" in p.strategies for p in (await risk_metrics(rnc)).portfolios)
        await eventually(risk_knows)
        await feed(rnc, runner, candles, range(entry + 1, entry + 4))
        placed = await orders(runtime_dsn)
        assert [(o["client_order_id"], o["status"], o["side"]) for o in placed] == [(undecided[0], "filled", "buy")]
        assert runner.status()["message"] == "healthy" and runner.status()["openPositions"] == 1
        assert (await probe.get("/readyz")).status_code == 200
    finally:
        runner.stopping.set()
        await asyncio.wait_for(task, 60)
        await probe.aclose()
        for p in reversed(procs):
            p.stop()


async def test_executor_down_keeps_the_approved_order_in_flight_never_doubled(
        tmp_path, runtime_nats, runtime_dsn, rnc, candles, first_trade, caplog) -> None:
    await prepare(runtime_dsn, rnc, candles)
    risk = start_risk_manager(runtime_nats.url, runtime_dsn, tmp_path, refresh_seconds=0.2)

    async def risk_knows():
        return any("parity" in p.strategies for p in (await risk_metrics(rnc)).portfolios)
    await eventually(risk_knows)
    runner = make_runner(runtime_nats.url, runtime_dsn, order_wait=1.0)
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(runner.started.wait(), 60)
    executor = None
    try:
        caplog.set_level(logging.WARNING, logger="kubetrade.runner")
        entry = first_trade.entry_bar
        await feed(rnc, runner, candles, range(WARMUP, entry + 3))
        inflight = [c for st in runner.symbols.values() for c in st.inflight]
        assert len(inflight) == 1 and inflight[0].split("-")[2] == str(int(candles.time[entry]))
        assert "executor has not confirmed" in runner.status()["message"]
        assert any("executor has not confirmed" in r.getMessage() for r in caplog.records)
        # the approved order waits in JetStream, exactly once
        info = await rnc.jetstream().stream_info("ORDERS")
        assert info.state.messages == 1
        executor = start_executor(runtime_nats.url, runtime_dsn, tmp_path)
        await feed(rnc, runner, candles, range(entry + 3, entry + 5))  # a price for the resting order

        async def settled():
            return runner.status()["openPositions"] == 1 and not [c for st in runner.symbols.values()
                                                                  for c in st.inflight]
        await eventually(settled)
        placed = await orders(runtime_dsn)
        assert [(o["client_order_id"], o["status"]) for o in placed] == [(inflight[0], "filled")]
        assert runner.status()["message"] == "healthy"
    finally:
        runner.stopping.set()
        await asyncio.wait_for(task, 60)
        if executor is not None:
            executor.stop()
        risk.stop()


def test_runner_cli_refuses_a_strategy_it_cannot_run(tmp_path, capsys) -> None:
    bad = strategy_doc({"entry": {"rules": [{"left": {"indicator": "ema", "params": {"period": 0}}, "op": "gt",
                                             "right": {"value": 1}}]}})
    path = tmp_path / "strategy.json"
    path.write_text(json.dumps(bad))
    assert cli.main(["runner", "--config", str(path), "--port", "0"]) == 2
    out = capsys.readouterr().out
    assert "Strategy default/parity: spec.genome does not compile" in out and "period=0" in out
    path.write_text(json.dumps(strategy_doc(GENOME.to_k8s())))
    assert cli.main(["runner", "--config", str(path), "--environment", "live"]) == 2
    assert "spec.mode is paper but this runner is deployed for live" in capsys.readouterr().out
    assert cli.main(["runner", "--config", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().out
    manifest = tmp_path / "strategy.yaml"  # a person's YAML manifest (PyYAML imported for it only)
    manifest.write_text("kind: Strategy\nspec: [unclosed\n")
    assert cli.main(["runner", "--config", str(manifest)]) == 2
    assert "strategy.yaml: not valid JSON/YAML" in capsys.readouterr().out
    manifest.write_text(yaml.safe_dump(strategy_doc(GENOME.to_k8s())))
    assert cli.main(["runner", "--config", str(manifest), "--environment", "live"]) == 2
    assert "spec.mode is paper but this runner is deployed for live" in capsys.readouterr().out


async def test_a_restarted_runner_adopts_its_position_and_exits_where_the_backtest_does(
        tmp_path, runtime_nats, runtime_dsn, rnc, candles, first_trade) -> None:
    await prepare(runtime_dsn, rnc, candles)
    procs = [start_risk_manager(runtime_nats.url, runtime_dsn, tmp_path, refresh_seconds=0.2),
             start_executor(runtime_nats.url, runtime_dsn, tmp_path)]
    try:
        async def risk_knows():
            return any("parity" in p.strategies for p in (await risk_metrics(rnc)).portfolios)
        await eventually(risk_knows)
        entry, exit_ = first_trade.entry_bar, first_trade.exit_bar
        first = make_runner(runtime_nats.url, runtime_dsn, order_wait=30)
        task = asyncio.create_task(first.run())
        await asyncio.wait_for(first.started.wait(), 60)
        await feed(rnc, first, candles, range(WARMUP, entry + 3))
        assert first.status()["openPositions"] == 1
        first.stopping.set()  # SIGTERM: the pod goes away holding a position
        await asyncio.wait_for(task, 60)
        # the candle store has what was published meanwhile (the collector's sink does this in a deployment)
        async with await psycopg.AsyncConnection.connect(runtime_dsn, autocommit=True) as plain:
            await ingest(plain, SeriesKey("binance", "BTC/USDT", "5m"), candles.slice(WARMUP, entry + 3))
        second = make_runner(runtime_nats.url, runtime_dsn, order_wait=30)
        task = asyncio.create_task(second.run())
        await asyncio.wait_for(second.started.wait(), 60)
        assert second.status()["openPositions"] == 1  # rebuilt from the recorded fills
        await feed(rnc, second, candles, range(entry + 3, exit_ + 2))
        second.stopping.set()
        await asyncio.wait_for(task, 60)
    finally:
        for p in reversed(procs):
            p.stop()
    placed = await orders(runtime_dsn)
    bar = {int(t): i for i, t in enumerate(candles.time)}
    assert [(bar[int(o["client_order_id"].split("-")[2])], o["side"], o["status"]) for o in placed] == [
        (entry, "buy", "filled"), (exit_, "sell", "filled")]


def test_runner_says_why_it_exits_in_its_termination_log(tmp_path, capsys, monkeypatch, runtime_nats) -> None:
    """What the kubelet puts on the pod (lastState.terminated.message) and the operator on the
    Strategy: the runner's own reason, one line, no credentials - for a Strategy it cannot run
    (exit 2: a config that is not a Strategy, a paper Strategy in a live pod) and for a database
    it cannot reach (exit 1, real NATS, a port nothing listens on)."""
    log = tmp_path / "termination-log"
    log.touch()  # the kubelet makes the file; the runner never creates it (not in a pod: nothing written)
    monkeypatch.setenv("KUBETRADE_TERMINATION_LOG", str(log))
    path = tmp_path / "strategy.json"
    path.write_text("{not json")
    assert cli.main(["runner", "--config", str(path), "--port", "0"]) == 2
    said = log.read_text()
    assert said.startswith(f"strategy config {path}: not valid JSON/YAML: ") and "\n" not in said, said
    assert said in capsys.readouterr().out

    log.write_text("")
    path.write_text(json.dumps(strategy_doc(GENOME.to_k8s())))
    assert cli.main(["runner", "--config", str(path), "--port", "0", "--environment", "live"]) == 2
    said = log.read_text()
    assert said == "Strategy default/parity: spec.mode is paper but this runner is deployed for live", said
    assert said in capsys.readouterr().out

    log.write_text("")
    closed = free_port()
    dsn = f"postgresql://kubetrade:not-a-real-password@127.0.0.1:{closed}/kubetrade?connect_timeout=3"
    assert cli.main(["runner", "--config", str(path), "--port", "0", "--nats-url", runtime_nats.url,
                     "--database-url", dsn]) == 1
    said = log.read_text()
    assert said.startswith("Strategy default/parity: database unreachable: "), said
    assert f"port {closed} failed" in said and "not-a-real-password" not in said, said
    out = capsys.readouterr().out
    assert said in out and "not-a-real-password" not in out


def test_runner_writes_nothing_outside_a_pod(tmp_path, monkeypatch) -> None:
    from kubetrade.runner import exits

    monkeypatch.delenv("KUBETRADE_TERMINATION_LOG", raising=False)
    assert not exits.TERMINATION_LOG.exists()  # this machine is no container
    assert exits.record("why") is False
    assert exits.record("why", tmp_path / "absent") is False and not (tmp_path / "absent").exists()
    assert exits.record("x" * 10_000, (tmp_path / "log")) is False
    (tmp_path / "log").touch()
    assert exits.record("aé" * 5000, tmp_path / "log")
    kept = (tmp_path / "log").read_bytes()
    assert exits.LIMIT - 1 <= len(kept) <= exits.LIMIT and kept.decode().startswith("aéa")
    assert exits.why(ValueError("postgresql://u:secret@db:5432/x refused")) == (
        "unexpected ValueError: postgresql://db:5432/x refused")


def test_a_runner_whose_model_is_refused_runs_and_says_so_instead_of_crashing(tmp_path, runtime_nats) -> None:
    """A Strategy whose model file is missing: the runner starts (its probes answer, it trades
    nothing and says why) rather than dying while it decides whether to compile kernels for a
    genome that cannot compile without its model - it did, with a GenomeError traceback."""
    import subprocess
    import sys
    import time

    path = tmp_path / "strategy.json"
    path.write_text(json.dumps(strategy_doc({"entry": {"rules": [{"left": {"indicator": "prediction"}, "op": "gt",
                                                                  "right": {"value": 0.001}}]}},
                                            model={"uri": "file:///models/missing.onnx"})))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kubetrade.cli", "runner", "--config", str(path), "--port",
                             str(port), "--nats-url", runtime_nats.url], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None and answer is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.3)
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert answer is not None and "missing.onnx" in answer.text, answer and answer.text
    finally:
        proc.terminate()
        out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "GenomeError" not in out and "model refused" in out, out[-3000:]


async def test_the_database_work_process_answers_what_the_runner_read_in_process(runtime_dsn) -> None:
    """kubetrade.runner.store: the ledger, the fills and the warm-up history through the short-lived
    process (the runner never imports psycopg), equal to the in-process queries; bad requests refused."""
    from kubetrade.ledger import queries
    from kubetrade.runner import store
    from kubetrade.storage import history
    from kubetrade.storage.series import SeriesKey

    fills = await store.books(runtime_dsn, "paper", "dbwork", "dbwork-s", 1000.0, "loose", "USDT")
    assert fills == []  # allocated, nothing filled yet
    async with await connection.connect(runtime_dsn) as conn:
        ledger = [r for r in await queries.ledgers(conn) if r["strategy"] == "dbwork-s"]
        assert [(float(r["capital"]), float(r["cash"]), r["risk_policy"]) for r in ledger] == [
            (1000.0, 1000.0, "loose")]
    await store.books(runtime_dsn, "paper", "dbwork", "dbwork-s", 1500.0, "loose", "USDT")  # resized, idempotent
    async with await connection.connect(runtime_dsn) as conn:
        ledger = [r for r in await queries.ledgers(conn) if r["strategy"] == "dbwork-s"]
        assert [(float(r["capital"]), float(r["cash"])) for r in ledger] == [(1500.0, 1500.0)]

    candles = load_csv(SAMPLE_DIR / "BTC_USDT-5m.csv.gz").slice(0, 50)
    key = SeriesKey("binance-dbwork", "BTC/USDT", "5m")
    async with await psycopg.AsyncConnection.connect(runtime_dsn, autocommit=True) as conn:
        await ingest(conn, key, candles)
        start, end = int(candles.time[0]), int(candles.time[40])
        direct, _ = await history.page(conn, key, datetime.fromtimestamp(start / 1000, UTC),
                                       datetime.fromtimestamp(end / 1000, UTC), 1000)
    rows = await store.history(runtime_dsn, key.exchange, key.symbol, "5m", start, end, 1000, 0.0)
    assert len(rows) == 40 and rows == [tuple(float(x) if i else int(x) for i, x in enumerate(r)) for r in direct]
    assert rows[-1][0] == end - 300_000
    # asked for bars not stored yet: asks again until the wait is over, then answers what there is
    later = end + 3_600_000 * 24 * 365
    t0 = time.monotonic()
    waited = await store.history(runtime_dsn, key.exchange, key.symbol, "5m", start, later, 1000, 1.5)
    assert time.monotonic() - t0 >= 1.5 and len(waited) == 50 and waited[:40] == rows

    with pytest.raises(store.StoreError, match="unexpected KeyError: 'nope'"):
        await store.call({"op": "nope", "dsn": runtime_dsn})
    with pytest.raises(store.StoreError, match="unexpected KeyError: 'strategy'"):
        await store.call({"op": "books", "dsn": runtime_dsn, "environment": "paper"})
    closed = free_port()
    with pytest.raises(store.StoreError, match=f"^database unreachable: .*port {closed} failed") as exc:
        await store.books(f"postgresql://u:not-a-real-password@127.0.0.1:{closed}/x?connect_timeout=3", "paper",
                          "dbwork", "x", 1.0, None, "USDT")
    assert "not-a-real-password" not in str(exc.value)
