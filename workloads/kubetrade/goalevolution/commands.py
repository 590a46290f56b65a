"""``kubetrade goal-evolution --goal NAMESPACE/NAME``: the job a Goal's CronJob runs.

Reads the Goal (through :mod:`kubetrade.cluster`, the workloads' one seam to Kubernetes),
loads the goal's timeframe from the candle store (``KUBETRADE_DATABASE_URL``), runs the
walk-forward evolution and the paper gate (:mod:`kubetrade.goalevolution.goalrun`), records the
run and every candidate's evidence in PostgreSQL, and creates the candidates that passed as
Strategy resources in paper mode - labelled ``kubetrade.io/goal=<goal>``, owned by the Goal
(deleting the Goal deletes them), their out-of-sample evidence in ``status.evidence``.  The
Goal's ``status.lastSelection`` / ``lastEvolution`` and an Event on it say what the gates
decided: ``StrategiesToPaper``, or ``NoStrategyPassed`` with the best figures seen (then nothing
is created).  Exit codes: 0 done (whether or not anything passed), 2 the run cannot start
(the log says why).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger("kubetrade.goalevolution")
SELECTION_DAYS = 30
"""Extra history loaded for the pair selection's look-back."""


def register(sub: Any) -> None:
    p = sub.add_parser("goal-evolution", help="run a Goal's evolution and create paper Strategy resources")
    p.add_argument("--goal", required=True, metavar="NAMESPACE/NAME", help="the Goal to evolve strategies for")
    p.add_argument("--database-url", default=os.environ.get("KUBETRADE_DATABASE_URL"),
                   help="PostgreSQL DSN (default $KUBETRADE_DATABASE_URL)")
    p.add_argument("--seed", type=int, help="default: the Goal's spec.evolution.seed, else random")
    p.add_argument("--log-level", default="info", help="debug, info, warning or error (default info)")
    p.set_defaults(func=_run)


async def load_candles(dsn: str, exchange: str, timeframe: str, days: int, symbols: list[str] | None) -> dict[str, Any]:
    """The last ``days`` of every stored series of this exchange and timeframe (or of ``symbols``)."""
    import psycopg

    from kubetrade.candles import from_arrays
    from kubetrade.storage import history
    from kubetrade.storage.candles import SeriesKey

    out = {}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        if symbols is None:
            cur = await conn.execute("SELECT DISTINCT symbol FROM candles WHERE exchange = %s AND timeframe = %s",
                                     (exchange, timeframe))
            symbols = [r[0] for r in await cur.fetchall()]
        for sym in symbols:
            key = SeriesKey(exchange, sym, timeframe)
            cur = await conn.execute("SELECT max(time) FROM candles WHERE exchange = %s AND symbol = %s AND "
                                     "timeframe = %s", (exchange, sym, timeframe))
            row = await cur.fetchone()
            if row is None or row[0] is None:
                continue
            end = row[0] + timedelta(microseconds=1)
            rows: list[tuple[Any, ...]] = []
            async for chunk in history.stream(conn, key, end - timedelta(days=days), end):
                rows += chunk
            if len(rows) > 1:
                out[sym] = from_arrays(*zip(*rows, strict=True), timeframe=timeframe, symbol=sym)
    return out


async def evolve_goal(namespace: str, name: str, dsn: str, seed: int | None) -> int:
    from kubetrade import cluster
    from kubetrade.candles import timeframe_ms
    from kubetrade.goalevolution import outcome
    from kubetrade.goalevolution.goalrun import GoalRunError, history_days, run_goal_evolution
    from kubetrade.resources.goal import GoalSpec

    store = cluster.KubernetesStore(deadline=30)
    goal = await store.get("goals", namespace, name)
    spec = GoalSpec.model_validate(goal["spec"])
    evo = spec.evolution
    days = history_days(spec, timeframe_ms(evo.timeframe)) + (0 if evo.symbols else SELECTION_DAYS)
    wanted = list(evo.symbols) if evo.symbols else None
    bench = spec.gates.benchmark_symbol
    if wanted is not None and bench and spec.gates.benchmark == "buyAndHold" and bench not in wanted:
        wanted.append(bench)  # the benchmark's candles, beside the traded pairs' (not traded itself)
    candles = await load_candles(dsn, evo.exchange, evo.timeframe, math.ceil(days), wanted)
    alt = None
    if evo.alternative_data:
        import psycopg

        from kubetrade.engine.altdata import AltDataError
        from kubetrade.storage import altpoints

        # a week more than the candles: a daily series needs values known before the first bar
        since = datetime.now(UTC) - timedelta(days=math.ceil(days) + 7)
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                alt = await altpoints.load(conn, evo.alternative_data, since)
        except AltDataError as exc:
            log.error("goal evolution cannot start", extra={"goal": f"{namespace}/{name}", "error": str(exc)})
            print(f"goal-evolution {namespace}/{name}: spec.evolution.alternativeData: {exc}")
            return 2
    started = datetime.now(UTC)
    run_seed = seed if seed is not None else secrets.randbelow(2**31)
    try:
        run = await asyncio.to_thread(
            run_goal_evolution, name, spec, candles, seed=run_seed, namespace=namespace, alt=alt,
            progress=lambda done, total, msg: log.info("evolution progress", extra={"goal": name, "step": msg}))
    except GoalRunError as exc:
        log.error("goal evolution cannot start", extra={"goal": f"{namespace}/{name}", "error": str(exc)})
        print(f"goal-evolution {namespace}/{name}: {exc}")
        return 2
    outcome.store(dsn, run, started, name)
    created = len(await outcome.record(store, goal, run))
    kind, reason, message = run.event()
    await store.create_event(goal, kind, reason, message, "kubetrade-evolution")
    s = run.selection
    log.info("goal evolution done", extra={"goal": f"{namespace}/{name}", "run": run.run_id, "symbols": run.symbols,
                                           "trials": s.trials, "candidates": s.candidates, "passed": s.passed,
                                           "strategies_created": created, "verdict": s.message})
    print(f"goal-evolution {namespace}/{name}: run {run.run_id}, {run.tried()} on "
          f"{', '.join(run.symbols)} over {len(run.walk.windows)} walk-forward windows, {s.candidates} scored out of "
          f"sample; {s.message}; {created} Strategy resources created")
    return 0


def _run(args: argparse.Namespace) -> int:
    from kubetrade.observability.logging import configure

    configure("goal-evolution", args.log_level)
    namespace, _, name = args.goal.partition("/")
    if not name or not args.database_url:
        print("goal-evolution: --goal NAMESPACE/NAME and --database-url (or KUBETRADE_DATABASE_URL) are required")
        return 2
    return asyncio.run(evolve_goal(namespace, name, args.database_url, args.seed))
