"""What an evolution run leaves behind: Strategy manifests (mode paper) and rows in PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml

from kubetrade.candles import Candles
from kubetrade.engine.evolve import EvolveConfig, EvolveResult, Survivor
from kubetrade.engine.walkforward import WalkForwardResult
from kubetrade.resources.base import LocalObjectReference, Money
from kubetrade.resources.genome import Genome
from kubetrade.resources.strategy import PerformanceSummary, SelectionEvidence, Strategy, StrategySpec

RUN_LABEL = "kubetrade.io/evolution-run"
RANK_LABEL = "kubetrade.io/rank"
BACKTEST_ANNOTATION = "kubetrade.io/backtest"


@dataclass(frozen=True)
class ManifestSettings:
    """Where the strategies will trade and under which limits."""

    exchange: str = "binance"
    capital: float = 1000.0
    currency: str = "USDT"
    risk_policy: str = "default"
    goal: str | None = None
    namespace: str | None = None
    name_prefix: str = "evo"


def evidence_summary(e: SelectionEvidence) -> PerformanceSummary:
    """The out-of-sample figures a Strategy was selected on, as its ``status.backtest``."""
    return PerformanceSummary(return_pct=e.oos_return_pct, sharpe=e.sharpe, max_drawdown=e.max_drawdown,
                              trades=e.trades, deflated_sharpe=e.deflated_sharpe)


def survivor_summary(s: Survivor) -> PerformanceSummary:
    """A single-split survivor's validation figures."""
    v = list(s.validation.values())
    return PerformanceSummary(
        return_pct=s.validation_return,
        sharpe=s.validation_sharpe,
        sortino=sum(m.sortino for m in v) / len(v),
        max_drawdown=s.validation_drawdown,
        win_rate=sum(m.win_rate * m.trades for m in v) / max(1, sum(m.trades for m in v)),
        trades=sum(m.trades for m in v),
        deflated_sharpe=s.deflated_sharpe,
    )


def strategy_manifest(genome: Genome, summary: PerformanceSummary, rank: int, run_id: str, data: Sequence[Candles],
                      cfg: EvolveConfig, settings: ManifestSettings) -> Strategy:
    """One selected genome as a Strategy resource in paper mode; the figures it was selected on in an annotation."""
    metadata: dict[str, Any] = {
        "name": f"{settings.name_prefix}-{run_id[:8]}-{rank:03d}",
        "labels": {RUN_LABEL: run_id, RANK_LABEL: str(rank)},
        "annotations": {BACKTEST_ANNOTATION: json.dumps(summary.to_k8s(), sort_keys=True)},
    }
    if settings.goal:
        metadata["labels"]["kubetrade.io/goal"] = settings.goal
    if settings.namespace:
        metadata["namespace"] = settings.namespace
    spec = StrategySpec(
        genome=genome,
        exchange=settings.exchange,
        market=cfg.market,
        symbols=[c.symbol for c in data],
        timeframe=data[0].timeframe,
        mode="paper",
        capital=Money(amount=settings.capital, currency=settings.currency),
        risk_policy_ref=LocalObjectReference(name=settings.risk_policy),
        goal_ref=LocalObjectReference(name=settings.goal) if settings.goal else None,
    )
    return Strategy(metadata=metadata, spec=spec)


def write_manifests(strategies: Sequence[Strategy], folder: Path) -> list[Path]:
    """One YAML file per strategy (``kubectl apply -f folder`` takes them all)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for st in strategies:
        path = folder / f"{st.metadata['name']}.yaml"
        path.write_text(yaml.safe_dump(st.to_k8s(), sort_keys=False))
        paths.append(path)
    return paths


def _metrics_json(per_symbol: dict[str, Any]) -> str:
    return json.dumps({k: asdict(v) for k, v in per_symbol.items()})


def store_run(dsn: str, run_id: str, started: datetime, result: EvolveResult, cfg: EvolveConfig,
              data: Sequence[Candles], strategies: Sequence[Strategy], goal: str | None = None) -> None:
    """Record the run and its ranked results in one transaction."""
    datasets = [{"symbol": c.symbol, "timeframe": c.timeframe, "bars": len(c),
                 "first": int(c.time[0]), "last": int(c.time[-1])} for c in data]
    config = {k: v for k, v in asdict(cfg).items() if k != "costs"} | {"costs": asdict(cfg.costs)}
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO evolution_runs (id, started_at, finished_at, seed, config, datasets, trials, evaluations,"
            " survivors, goal) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (uuid.UUID(run_id), started, datetime.now(UTC), cfg.seed, json.dumps(config), json.dumps(datasets),
             result.trials, result.evaluations, len(result.survivors), goal),
        )
        cur.executemany(
            "INSERT INTO evolution_results (run_id, rank, strategy_name, genome, train, validation,"
            " validation_return, validation_max_drawdown, validation_sharpe, validation_trades, deflated_sharpe,"
            " manifest) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (uuid.UUID(run_id), rank, st.metadata["name"], json.dumps(s.genome.to_k8s()), _metrics_json(s.train),
                 _metrics_json(s.validation), s.validation_return, s.validation_drawdown, s.validation_sharpe,
                 sum(m.trades for m in s.validation.values()), s.deflated_sharpe, json.dumps(st.to_k8s()))
                for rank, (s, st) in enumerate(zip(result.survivors, strategies, strict=True), start=1)
            ],
        )


@dataclass(frozen=True)
class Candidate:
    """One walk-forward candidate as stored: its rank, genome, judged evidence and manifest."""

    rank: int
    genome: Genome
    evidence: SelectionEvidence
    strategy: Strategy


def store_selection(dsn: str, run_id: str, started: datetime, walk: WalkForwardResult, cfg: EvolveConfig,
                    data: Sequence[Candles], candidates: Sequence[Candidate], goal: str | None = None) -> None:
    """Record a walk-forward run and every candidate's evidence and verdict in one transaction.

    ``survivors`` counts the candidates that passed the gates; ``validation_*`` hold the pooled
    out-of-sample figures and ``validation`` the per-window ones.
    """
    datasets = [{"symbol": c.symbol, "timeframe": c.timeframe, "bars": len(c),
                 "first": int(c.time[0]), "last": int(c.time[-1])} for c in data]
    config = ({k: v for k, v in asdict(cfg).items() if k != "costs"} | {"costs": asdict(cfg.costs)}
              | {"walkForward": asdict(walk.config)})
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO evolution_runs (id, started_at, finished_at, seed, config, datasets, trials, evaluations,"
            " survivors, goal) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (uuid.UUID(run_id), started, datetime.now(UTC), cfg.seed, json.dumps(config), json.dumps(datasets),
             walk.trials, walk.evaluations, sum(1 for c in candidates if c.evidence.passed), goal),
        )
        cur.executemany(
            "INSERT INTO evolution_results (run_id, rank, strategy_name, genome, train, validation,"
            " validation_return, validation_max_drawdown, validation_sharpe, validation_trades, deflated_sharpe,"
            " manifest, evidence, passed) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (uuid.UUID(run_id), c.rank, c.strategy.metadata["name"], json.dumps(c.genome.to_k8s()), "{}",
                 json.dumps([w.to_k8s() for w in c.evidence.windows]), c.evidence.oos_return_pct,
                 c.evidence.max_drawdown, c.evidence.sharpe, c.evidence.trades, c.evidence.deflated_sharpe,
                 json.dumps(c.strategy.to_k8s()), json.dumps(c.evidence.to_k8s()), c.evidence.passed)
                for c in candidates
            ],
        )


async def recent_runs(conn: Any, goal: str, limit: int = 5) -> list[dict[str, Any]]:
    """A Goal's newest evolution runs, each with its ranked results (every column, as stored), for the API."""
    from psycopg.rows import dict_row

    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM evolution_runs WHERE goal = %s ORDER BY started_at DESC LIMIT %s",
                          (goal, limit))
        runs = list(await cur.fetchall())
        for run in runs:
            await cur.execute("SELECT to_jsonb(r) AS row FROM evolution_results r WHERE run_id = %s ORDER BY rank",
                              (run["id"],))
            run["results"] = [r["row"] for r in await cur.fetchall()]
    return runs
