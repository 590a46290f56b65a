"""One evolution run for a Goal (pure apart from the search itself: no I/O here).

Steps: (1) the symbols - ``spec.evolution.symbols``, or the pair selection's top ``topN``
among the candle sets given (:mod:`kubetrade.selection.pairs`); (2) the last
``backtestDays`` of each; (3) :func:`kubetrade.engine.evolve.evolve` with
:meth:`EvolveConfig.from_goal`; (4) the survivors as Strategy resources in paper mode,
labelled ``kubetrade.io/goal=<goal>``, their validation figures in ``status.backtest``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kubetrade.candles import Candles
from kubetrade.engine.evolve import EvolveConfig, EvolveResult, Progress, evolve
from kubetrade.engine.publish import ManifestSettings, performance_summary, strategy_manifest
from kubetrade.engine.runs import Costs
from kubetrade.resources.goal import GoalSpec
from kubetrade.resources.strategy import Strategy, StrategyStatus
from kubetrade.selection.pairs import RankedPair, Rejected, rank_pairs

GOAL_LABEL = "kubetrade.io/goal"
DAY_MS = 86_400_000


@dataclass
class GoalRun:
    run_id: str
    symbols: list[str]
    config: EvolveConfig
    result: EvolveResult
    strategies: list[Strategy]
    data: list[Candles]
    ranked: list[RankedPair] = field(default_factory=list)
    left_out: list[Rejected] = field(default_factory=list)


class GoalRunError(ValueError):
    """The run cannot start: no symbols, no data; the message says what is missing."""


def choose_symbols(spec: GoalSpec, available: Mapping[str, Candles]) -> tuple[list[str], list[RankedPair],
                                                                                 list[Rejected]]:
    evo = spec.evolution
    if evo.symbols:
        missing = [s for s in evo.symbols if s not in available]
        if missing:
            raise GoalRunError(f"spec.evolution.symbols: no {evo.timeframe} candles stored for {', '.join(missing)}; "
                               f"available: {', '.join(sorted(available)) or 'none'}")
        return list(evo.symbols), [], []
    ps = evo.pair_selection
    assert ps is not None  # the GoalSpec validator requires symbols or pairSelection
    ranked, rejected = rank_pairs(available, quote=ps.quote, top_n=ps.top_n, min_daily_volume=ps.min_daily_volume)
    if not ranked:
        reasons = "; ".join(f"{r.symbol}: {r.reason}" for r in rejected) or "no candidate pairs"
        raise GoalRunError(f"spec.evolution.pairSelection selected no pair ({reasons})")
    return [p.symbol for p in ranked], ranked, rejected


def run_goal_evolution(
    goal_name: str, spec: GoalSpec, available: Mapping[str, Candles], *, seed: int,
    namespace: str | None = None, overrides: Mapping[str, Any] | None = None, progress: Progress | None = None,
    capital_per_strategy: float | None = None,
) -> GoalRun:
    """Evolve strategies for a goal on the candle sets given (one per symbol, the goal's timeframe)."""
    symbols, ranked, left_out = choose_symbols(spec, available)
    evo = spec.evolution
    bars = evo.backtest_days * DAY_MS // max(1, available[symbols[0]].bar_ms)
    data = [available[s].slice(max(0, len(available[s]) - int(bars)), len(available[s])) for s in symbols]
    costs = Costs(fee=0.001, slippage=0.0002, init_cash=spec.target.capital.amount)
    cfg = EvolveConfig.from_goal(evo, costs, seed)
    if overrides:
        cfg = replace(cfg, **overrides)
    result = evolve(data, cfg, progress)
    run_id = str(uuid.uuid4())
    settings = ManifestSettings(
        exchange=evo.exchange, capital=capital_per_strategy or spec.target.capital.amount / max(1, evo.max_paper),
        currency=spec.target.capital.currency, risk_policy=spec.risk_policy_ref.name, goal=goal_name,
        namespace=namespace, name_prefix=f"{goal_name[:40]}-evo",
    )
    strategies = []
    for rank, survivor in enumerate(result.survivors, start=1):
        st = strategy_manifest(survivor, rank, run_id, data, cfg, settings)
        st.status = StrategyStatus(phase="Pending", backtest=performance_summary(survivor))
        strategies.append(st)
    return GoalRun(run_id, symbols, cfg, result, strategies, data, ranked, left_out)
