"""``kubetrade goal-evolution`` (a Goal's CronJob) against the real kube-apiserver and stored real candles."""

from __future__ import annotations

import json
import os

import psycopg

from kubetrade import cli
from kubetrade.candles import load_csv
from kubetrade.data import SAMPLE_DIR
from kubetrade.storage.candles import SeriesKey, ingest

DAYS_5M = 40 * 288


def manifests(namespace: str) -> str:
    policy = {"apiVersion": "kubetrade.io/v1alpha1", "kind": "RiskPolicy", "metadata": {"name": "default"}, "spec": {}}
    goal = {"apiVersion": "kubetrade.io/v1alpha1", "kind": "Goal", "metadata": {"name": "grow"},
            "spec": {"target": {"capital": {"amount": 10_000}, "returnPct": 0.05},
                     "riskPolicyRef": {"name": "default"},
                     "evolution": {"pairSelection": {"quote": "USDT", "topN": 2, "minDailyVolume": 1e7},
                                   "timeframe": "5m", "population": 24, "generations": 2, "backtestDays": 30,
                                   "minTrades": 5, "paperFraction": 1.0, "maxPaper": 3, "seed": 11}}}
    return "\n---\n".join(json.dumps(d) for d in (policy, goal))


async def test_goal_evolution_creates_owned_paper_strategies(kube, namespace, runtime_dsn, capsys) -> None:
    async with await psycopg.AsyncConnection.connect(runtime_dsn, autocommit=True) as conn:
        for sym in ("BTC/USDT", "ETH/USDT"):
            c = load_csv(SAMPLE_DIR / f"{sym.replace('/', '_')}-5m.csv.gz", symbol=sym, timeframe="5m")
            await ingest(conn, SeriesKey("binance", sym, "5m"), c.slice(len(c) - DAYS_5M, len(c)))
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=manifests(namespace))
    goal = json.loads(kube.kubectl("get", "goal", "grow", "-n", namespace, "-o", "json").stdout)
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    try:
        code = await __import__("asyncio").to_thread(
            cli.main, ["goal-evolution", "--goal", f"{namespace}/grow", "--database-url", runtime_dsn])
    finally:
        del os.environ["KUBECONFIG"]
    out = capsys.readouterr().out
    assert code == 0, out
    assert "BTC/USDT, ETH/USDT" in out or "ETH/USDT, BTC/USDT" in out  # the pair selection chose both
    items = json.loads(kube.kubectl("get", "strategies", "-n", namespace, "-l", "kubetrade.io/goal=grow",
                                    "-o", "json").stdout)["items"]
    assert 1 <= len(items) <= 3
    for s in items:
        assert s["spec"]["mode"] == "paper" and s["spec"]["goalRef"]["name"] == "grow"
        assert s["metadata"]["ownerReferences"][0]["uid"] == goal["metadata"]["uid"]
        assert s["status"]["backtest"]["trades"] >= 1 and "deflatedSharpe" in s["status"]["backtest"]
    async with await psycopg.AsyncConnection.connect(runtime_dsn) as conn:
        runs = await (await conn.execute("SELECT goal, survivors FROM evolution_runs")).fetchall()
    assert len(runs) == 1 and runs[0][0] == "grow" and runs[0][1] >= len(items)


def test_goal_evolution_says_what_is_missing(kube, namespace, runtime_dsn, capsys) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=manifests(namespace).replace(
        '"pairSelection": {"quote": "USDT", "topN": 2, "minDailyVolume": 10000000.0}', '"symbols": ["DOGE/USDT"]'))
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    try:
        code = cli.main(["goal-evolution", "--goal", f"{namespace}/grow", "--database-url", runtime_dsn])
    finally:
        del os.environ["KUBECONFIG"]
    assert code == 2
    assert "spec.evolution.symbols: no 5m candles stored for DOGE/USDT" in capsys.readouterr().out
