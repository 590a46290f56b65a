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

``spec.evolution.sources`` says where candidates come from: ``genomes`` (step 3's searches, the
default) and/or ``rl``: a PPO policy trained per window on its in-sample bars only
(:mod:`kubetrade.learning.walkforward`, imported only then: it needs the training image's JAX),
scored on the same out-of-sample bars with the same costs.  Both kinds join one candidate list,
ranked and judged by the same :func:`~kubetrade.lifecycle.gates.judged`; every PPO checkpoint
evaluated counts as a trial in every candidate's deflated Sharpe ratio, and a policy's PBO is
measured over its window's checkpoints.  A policy that goes to paper is a Strategy trading
:func:`~kubetrade.prediction.model.policy_genome` with ``spec.policy`` naming its ONNX file in the
model store (``registry://<strategy name>`` and its sha256; :attr:`GoalRun.policies` holds the
bytes :func:`kubetrade.goalevolution.outcome.store` writes there).

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
from kubetrade.engine.walkforward import (
    WalkForwardConfig,
    WalkForwardError,
    WalkForwardResult,
    scored_evidence,
    walk_forward,
    windows_only,
    with_trials,
)
from kubetrade.lifecycle.gates import judged, no_pass_message
from kubetrade.resources.genome import Genome
from kubetrade.resources.goal import GoalSpec, RLSettings, SelectionSummary, SourceCounts
from kubetrade.resources.strategy import ModelReference, SelectionEvidence, Strategy, StrategyStatus
from kubetrade.selection.pairs import RankedPair, Rejected, rank_pairs

GOAL_LABEL = "kubetrade.io/goal"
DAY_MS = 86_400_000
POLICY_FEATURES = "bars-v1"
"""The feature set a policy observes (:data:`kubetrade.prediction.features.BAR_FEATURES`)."""


@dataclass
class Ranked:
    """One candidate after the gate: its name if it was made a Strategy, its judged evidence."""

    rank: int
    key: str
    evidence: SelectionEvidence
    strategy: Strategy
    genome: Genome | None = None


@dataclass(frozen=True)
class PublishedPolicy:
    """A policy candidate's ONNX file, to be written to the model store under its Strategy's name."""

    name: str
    onnx: bytes
    sha256: str
    train_from: datetime
    train_to: datetime
    metrics: dict[str, Any]
    config: dict[str, Any]


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
    policies: dict[str, PublishedPolicy] = field(default_factory=dict)
    """Strategy name -> the ONNX policy it trades (every RL candidate, passed or not)."""
    rl_trials: int = 0
    """PPO checkpoints evaluated (0 without rl)."""

    def tried(self) -> str:
        """What the run tried, for its log line: genomes, PPO checkpoints, or both."""
        genomes = f"{self.walk.trials} genomes tried"
        if "rl" not in {c.source for c in self.selection.sources}:
            return genomes
        rl = f"{self.rl_trials} PPO checkpoints evaluated"
        return f"{genomes} and {rl}" if self.walk.candidates or self.walk.trials else rl

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
    sources = evo.sources
    try:
        if "genomes" in sources:
            walk = walk_forward(data, cfg, wf, progress, benchmark_data=bench_data, alt=used)
        else:
            walk = windows_only(data, cfg, wf, benchmark_data=bench_data)
    except (WalkForwardError, AltDataError) as exc:
        raise GoalRunError(f"spec.evolution: {exc}") from None
    policies = (_train_policies(data, walk, cfg, evo.rl or RLSettings(), cfg.seed, progress)
                if "rl" in sources else None)
    rl_trials = policies.trials if policies is not None else 0
    trials = walk.trials + rl_trials
    run_id = str(uuid.uuid4())
    settings = ManifestSettings(
        exchange=evo.exchange, capital=capital_per_strategy or spec.target.capital.amount / max(1, evo.max_paper),
        currency=spec.target.capital.currency, risk_policy=spec.risk_policy_ref.name, goal=goal_name,
        namespace=namespace, name_prefix=f"{goal_name[:40]}-evo",
    )
    # every trial of the selection (genomes tried and PPO checkpoints) deflates every candidate's Sharpe ratio
    pool: list[tuple[str, SelectionEvidence, Genome, Any]] = [
        (key, e, walk.candidates[key].genome, None) for key, e in with_trials(walk, trials).items()]
    if policies is not None:
        for key, pc in policies.candidates.items():
            e = scored_evidence(pc.scores, pc.window, walk.windows, trials, walk.bars_per_year, wf.benchmark,
                                pc.pbo.pbo if pc.pbo is not None else None, "rl")
            pool.append((key, e, pc.genome, pc))
    order = sorted(pool, key=lambda x: (-x[1].deflated_sharpe, -x[1].oos_return_pct, x[0]))
    ranked = []
    published: dict[str, PublishedPolicy] = {}
    for rank, (key, raw, genome, pc) in enumerate(order, start=1):
        e = judged(raw, spec.gates)
        st = strategy_manifest(genome, evidence_summary(e), rank, run_id, data, cfg, settings)
        if pc is not None:
            name = st.metadata["name"]
            ref = ModelReference(uri=f"registry://{name}", sha256=pc.trained.sha256, features=POLICY_FEATURES)
            st.spec = st.spec.model_copy(update={"policy": ref})
            published[name] = _published(name, pc, e)
        st.status = StrategyStatus(phase="Pending", backtest=evidence_summary(e), evidence=e)
        ranked.append(Ranked(rank, key, e, st, genome))
    passed = [r for r in ranked if r.evidence.passed]
    quota = min(evo.max_paper, cfg.top, math.ceil(len(passed) * cfg.top_fraction))
    strategies = [r.strategy for r in passed[:quota]]
    evidence = [r.evidence for r in ranked]
    pbos = walk.pbos + (policies.pbos if policies is not None else [])
    if passed:
        message = (f"{len(passed)} of {len(ranked)} candidates passed the gates, {len(strategies)} to paper; best DSR "
                   f"{passed[0].evidence.deflated_sharpe:.2f}")
    else:
        message = no_pass_message(evidence, pbos)
    to_paper = {id(st) for st in strategies}
    counts = [SourceCounts(source=src, trials=walk.trials if src == "genomes" else rl_trials,
                           candidates=sum(1 for r in ranked if r.evidence.source == src),
                           passed=sum(1 for r in passed if r.evidence.source == src),
                           to_paper=sum(1 for r in ranked if r.evidence.source == src and id(r.strategy) in to_paper))
              for src in sources]
    if "rl" in sources:
        message += "; by source: " + "; ".join(
            f"{'genomes' if c.source == 'genomes' else 'RL policies'} {c.candidates} candidates from {c.trials} "
            f"{'tried' if c.source == 'genomes' else 'checkpoints'}, {c.passed} passed" for c in counts)
    selection = SelectionSummary(
        time=now or datetime.now(UTC), run=run_id, trials=trials, candidates=len(ranked), passed=len(passed),
        to_paper=len(strategies),
        best_deflated_sharpe=max((e.deflated_sharpe for e in evidence), default=None),
        best_pbo=min(pbos, default=None),
        best_oos_return_pct=max((e.oos_return_pct for e in evidence), default=None),
        benchmark_return_pct=walk.benchmark_return(), message=message, sources=counts)
    return GoalRun(run_id, symbols, cfg, walk, ranked, strategies, selection, data, pairs, left_out, published,
                   rl_trials)


def _train_policies(data: list[Candles], walk: WalkForwardResult, cfg: EvolveConfig, rl: RLSettings, seed: int,
                    progress: Progress | None) -> Any:
    """The PPO candidates of every window (:func:`kubetrade.learning.walkforward.policy_walk_forward`)."""
    try:
        from kubetrade.learning.walkforward import policy_walk_forward
    except ImportError as exc:
        raise GoalRunError(
            f"spec.evolution.sources asks for rl, but this image has no training libraries ({exc.name} cannot be "
            f"imported): the operator runs such a Goal's evolution in its training image (chart value image.train, "
            f"operator variable KUBETRADE_TRAIN_IMAGE)") from None
    try:
        return policy_walk_forward(data, walk, cfg, rl, seed=rl.seed if rl.seed is not None else seed,
                                   progress=progress)
    except ValueError as exc:
        raise GoalRunError(f"spec.evolution.rl: {exc}") from None


def _published(name: str, pc: Any, e: SelectionEvidence) -> PublishedPolicy:
    t = pc.trained
    return PublishedPolicy(
        name, t.onnx, t.sha256, datetime.fromtimestamp(t.train_from / 1000, UTC),
        datetime.fromtimestamp(t.train_to / 1000, UTC),
        {"training": t.result.summary(), "window": pc.window, "checkpoints": pc.checkpoints,
         "pbo": pc.pbo.pbo if pc.pbo is not None else None, "evidence": e.to_k8s()},
        t.config())
