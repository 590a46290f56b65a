"""``kubetrade goal-evolution`` (a Goal's CronJob) against the real kube-apiserver and stored real candles.

The job runs with the evolution service account's own token, bound the way the operator binds
it (``namespace_accounts`` + the ``kubetrade-evolution`` ClusterRole), so a permission the gates'
reporting needs and the role lacks fails here.  Three markets: the bundled BTC/ETH 5m candles
(whatever the gates decide, status and Event must say it), a random walk made of the real ETH
hourly returns reordered (nothing may pass), and the same plus a planted cycle (something must
pass, and go to paper with its evidence).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import psycopg

from kubetrade import cli, cluster
from kubetrade.candles import Candles, load_csv
from kubetrade.data import SAMPLE_DIR
from kubetrade.storage.candles import SeriesKey, ingest
from kubetrade_operator.builders import namespace_accounts
from kubetrade_operator.config import OperatorConfig
from tests.engine.series import planted_cycle, random_walk
from tests.operator.conftest import install_evolution_role

DAYS_5M = 40 * 288


def manifests(evolution: dict[str, Any]) -> str:
    policy = {"apiVersion": "kubetrade.io/v1alpha1", "kind": "RiskPolicy", "metadata": {"name": "default"}, "spec": {}}
    goal = {"apiVersion": "kubetrade.io/v1alpha1", "kind": "Goal", "metadata": {"name": "grow"},
            "spec": {"target": {"capital": {"amount": 10_000}, "returnPct": 0.05},
                     "riskPolicyRef": {"name": "default"}, "evolution": evolution}}
    return "\n---\n".join(json.dumps(d) for d in (policy, goal))


SAMPLE_GOAL = {"pairSelection": {"quote": "USDT", "topN": 2, "minDailyVolume": 1e7}, "timeframe": "5m",
               "population": 24, "generations": 2, "backtestDays": 30, "minTrades": 5, "paperFraction": 1.0,
               "maxPaper": 3, "seed": 11}


def hourly_goal(symbol: str) -> dict[str, Any]:
    return {"symbols": [symbol], "timeframe": "1h", "population": 48, "generations": 3, "backtestDays": 240,
            "minTrades": 10, "paperFraction": 1.0, "maxPaper": 3, "seed": 3,
            "walkForward": {"windows": 3, "outOfSampleFraction": 0.1, "blocks": 10}}


def evolution_kubeconfig(kube: Any, namespace: str, tmp_path: Path) -> Path:
    """A kubeconfig holding the evolution service account's token, as the CronJob's pod would."""
    install_evolution_role(kube)
    objects = namespace_accounts(namespace, OperatorConfig())
    kube.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    account = OperatorConfig().evolution_service_account
    token = kube.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    config = json.loads(kube.kubeconfig.read_text())
    config["users"] = [{"name": account, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = account
    path = tmp_path / "evolution.kubeconfig"
    path.write_text(json.dumps(config))
    return path


async def run_job(kube: Any, namespace: str, dsn: str, tmp_path: Path) -> int:
    os.environ["KUBECONFIG"] = str(evolution_kubeconfig(kube, namespace, tmp_path))
    cluster.api_client.cache_clear()  # a CronJob pod reads its token once; this process runs several jobs
    try:
        code: int = await asyncio.to_thread(cli.main, ["goal-evolution", "--goal", f"{namespace}/grow",
                                                       "--database-url", dsn])
    finally:
        del os.environ["KUBECONFIG"]
        cluster.api_client.cache_clear()
    return code


def on_symbols(symbols: list[str], **changes: Any) -> dict[str, Any]:
    evo = {k: v for k, v in SAMPLE_GOAL.items() if k != "pairSelection"}
    return {**evo, "symbols": symbols, **changes}


async def store(dsn: str, symbol: str, candles: Candles) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await ingest(conn, SeriesKey("binance", symbol, candles.timeframe), candles)


def goal_events(kube: Any, namespace: str) -> list[dict[str, Any]]:
    items = json.loads(kube.kubectl("get", "events", "-n", namespace, "--field-selector",
                                    "involvedObject.kind=Goal,involvedObject.name=grow", "-o", "json").stdout)["items"]
    return [e for e in items if e["source"].get("component") == "kubetrade-evolution"]


def strategies(kube: Any, namespace: str) -> list[dict[str, Any]]:
    return json.loads(kube.kubectl("get", "strategies", "-n", namespace, "-l", "kubetrade.io/goal=grow",
                                   "-o", "json").stdout)["items"]


async def test_the_gates_decide_and_the_goal_says_so(kube, namespace, runtime_dsn, capsys, tmp_path) -> None:
    for sym in ("BTC/USDT", "ETH/USDT"):
        c = load_csv(SAMPLE_DIR / f"{sym.replace('/', '_')}-5m.csv.gz", symbol=sym, timeframe="5m")
        await store(runtime_dsn, sym, c.slice(len(c) - DAYS_5M, len(c)))
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=manifests(SAMPLE_GOAL))
    goal = json.loads(kube.kubectl("get", "goal", "grow", "-n", namespace, "-o", "json").stdout)
    code = await run_job(kube, namespace, runtime_dsn, tmp_path)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "BTC/USDT, ETH/USDT" in out or "ETH/USDT, BTC/USDT" in out  # the pair selection chose both
    status = json.loads(kube.kubectl("get", "goal", "grow", "-n", namespace, "-o", "json").stdout)["status"]
    sel = status["lastSelection"]
    assert sel["trials"] > 24 and sel["candidates"] >= 1 and status["lastEvolution"]["survived"] == sel["passed"]
    (event,) = goal_events(kube, namespace)
    assert event["message"] == sel["message"]
    items = strategies(kube, namespace)
    assert len(items) == sel["toPaper"] <= 3
    if sel["passed"] == 0:
        assert event["reason"] == "NoStrategyPassed" and event["type"] == "Warning"
        assert sel["message"].startswith("no strategy passed: best DSR ")
    else:
        assert event["reason"] == "StrategiesToPaper"
    for s in items:
        assert s["spec"]["mode"] == "paper" and s["spec"]["goalRef"]["name"] == "grow"
        assert s["metadata"]["ownerReferences"][0]["uid"] == goal["metadata"]["uid"]
        assert s["status"]["evidence"]["passed"] is True
    async with await psycopg.AsyncConnection.connect(runtime_dsn) as conn:
        runs = await (await conn.execute("SELECT goal, survivors, trials FROM evolution_runs")).fetchall()
        rows = await (await conn.execute("SELECT passed, evidence FROM evolution_results")).fetchall()
    assert runs == [("grow", sel["passed"], sel["trials"])]
    assert len(rows) == sel["candidates"] and sum(r[0] for r in rows) == sel["passed"]
    assert all(r[1]["trials"] == sel["trials"] and r[1]["windows"] for r in rows)


async def test_noise_sends_nothing_to_paper(kube, namespace, runtime_dsn, tmp_path, market_data) -> None:
    noise = random_walk(load_csv(market_data / "binance-spot" / "ETH_USDT-1h.csv.gz"), seed=1)
    await store(runtime_dsn, "NOISE/USDT", noise)
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=manifests(hourly_goal("NOISE/USDT")))
    code = await run_job(kube, namespace, runtime_dsn, tmp_path)
    assert code == 0
    status = json.loads(kube.kubectl("get", "goal", "grow", "-n", namespace, "-o", "json").stdout)["status"]
    sel = status["lastSelection"]
    assert sel["passed"] == 0 and sel["toPaper"] == 0 and sel["candidates"] > 0
    assert sel["message"].startswith(f"no strategy passed: best DSR {sel['bestDeflatedSharpe']:.2f}, "
                                     f"best PBO {sel['bestPbo']:.2f}, best out-of-sample return ")
    assert sel["bestDeflatedSharpe"] < 0.95
    (event,) = goal_events(kube, namespace)
    assert (event["type"], event["reason"], event["message"]) == ("Warning", "NoStrategyPassed", sel["message"])
    assert strategies(kube, namespace) == []


async def test_a_planted_edge_goes_to_paper_with_its_evidence(kube, namespace, runtime_dsn, tmp_path,
                                                               market_data) -> None:
    cycle = planted_cycle(load_csv(market_data / "binance-spot" / "ETH_USDT-1h.csv.gz"), seed=1)
    await store(runtime_dsn, "CYCLE/USDT", cycle)
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=manifests(hourly_goal("CYCLE/USDT")))
    code = await run_job(kube, namespace, runtime_dsn, tmp_path)
    assert code == 0
    status = json.loads(kube.kubectl("get", "goal", "grow", "-n", namespace, "-o", "json").stdout)["status"]
    sel = status["lastSelection"]
    assert sel["passed"] >= 1 and sel["toPaper"] == min(3, sel["passed"])
    (event,) = goal_events(kube, namespace)
    assert (event["type"], event["reason"]) == ("Normal", "StrategiesToPaper")
    assert f"{sel['passed']} of {sel['candidates']} candidates passed the gates" in event["message"]
    items = strategies(kube, namespace)
    assert len(items) == sel["toPaper"]
    for s in items:
        e = s["status"]["evidence"]
        assert e["passed"] is True and e["failures"] == []
        assert e["deflatedSharpe"] >= 0.95 and e["pbo"] <= 0.5 and e["trials"] == sel["trials"]
        assert len(e["windows"]) >= 2 and e["positiveWindows"] > len(e["windows"]) / 2
        assert e["oosReturnPct"] > e["benchmarkReturnPct"] and e["benchmark"] == "buyAndHold"
        assert s["status"]["backtest"]["deflatedSharpe"] == e["deflatedSharpe"]
        for w in e["windows"]:
            assert {"start", "end", "returnPct", "sharpe", "trades", "benchmarkReturnPct"} <= set(w)


def test_goal_evolution_says_what_is_missing(kube, namespace, runtime_dsn, capsys) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=manifests(on_symbols(["DOGE/USDT"])))
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    try:
        code = cli.main(["goal-evolution", "--goal", f"{namespace}/grow", "--database-url", runtime_dsn])
    finally:
        del os.environ["KUBECONFIG"]
    assert code == 2
    assert "spec.evolution.symbols: no 5m candles stored for DOGE/USDT" in capsys.readouterr().out


def test_too_short_a_history_is_named(kube, namespace, runtime_dsn, capsys) -> None:
    days = 1  # 288 bars: the first search's 142 training bars are all warm-up (239 bars)
    async def put() -> None:
        c = load_csv(SAMPLE_DIR / "BTC_USDT-5m.csv.gz", symbol="BTC/USDT", timeframe="5m")
        await store(runtime_dsn, "BTC/USDT", c.slice(0, days * 288))

    asyncio.run(put())
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=manifests(on_symbols(["BTC/USDT"], backtestDays=days)))
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    try:
        code = cli.main(["goal-evolution", "--goal", f"{namespace}/grow", "--database-url", runtime_dsn])
    finally:
        del os.environ["KUBECONFIG"]
    out = capsys.readouterr().out
    assert code == 2
    assert "spec.evolution: window 0: the search's training part has 0 bars after the 239-bar warm-up" in out, out


def rl_goal(symbol: str) -> dict[str, Any]:
    return {**hourly_goal(symbol), "population": 24, "generations": 2, "backtestDays": 200,
            "sources": ["genomes", "rl"], "rl": {"timesteps": 2048, "checkpoints": 4, "hidden": 16}}


async def test_an_rl_goal_trains_policies_and_sends_the_passing_ones_to_paper_with_their_model(
        kube, namespace, runtime_dsn, tmp_path, market_data) -> None:
    """The training job's command as its own process (the evolution service account's token, real PostgreSQL):
    PPO policies per window beside the genomes, one selection, the passing policies as paper Strategies whose
    spec.policy names their ONNX file in the model store - which the runner loads."""
    import subprocess

    from kubetrade.localstack.services import kubetrade_argv
    from kubetrade.prediction import model, registry
    from kubetrade.resources.strategy import ModelReference
    from kubetrade.runner.config import parse
    from tests.learning.test_rl import planted

    plant = planted(load_csv(market_data / "binance-spot" / "ETH_USDT-1h.csv.gz"))
    await store(runtime_dsn, "PLANT/USDT", plant)
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=manifests(rl_goal("PLANT/USDT")))
    env = dict(os.environ, KUBECONFIG=str(evolution_kubeconfig(kube, namespace, tmp_path)),
               KUBETRADE_DATABASE_URL=runtime_dsn)
    job = await asyncio.to_thread(subprocess.run, kubetrade_argv("goal-evolution", "--goal", f"{namespace}/grow"),
                                  env=env, capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stdout + job.stderr
    assert "genomes tried and 12 PPO checkpoints evaluated on PLANT/USDT over 3 walk-forward windows" in job.stdout
    status = json.loads(kube.kubectl("get", "goal", "grow", "-n", namespace, "-o", "json").stdout)["status"]
    sel = status["lastSelection"]
    by = {s["source"]: s for s in sel["sources"]}
    assert by["rl"]["trials"] == 12 and by["rl"]["candidates"] == 3
    assert sel["trials"] == by["genomes"]["trials"] + 12 == status["lastEvolution"]["generated"]
    assert sel["candidates"] == by["genomes"]["candidates"] + 3
    (event,) = goal_events(kube, namespace)
    assert event["message"] == sel["message"] and "; by source: genomes " in event["message"]
    items = strategies(kube, namespace)
    assert len(items) == sel["toPaper"] == by["genomes"]["toPaper"] + by["rl"]["toPaper"]
    policies = [s for s in items if s["spec"].get("policy")]
    assert len(policies) == by["rl"]["toPaper"] >= 1, sel
    for s in policies:
        name, ref = s["metadata"]["name"], s["spec"]["policy"]
        assert ref["uri"] == f"registry://{name}" and ref["features"] == "bars-v1"
        e = s["status"]["evidence"]
        assert e["source"] == "rl" and e["passed"] is True and e["trials"] == sel["trials"] and e["pbo"] <= 0.5
        [stored] = registry.describe(runtime_dsn, name)
        assert (stored.sha256, stored.kind, stored.features) == (ref["sha256"], "policy", "bars-v1")
        assert stored.metrics["checkpoints"] == 4
        blob = registry.fetch(runtime_dsn, ModelReference(uri=ref["uri"], sha256=ref["sha256"]))
        assert __import__("hashlib").sha256(blob).hexdigest() == ref["sha256"]
        model.unbind()
        try:
            config = parse(s, "test", dsn=runtime_dsn)  # what the runner does with it
            assert config.model_error is None, config.model_error
        finally:
            model.unbind()
    async with await psycopg.AsyncConnection.connect(runtime_dsn) as conn:
        runs = await (await conn.execute("SELECT trials FROM evolution_runs")).fetchall()
        sources = await (await conn.execute(
            "SELECT evidence->>'source', count(*) FROM evolution_results GROUP BY 1 ORDER BY 1")).fetchall()
    assert runs == [(sel["trials"],)]
    assert sources == [("genomes", by["genomes"]["candidates"]), ("rl", 3)]


async def test_a_predictor_goal_stores_its_model_and_its_prediction_genomes_name_it(
        kube, namespace, runtime_dsn, tmp_path, market_data) -> None:
    """The training job's command as its own process: the LSTM-Transformer trained before the first window's
    search validation part, in the model store under registry://grow-predictor; the Goal's lastSelection says
    where, on which bars and how many candidates use it (the CRD keeps the field); the paper Strategies whose
    genome reads the prediction name that model by digest, and the runner loads it."""
    import subprocess

    from kubetrade.localstack.services import kubetrade_argv
    from kubetrade.prediction import model, registry
    from kubetrade.runner.config import parse
    from tests.learning.test_predictor_goal import PREDICTOR, volume_led

    lead = volume_led(load_csv(market_data / "binance-spot" / "ETH_USDT-1h.csv.gz"))
    await store(runtime_dsn, "LEAD/USDT", lead)
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=manifests(
        {**hourly_goal("LEAD/USDT"), "backtestDays": 200, "predictor": PREDICTOR}))
    env = dict(os.environ, KUBECONFIG=str(evolution_kubeconfig(kube, namespace, tmp_path)),
               KUBETRADE_DATABASE_URL=runtime_dsn)
    job = await asyncio.to_thread(subprocess.run, kubetrade_argv("goal-evolution", "--goal", f"{namespace}/grow"),
                                  env=env, capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stdout + job.stderr
    status = json.loads(kube.kubectl("get", "goal", "grow", "-n", namespace, "-o", "json").stdout)["status"]
    sel = status["lastSelection"]
    pred = sel["predictor"]
    [stored] = registry.describe(runtime_dsn, "grow-predictor")
    assert pred["model"] == "registry://grow-predictor" and pred["sha256"] == stored.sha256
    assert stored.train_to.strftime("%Y-%m-%dT%H:%M:%SZ") == pred["trainTo"] <= pred["validationTo"]
    assert pred["validationFrom"] == pred["trainTo"] and pred["candidates"] >= pred["passed"] >= 1, sel
    async with await psycopg.AsyncConnection.connect(runtime_dsn) as conn:
        windows = await (await conn.execute(
            "SELECT evidence->'windows' FROM evolution_results WHERE (evidence->>'chosenInWindow')::int = 0 "
            "LIMIT 1")).fetchone()
    first_oos = windows[0][0]["start"]
    assert pred["validationTo"] == first_oos and pred["trainTo"] < first_oos  # before any out-of-sample bar
    (event,) = goal_events(kube, namespace)
    assert f"predictor {stored.sha256[:12]}" in event["message"] == sel["message"]
    items = strategies(kube, namespace)
    reading = [s for s in items if "'indicator': 'prediction'" in str(s["spec"]["genome"])]
    assert len(reading) >= 1 and all(s["spec"]["model"]["sha256"] == stored.sha256 for s in reading), items
    assert all("model" not in s["spec"] for s in items if s not in reading)
    model.unbind()
    try:
        config = parse(reading[0], "test", dsn=runtime_dsn)
        assert config.model_error is None, config.model_error
    finally:
        model.unbind()
