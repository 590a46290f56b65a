"""Learned models trade in the runner as the backtest says: an RL policy (from a file) and a genome on the
LSTM-Transformer's prediction (from the model store, registry://), on real BTC/USDT 5m candles replayed
through a real runner, risk manager and paper executor; and a refused model keeps a runner from trading."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from kubetrade.candles import Candles, load_csv
from kubetrade.data import SAMPLE_DIR
from kubetrade.engine.runs import Costs, backtest
from kubetrade.learning import ppo, training
from kubetrade.ledger import connection
from kubetrade.localstack.servers import free_port
from kubetrade.localstack.servers.processes import ManagedProcess
from kubetrade.localstack.services import kubetrade_argv
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import StatusReport
from kubetrade.prediction import learn, registry
from kubetrade.prediction.model import (
    ModelReference,
    bind_policy,
    bind_prediction,
    from_bytes,
    policy_genome,
    predict_series,
    unbind,
)
from kubetrade.prediction.network import NetConfig
from kubetrade.resources.genome import Genome
from tests.runtime.conftest import eventually
from tests.runtime.paperreplay import replay

WARMUP, LIVE = 300, 500
COSTS = Costs(fee=0.001, slippage=0.0002, init_cash=10_000)


@pytest.fixture(scope="module")
def btc() -> Candles:
    return load_csv(SAMPLE_DIR / "BTC_USDT-5m.csv.gz", symbol="BTC/USDT")


@pytest.fixture(scope="module")
def replayed(btc) -> Candles:
    """Bars the models never saw (they train on the first 15,000)."""
    return btc.slice(20_000, 20_000 + WARMUP + LIVE)


def doc(name: str, genome: dict, **spec) -> dict:
    return {"apiVersion": "kubetrade.io/v1alpha1", "kind": "Strategy",
            "metadata": {"name": name, "namespace": "default", "uid": "u-1"},
            "spec": {"symbols": ["BTC/USDT"], "timeframe": "5m", "mode": "paper", "capital": {"amount": 10_000},
                     "riskPolicyRef": {"name": "loose"}, "warmupBars": WARMUP, "genome": genome,
                     "execution": {"feeRate": 0.001, "slippageBps": 2}} | spec}


async def paper_trades(conn, name: str, candles: Candles) -> list[tuple[int, int, float, float, float]]:
    cur = await conn.execute("SELECT o.client_order_id, o.side, f.quantity, f.price FROM fills f "
                             "JOIN orders o ON o.id = f.order_id WHERE o.strategy = %s ORDER BY f.id", (name,))
    fills = await cur.fetchall()
    time_of = {int(t): i for i, t in enumerate(candles.time)}
    out = []
    for entry, exit_ in zip(fills[::2], fills[1::2], strict=False):
        assert (entry["side"], exit_["side"]) == ("buy", "sell")
        out.append((time_of[int(entry["client_order_id"].split("-")[2])],
                    time_of[int(exit_["client_order_id"].split("-")[2])],
                    entry["quantity"], entry["price"], exit_["price"]))
    return out


def expected_trades(genome: Genome, candles: Candles) -> list[tuple[int, int, float, float, float]]:
    return [(t.entry_bar, t.exit_bar, t.qty, t.entry_price, t.exit_price)
            for t in backtest(genome, candles, COSTS, start=WARMUP).trades]


def assert_same(paper, want) -> None:
    assert [p[:2] for p in paper] == [w[:2] for w in want]
    for got, exp in zip(paper, want, strict=True):
        assert got[:2] == exp[:2]
        assert got[2:] == pytest.approx(exp[2:], rel=1e-9, abs=1e-6)


async def test_an_rl_policy_trades_in_the_runner_as_the_backtest(tmp_path, btc, replayed, runtime_nats, runtime_dsn,
                                                                 rnc) -> None:
    trained = training.train_policy([btc.slice(0, 15_000)], ppo.PPOConfig(iterations=6, envs=8, steps=128, seed=5),
                                    window=8, costs=COSTS)
    path = tmp_path / "policy.onnx"
    path.write_bytes(trained.onnx)
    # 30 % of equity per position: with more, an entry on the bar after an exit can meet the risk manager's
    # 100 % exposure limit while the exit's fill has not yet reached its view of the positions (it trims the order)
    genome = policy_genome(position_pct=0.3)
    try:
        bind_policy(from_bytes(trained.onnx, str(path), ModelReference(uri=str(path)), "policy"), None)
        want = expected_trades(genome, replayed)
    finally:
        unbind()
    assert len(want) >= 3, "the policy should trade on these bars for the comparison to mean something"
    conn = await connection.connect(runtime_dsn)
    strategy = doc("rl-policy", genome.to_k8s(),
                   policy={"uri": f"file://{path}", "sha256": trained.sha256, "features": "bars-v1"})
    reports = await replay(tmp_path, runtime_nats.url, runtime_dsn, rnc, conn, strategy, replayed, WARMUP, LIVE)
    assert_same(await paper_trades(conn, "rl-policy", replayed), want)
    assert reports[-1].status["trades"] == len(want)
    await conn.close()


async def test_a_genome_on_the_network_from_the_model_store_trades_as_the_backtest(
        tmp_path, btc, replayed, runtime_nats, runtime_dsn, rnc) -> None:
    cfg = NetConfig(window=12, hidden=8, ffn=16, epochs=2, batch=256, seed=3)
    trained = learn.train_predictor([btc.slice(0, 15_000)], cfg)
    stored = registry.store(runtime_dsn, "lstm-btc", trained.onnx, kind="predictor", features="bars-v1",
                            train_from=datetime.fromtimestamp(trained.train_from / 1000, UTC),
                            train_to=datetime.fromtimestamp(trained.train_to / 1000, UTC), metrics={},
                            config=trained.config())
    m = bind_prediction(from_bytes(trained.onnx, "lstm", ModelReference(uri="x"), "predictor"))
    try:
        pred = predict_series(m, replayed.open, replayed.high, replayed.low, replayed.close, replayed.volume)
        values = np.unique(pred[np.isfinite(pred)])
        k = len(values) // 2  # halfway between two predictions near the median: no bar sits on the level itself
        level = float((values[k] + values[k + 1]) / 2)
        rule = {"left": {"indicator": "prediction"}, "right": {"value": level}}
        genome = Genome.model_validate({"entry": {"rules": [rule | {"op": "gt"}]},
                                        "exit": {"rules": [rule | {"op": "lt"}]}, "positionPct": 0.3})
        want = expected_trades(genome, replayed)
    finally:
        unbind()
    assert len(want) >= 5
    conn = await connection.connect(runtime_dsn)
    strategy = doc("lstm-genome", genome.to_k8s(), model=stored.reference.to_k8s())
    assert strategy["spec"]["model"]["uri"] == "registry://lstm-btc"
    await replay(tmp_path, runtime_nats.url, runtime_dsn, rnc, conn, strategy, replayed, WARMUP, LIVE)
    assert_same(await paper_trades(conn, "lstm-genome", replayed), want)
    await conn.close()


async def test_a_refused_model_keeps_the_runner_from_trading_and_says_why(tmp_path, runtime_nats, runtime_dsn,
                                                                          rnc) -> None:
    genome = {"entry": {"rules": [{"left": {"indicator": "prediction"}, "op": "gt", "right": {"value": 0.0}}]}}
    strategy = doc("bad-model", genome, model={"uri": "registry://lstm-btc", "sha256": "2" * 64})
    config = tmp_path / "strategy.json"
    config.write_text(json.dumps(strategy))
    reports: list[StatusReport] = []

    async def on_status(msg) -> None:
        reports.append(codec.decode(StatusReport, msg.data))

    await rnc.subscribe(subjects.status_report("Strategy", "default", "bad-model"), cb=on_status)
    port = free_port()
    runner = ManagedProcess("runner", kubetrade_argv("runner", "--config", str(config), "--port", str(port),
                                                     "--status-interval", "0.5"),
                            tmp_path / "runner.log", env={**__import__("os").environ,
                                                          "KUBETRADE_NATS_URL": runtime_nats.url,
                                                          "KUBETRADE_DATABASE_URL": runtime_dsn,
                                                          "KUBETRADE_ENVIRONMENT": "paper"})
    runner.start()
    try:
        async def refused():
            return next((r for r in reports if "model refused" in str(r.status.get("message"))), None)

        report = await eventually(refused, timeout=120)
        assert "registry://lstm-btc with sha256 2222" in report.status["message"]
        assert "not in the model store" in report.status["message"]
        import httpx

        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            ready = await client.get(f"http://127.0.0.1:{port}/readyz")
        assert 'kubetrade_runner_model_refused{strategy="bad-model"} 1.0' in metrics
        assert ready.status_code == 503
        runner.stop(timeout=30)
        assert runner.proc is not None and runner.proc.returncode == 0
    finally:
        runner.stop()
    # the status feed turns it into the Strategy's Degraded condition with its own reason
    from kubetrade_operator.statusfeed import merge_fields

    patch = merge_fields(report, {"observedGeneration": 1, "conditions": []})
    [cond] = [c for c in patch["conditions"] if c["type"] == "Degraded"]
    assert (cond["status"], cond["reason"]) == ("True", "ModelRefused")
    conn = await connection.connect(runtime_dsn)
    cur = await conn.execute("SELECT count(*) AS n FROM orders WHERE strategy = 'bad-model'")
    assert (await cur.fetchone())["n"] == 0
    await conn.close()
