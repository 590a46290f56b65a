"""The local stack and a cluster give the same goal figures for the same fills.

The same Goal, RiskPolicy and Strategies - their statuses what their runners' books make of
the same fills - once in a real kube-apiserver and once in the local store (PostgreSQL, what
``kubetrade up`` and its API read).  On each, the goal manager computes the figures and reports
them, and the operator's status feed merges the reports into the Goal's status: through the
kube-apiserver seam on one side, ``kubetrade up``'s local cluster on the other.  Every figure
agrees, and the equity is the one an independent reading of the fills gives.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from psycopg_pool import AsyncConnectionPool

from kubetrade import cluster
from kubetrade.candles import load_csv
from kubetrade.cluster.database import DatabaseStore
from kubetrade.data import SAMPLE_DIR
from kubetrade.engine.runs import Costs, backtest
from kubetrade.engine.templates import ema_cross
from kubetrade.goalmanager.manager import GoalManager
from kubetrade.localstack.cluster import LocalCluster, RunnerPods
from kubetrade.messaging import codec, kv, subjects
from kubetrade.runner.account import Book
from kubetrade.storage import migrate
from kubetrade_operator import kube as operator_kube
from kubetrade_operator import statusfeed
from kubetrade_operator.cluster import KUBE

NOW = datetime(2024, 9, 10, 12, 0, tzinfo=UTC)
FEE = 0.001


def _books() -> dict[str, tuple[float, Book]]:
    """Three strategies' books, each from the fills of a real backtest (capital, book)."""
    c = load_csv(SAMPLE_DIR / "BTC_USDT-5m.csv.gz").slice(0, 3000)
    out = {}
    for name, (fast, slow, capital) in {"alpha": (5, 20, 1_000.0), "beta": (8, 30, 2_500.0),
                                        "gamma": (12, 40, 4_000.0)}.items():
        trades = backtest(ema_cross(fast, slow), c, Costs(fee=FEE, init_cash=capital)).trades
        book = Book(capital)
        for n, t in enumerate(trades):
            book.apply_fill(f"{name}-{n}-in", "BTC/USDT", "buy", t.qty, t.entry_price, t.qty * t.entry_price * FEE,
                            int(c.time[t.entry_bar]))
            book.apply_fill(f"{name}-{n}-out", "BTC/USDT", "sell", t.qty, t.exit_price, t.qty * t.exit_price * FEE,
                            int(c.time[t.exit_bar]))
        assert len(book.trades) >= 5
        out[name] = (capital, book)
    return out


def _resources(namespace: str, books: dict[str, tuple[float, Book]]) -> tuple[list[dict[str, Any]], dict[str, dict]]:
    strategies = [{
        "apiVersion": "kubetrade.io/v1alpha1", "kind": "Strategy",
        "metadata": {"name": name, "namespace": namespace, "labels": {"kubetrade.io/goal": "parity"}},
        "spec": {"template": "ema-crossover", "symbols": ["BTC/USDT"], "timeframe": "5m",
                 "capital": {"amount": capital}, "riskPolicyRef": {"name": "default"}},
    } for name, (capital, _) in books.items()]
    # selected but not trading (not counted), and trading but not selected
    strategies.append({**copy.deepcopy(strategies[0]), "metadata": {
        "name": "failed-one", "namespace": namespace, "labels": {"kubetrade.io/goal": "parity"}}})
    strategies.append({**copy.deepcopy(strategies[1]), "metadata": {"name": "elsewhere", "namespace": namespace}})
    goal = {
        "apiVersion": "kubetrade.io/v1alpha1", "kind": "Goal", "metadata": {"name": "parity", "namespace": namespace},
        "spec": {"target": {"capital": {"amount": 10_000}, "returnPct": 0.05, "period": "month",
                            "startDate": "2024-09-01", "maxDrawdownPct": 0.2},
                 "riskPolicyRef": {"name": "default"}, "evolution": {"symbols": ["BTC/USDT"]}},
    }
    policy = {"apiVersion": "kubetrade.io/v1alpha1", "kind": "RiskPolicy",
              "metadata": {"name": "default", "namespace": namespace},
              "spec": {"portfolioLimits": {"maxDrawdownPct": 0.12}}}
    statuses = {name: {"phase": "Paper", "pnl": book.pnl, "equity": book.equity, "trades": len(book.trades)}
                for name, (_, book) in books.items()}
    statuses["failed-one"] = {"phase": "Failed", "message": "genome does not compile"}
    statuses["elsewhere"] = {"phase": "Paper", "pnl": 900.0, "equity": 3_400.0, "trades": 3}
    return [policy, goal, *strategies], statuses


def _forget_clients() -> None:
    for cached in (cluster.api_client, operator_kube.api_client, operator_kube.dynamic):
        cached.cache_clear()


async def _round_and_feed(store: Any, seam: Any, nc: Any, namespace: str) -> dict[str, Any]:
    """One goal-manager round on ``store``, its report of our Goal merged into it by the operator's feed over
    ``seam``; returns the figures and the multiplier the round published for the runners.  (The round covers
    every Goal the store holds; other tests' Goals may be among them.)"""
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    sub = await nc.subscribe(subjects.status_report("Goal", namespace, "parity"), cb=inbox.put)
    try:
        figures = await GoalManager(store, nc, clock=lambda: NOW).round()
        await statusfeed.apply_report(nc, await asyncio.wait_for(inbox.get(), 10), seam)
    finally:
        await sub.unsubscribe()
    bucket = await kv.goal_sizing_bucket(nc.jetstream())
    entry = codec.decode(kv.GoalSizingEntry, (await bucket.get(kv.goal_sizing_key(namespace, "parity"))).value)
    return {"figures": figures[(namespace, "parity")], "published": entry.multiplier}


async def test_the_local_stack_and_the_operator_give_the_same_goal_figures(kube, namespace, nats_url, pg_server,
                                                                          monkeypatch) -> None:
    books = _books()
    objects, statuses = _resources(namespace, books)
    nc = await nats.connect(nats_url)

    # --- a cluster: the kube-apiserver, the operator's seam ----------------------------------------
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    _forget_clients()  # built for another kubeconfig, maybe; and again after the test (below)
    on_cluster = cluster.KubernetesStore()
    for obj in objects:
        await on_cluster.create({"Goal": "goals", "Strategy": "strategies", "RiskPolicy": "riskpolicies"}[obj["kind"]],
                                namespace, obj)
    for name, st in statuses.items():
        await on_cluster.patch_status("strategies", namespace, name, st)
    in_cluster = await _round_and_feed(on_cluster, KUBE, nc, namespace)
    cluster_goal = (await on_cluster.get("goals", namespace, "parity"))["status"]

    # --- kubetrade up: the local store, its local cluster -------------------------------------------
    dsn = pg_server.create_database(f"kt_parity_{uuid.uuid4().hex[:8]}")
    migrate.apply(dsn)
    pool = AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False)
    await pool.open()
    try:
        local = DatabaseStore(pool)
        for obj in objects:
            await local.create({"Goal": "goals", "Strategy": "strategies", "RiskPolicy": "riskpolicies"}[obj["kind"]],
                               namespace, obj)
        for name, st in statuses.items():
            await local.patch_status("strategies", namespace, name, st)
        loop = asyncio.get_running_loop()
        seam = LocalCluster(local, RunnerPods(loop, nats_url, dsn, refusal=lambda doc: None), loop)
        in_local = await _round_and_feed(local, seam, nc, namespace)
        local_goal = (await local.get("goals", namespace, "parity"))["status"]
    finally:
        await pool.close()
        await nc.drain()
        _forget_clients()

    # --- the same figures, and the right ones ------------------------------------------------------
    assert in_cluster["figures"] == in_local["figures"]
    fields = ("equity", "peakEquity", "returnPct", "progressPct", "onTrack", "sizingMultiplier")
    assert {k: cluster_goal.get(k) for k in fields} == {k: local_goal.get(k) for k in fields}
    assert all(cluster_goal.get(k) is not None for k in fields)
    pnl = sum(book.pnl for _, book in books.values())
    allocated = sum(capital for capital, _ in books.values())
    assert cluster_goal["equity"] == pytest.approx(10_000 * (1 + pnl / allocated), rel=1e-12)
    assert in_cluster["figures"].strategies == 3  # the failed one and the unselected one do not count
    assert in_cluster["published"] == in_local["published"] == cluster_goal["sizingMultiplier"]
