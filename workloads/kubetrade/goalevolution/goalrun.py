"""One evolution run for a Goal (pure apart from the search itself: no I/O here).

Steps: (1) the symbols - ``spec.evolution.symbols``, or the pair selection's top ``topN``
among the candle sets given (:mod:`kubetrade.selection.pairs`); (2) the last
``backtestDays`` of each, plus the bars the longest indicator needs to warm up; (3) the
walk-forward (:func:`kubetrade.engine.walkforward.walk_forward`): a search per window, every
chosen genome scored out of sample; (4) the paper gate (:func:`kubetrade.lifecycle.gates.paper_gate`)
on each candidate's evidence, with the Goal's ``spec.gates``; (5) the candidates that pass,
best deflated Sharpe ratio first, at most ``maxPaper`` (and ``paperFraction`` of them), as
Strategy resources in paper mode, labelled ``kubetrade.io/goal=<goal>``, their evidence in
``status.evidence``.  When none passes, no Strategy is made and :attr:`GoalRun.selection`
says so with the best figures seen - what the Goal's status and Event carry.

``kubetrade goal-evolution`` (the Goal's CronJob) and the evolution ``kubetrade up`` runs
both call :func:`run_goal_evolution`: one recipe, one gate.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from kubetrade.candles import Candles
from kubetrade.engine import genes
from kubetrade.engine.altdata import AltData, AltDataError
from kubetrade.engine.evolve import EvolveConfig, Progress
from kubetrade.engine.publish import ManifestSettings, evidence_summary, strategy_manifest
from kubetrade.engine.runs import Costs
from kubetrade.engine.walkforward import WalkForwardConfig, WalkForwardError, WalkForwardResult, walk_forward
from kubetrade.lifecycle.gates import judged, no_pass_message
from kubetrade.resources.goal import GoalSpec, SelectionSummary
from kubetrade.resources.strategy import SelectionEvidence, Strategy, StrategyStatus
from kubetrade.selection.pairs import RankedPair, Rejected, rank_pairs

GOAL_LABEL = "kubetrade.io/goal"
DAY_MS = 86_400_000


@dataclass
class Ranked:
    """One candidate after the gate: its name if it was made a Strategy, its judged evidence."""

    rank: int
    key: str
    evidence: SelectionEvidence
    strategy: Strategy


@dataclass
class GoalRun:
    run_id: str
    symbols: list[str]
    config: EvolveConfig
    walk: WalkForwardResult
    ranked: list[Ranked]
    """Every candidate, best deflated Sharpe ratio first, with its verdict."""
    strategies: list[Strategy]
    """The ones that passed and go to paper (within maxPaper)."""
    selection: SelectionSummary
    data: list[Candles]
    pairs: list[RankedPair] = field(default_factory=list)
    left_out: list[Rejected] = field(default_factory=list)

    @property
    def passed(self) -> list[Ranked]:
        return [r for r in self.ranked if r.evidence.passed]

    def goal_status(self) -> dict[str, Any]:
        """The fields of the Goal's status this run sets (``lastEvolution``, ``lastSelection``)."""
        s = self.selection
        summary = {"time": s.time.strftime("%Y-%m-%dT%H:%M:%SZ"), "generated": s.trials,
                   "survived": s.passed, "toPaper": s.to_paper, "message": s.message}
        return {"lastEvolution": summary, "lastSelection": s.to_k8s()}

    def event(self) -> tuple[str, str, str]:
        """(type, reason, message) of the Event the run leaves on its Goal."""
        if self.strategies:
            return "Normal", "StrategiesToPaper", self.selection.message
        return "Warning", "NoStrategyPassed", self.selection.message


class GoalRunError(ValueError):
    """The run cannot start: no symbols, no data, unusable windows; the message says what is wrong."""


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


def history_days(spec: GoalSpec, bar_ms: int) -> float:
    """Days of candles a run needs: backtestDays and the longest indicator warm-up before them."""
    return spec.evolution.backtest_days + genes.warmup() * bar_ms / DAY_MS


def run_goal_evolution(
    goal_name: str, spec: GoalSpec, available: Mapping[str, Candles], *, seed: int,
    namespace: str | None = None, overrides: Mapping[str, Any] | None = None, progress: Progress | None = None,
    capital_per_strategy: float | None = None, now: datetime | None = None, alt: AltData | None = None,
) -> GoalRun:
    """Evolve, score and judge strategies for a goal on the candle sets given (one per symbol, one timeframe).

    ``alt`` holds the alternative-data series loaded for ``spec.evolution.alternativeData``; only those
    the Goal names become operands, and each one it names must be there.
    """
    symbols, pairs, left_out = choose_symbols(spec, available)
    refs = spec.evolution.alternative_data
    missing = [r.key for r in refs if r.key not in (alt or {})]
    if missing:
        raise GoalRunError(f"spec.evolution.alternativeData: no points stored for {', '.join(missing)} (a Collector "
                           f"of that provider must store them first)")
    used = {r.key: (alt or {})[r.key] for r in refs} or None
    evo = spec.evolution
    bar_ms = max(1, available[symbols[0]].bar_ms)
    bars = int(evo.backtest_days * DAY_MS // bar_ms)
    keep = bars + genes.warmup()
    data = [available[s].slice(max(0, len(available[s]) - keep), len(available[s])) for s in symbols]
    costs = Costs(fee=0.001, slippage=0.0002, init_cash=spec.target.capital.amount)
    cfg = EvolveConfig.from_goal(evo, costs, seed)
    if overrides:
        cfg = replace(cfg, **overrides)
    wf = WalkForwardConfig.from_goal(spec, bars)
    bench = spec.gates.benchmark_symbol
    bench_data = available.get(bench) if bench and spec.gates.benchmark == "buyAndHold" else None
    try:
        walk = walk_forward(data, cfg, wf, progress, benchmark_data=bench_data, alt=used)
    except (WalkForwardError, AltDataError) as exc:
        raise GoalRunError(f"spec.evolution: {exc}") from None
    run_id = str(uuid.uuid4())
    settings = ManifestSettings(
        exchange=evo.exchange, capital=capital_per_strategy or spec.target.capital.amount / max(1, evo.max_paper),
        currency=spec.target.capital.currency, risk_policy=spec.risk_policy_ref.name, goal=goal_name,
        namespace=namespace, name_prefix=f"{goal_name[:40]}-evo",
    )
    order = sorted(walk.evidence.items(), key=lambda kv: (-kv[1].deflated_sharpe, -kv[1].oos_return_pct, kv[0]))
    ranked = []
    for rank, (key, raw) in enumerate(order, start=1):
        e = judged(raw, spec.gates)
        st = strategy_manifest(walk.candidates[key].genome, evidence_summary(e), rank, run_id, data, cfg, settings)
        st.status = StrategyStatus(phase="Pending", backtest=evidence_summary(e), evidence=e)
        ranked.append(Ranked(rank, key, e, st))
    passed = [r for r in ranked if r.evidence.passed]
    quota = min(evo.max_paper, cfg.top, math.ceil(len(passed) * cfg.top_fraction))
    strategies = [r.strategy for r in passed[:quota]]
    evidence = [r.evidence for r in ranked]
    if passed:
        message = (f"{len(passed)} of {len(ranked)} candidates passed the gates, {len(strategies)} to paper; best DSR "
                   f"{passed[0].evidence.deflated_sharpe:.2f}")
    else:
        message = no_pass_message(evidence, walk.pbos)
    selection = SelectionSummary(
        time=now or datetime.now(UTC), run=run_id, trials=walk.trials, candidates=len(ranked), passed=len(passed),
        to_paper=len(strategies),
        best_deflated_sharpe=max((e.deflated_sharpe for e in evidence), default=None),
        best_pbo=min(walk.pbos, default=None),
        best_oos_return_pct=max((e.oos_return_pct for e in evidence), default=None),
        benchmark_return_pct=walk.benchmark_return(), message=message)
    return GoalRun(run_id, symbols, cfg, walk, ranked, strategies, selection, data, pairs, left_out)
