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

``spec.evolution.predictor`` adds the LSTM-Transformer's output to the genetic search's operands
(:func:`train_predictor`, which needs the training image's JAX too).  The network is trained once per
run, on every candle set's bars before the first window's search *validation* part: no out-of-sample
window reads a bar it was fitted on, and neither does any search's ranking of its survivors (a model
that had seen window 0's validation bars would make its own genomes look better there than they are;
later windows' in-sample bars past that point are true predictions of the one fixed model).  One
model for every window keeps a candidate's operand the same wherever it is scored: a candidate chosen
in window k is scored on the later windows with the very model it was chosen with, and paper trades
it.  The bars between the training end and the first out-of-sample window (window 0's search
validation part) are the predictor's own validation: its skill against predicting no change there is
what :attr:`SelectionSummary.predictor` reports.  The model is bound to the ``prediction`` indicator
for the run (:func:`kubetrade.prediction.model.bound_prediction`), every search draws prediction rules
with levels from its own training part (:func:`kubetrade.engine.evolve.prediction_operand`), and the
genomes that use it are judged by the same gates; those that go to paper name the stored file in
``spec.model`` (``registry://<goal>-predictor`` and its sha256; :attr:`GoalRun.predictor` holds the
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
from typing import Any, ClassVar

import numpy as np

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
    align,
    plan_windows,
    scored_evidence,
    walk_forward,
    windows_only,
    with_trials,
)
from kubetrade.lifecycle.gates import judged, no_pass_message
from kubetrade.prediction import model
from kubetrade.prediction.errors import ModelError
from kubetrade.resources.genome import Genome
from kubetrade.resources.goal import (
    GoalSpec,
    PredictorSettings,
    PredictorSummary,
    RLSettings,
    SelectionSummary,
    SourceCounts,
)
from kubetrade.resources.strategy import ModelReference, SelectionEvidence, Strategy, StrategyStatus
from kubetrade.selection.pairs import RankedPair, Rejected, rank_pairs

GOAL_LABEL = "kubetrade.io/goal"
DAY_MS = 86_400_000
POLICY_FEATURES = "bars-v1"
"""The feature set a policy observes (:data:`kubetrade.prediction.features.BAR_FEATURES`)."""
PREDICTOR_FEATURES = "bars-v1"
"""The feature set the Goal's predictor reads (the same :data:`~kubetrade.prediction.features.BAR_FEATURES`)."""


@dataclass
class Ranked:
    """One candidate after the gate: its name if it was made a Strategy, its judged evidence."""

    rank: int
    key: str
    evidence: SelectionEvidence
    strategy: Strategy
    genome: Genome | None = None


@dataclass(frozen=True)
class PublishedModel:
    """A trained model's ONNX file, to be written to the model store as ``name`` (with what it was trained on)."""

    name: str
    onnx: bytes
    sha256: str
    train_from: datetime
    train_to: datetime
    metrics: dict[str, Any]
    config: dict[str, Any]
    kind: ClassVar[str]
    features: ClassVar[str]


@dataclass(frozen=True)
class PublishedPolicy(PublishedModel):
    """A policy candidate's ONNX file, stored under its Strategy's name."""

    kind: ClassVar[str] = "policy"
    features: ClassVar[str] = POLICY_FEATURES


@dataclass(frozen=True)
class PublishedPredictor(PublishedModel):
    """The run's trained predictor, stored as ``registry://<goal>-predictor``; ``validation_*``: the bars after
    its training that no out-of-sample window sees, where its skill was measured."""

    validation_from: datetime
    validation_to: datetime
    kind: ClassVar[str] = "predictor"
    features: ClassVar[str] = PREDICTOR_FEATURES

    @property
    def reference(self) -> ModelReference:
        return ModelReference(uri=f"registry://{self.name}", sha256=self.sha256, features=PREDICTOR_FEATURES)


def predictor_name(goal_name: str) -> str:
    """The model-store name of a Goal's predictor (each run's file is a new row under it, told apart by sha256)."""
    return f"{goal_name}-predictor"


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
    predictor: PublishedPredictor | None = None
    """The predictor the run trained (spec.evolution.predictor), which every prediction genome's spec.model names."""

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
    predictor = (train_predictor(goal_name, data, cfg, wf, evo.predictor, cfg.seed, progress)
                 if evo.predictor is not None else None)
    try:
        if "genomes" in sources:
            walk = _search(data, cfg, wf, progress, bench_data, used, predictor)
        else:
            walk = windows_only(data, cfg, wf, benchmark_data=bench_data)
    except (WalkForwardError, AltDataError) as exc:
        raise GoalRunError(f"spec.evolution: {exc}") from None
    except ModelError as exc:
        raise GoalRunError(f"spec.evolution.predictor: {exc}") from None
    rl = evo.rl or RLSettings()
    observed = predictor if rl.observe_prediction else None
    policies = (_train_policies(data, walk, cfg, rl, cfg.seed, progress, observed)
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
            if observed is not None:  # the runner feeds the policy the very predictor it was trained with
                st.spec = st.spec.model_copy(update={"model": observed.reference})
            published[name] = _published(name, pc, e)
        elif predictor is not None and model.uses(genome, model.INDICATOR):
            st.spec = st.spec.model_copy(update={"model": predictor.reference})
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
    pred_summary = None
    if predictor is not None:
        using = [r for r in ranked if r.evidence.source == "genomes" and r.genome is not None
                 and model.uses(r.genome, model.INDICATOR)]
        pred_summary = _predictor_summary(predictor, len(using), sum(1 for r in using if r.evidence.passed))
        skill = pred_summary.validation_skill
        message += (f"; predictor {predictor.sha256[:12]} (validation skill vs no change "
                    f"{'unknown' if skill is None else f'{skill:+.2%}'}): {pred_summary.candidates} of "
                    f"{len(ranked)} candidates use its prediction, {pred_summary.passed} passed")
    selection = SelectionSummary(
        time=now or datetime.now(UTC), run=run_id, trials=trials, candidates=len(ranked), passed=len(passed),
        to_paper=len(strategies),
        best_deflated_sharpe=max((e.deflated_sharpe for e in evidence), default=None),
        best_pbo=min(pbos, default=None),
        best_oos_return_pct=max((e.oos_return_pct for e in evidence), default=None),
        benchmark_return_pct=walk.benchmark_return(), message=message, sources=counts, predictor=pred_summary)
    return GoalRun(run_id, symbols, cfg, walk, ranked, strategies, selection, data, pairs, left_out, published,
                   rl_trials, predictor)


def _search(data: list[Candles], cfg: EvolveConfig, wf: WalkForwardConfig, progress: Progress | None,
            bench_data: Candles | None, alt: AltData | None, predictor: PublishedPredictor | None,
            ) -> WalkForwardResult:
    """The genome searches of every window, with the predictor bound to ``prediction`` while they run."""
    if predictor is None:
        return walk_forward(data, cfg, wf, progress, benchmark_data=bench_data, alt=alt)
    loaded = model.from_bytes(predictor.onnx, predictor.reference.uri, predictor.reference)
    with model.bound_prediction(loaded):
        return walk_forward(data, cfg, wf, progress, benchmark_data=bench_data, alt=alt, prediction=True)


def predictor_cut(data: list[Candles], cfg: EvolveConfig, wf: WalkForwardConfig) -> tuple[int, int]:
    """(end of the predictor's training bars, start of the first out-of-sample window), as times (ms).

    The training ends where window 0's search validation part starts (the same split
    :class:`kubetrade.engine.evolve.EvolveConfig` ``train_fraction`` makes of every search's in-sample bars).
    """
    t0, n, _ = align(data)
    w = plan_windows(n, wf)[0]
    split = w.is_start + int((w.is_end - w.is_start) * cfg.train_fraction)
    bar = data[0].bar_ms
    return t0 + split * bar, t0 + w.oos_start * bar


def train_predictor(goal_name: str, data: list[Candles], cfg: EvolveConfig, wf: WalkForwardConfig,
                    p: PredictorSettings, seed: int, progress: Progress | None = None) -> PublishedPredictor:
    """Train the LSTM-Transformer on the bars before :func:`predictor_cut` and validate it on those up to the first
    out-of-sample window (see the module docstring)."""
    try:
        from kubetrade.prediction import learn
        from kubetrade.prediction.network import NetConfig
    except ImportError as exc:
        raise GoalRunError(
            f"spec.evolution.predictor asks for a trained predictor, but this image has no training libraries "
            f"({exc.name} cannot be imported): the operator runs such a Goal's evolution in its training image "
            f"(chart value image.train, operator variable KUBETRADE_TRAIN_IMAGE)") from None
    try:
        until, oos = predictor_cut(data, cfg, wf)
    except WalkForwardError as exc:
        raise GoalRunError(f"spec.evolution: {exc}") from None
    net = NetConfig(window=p.window, hidden=p.hidden, heads=p.heads, layers=p.layers, ffn=2 * p.hidden,
                    horizon=p.horizon, epochs=p.epochs, seed=p.seed if p.seed is not None else seed)
    report = progress or (lambda done, total, msg: None)
    report(0, net.epochs, f"training the predictor on the bars before {_iso(until)}")
    try:
        trained = learn.train_predictor(data, net, until_ms=until, progress=lambda e, row: report(
            e, net.epochs, f"predictor epoch {e}: validation MSE {row['val_mse']:.4f}"))
    except ValueError as exc:
        raise GoalRunError(f"spec.evolution.predictor: the bars before the first window's search validation part "
                           f"({_iso(until)}) cannot train it: {exc}") from None
    name = predictor_name(goal_name)
    validation: dict[str, Any] = {}
    for c in data:
        start = int(np.searchsorted(c.time, until))
        end = int(np.searchsorted(c.time, oos)) - net.horizon  # no target reads an out-of-sample close
        if end - start < 2:
            continue
        pred = learn.onnx_series(trained.onnx, c)
        validation[c.symbol or c.label] = learn.report(learn.evaluate(pred, c, start, end, net.horizon,
                                                                      cfg.costs.fee, cfg.costs.slippage))
    metrics = {"training": trained.result.summary(), "validation": validation,
               "validation_window": {"from": _iso(until), "to": _iso(oos)}}
    return PublishedPredictor(name, trained.onnx, trained.sha256, _dt(trained.train_from), _dt(trained.train_to),
                              metrics, trained.config(), validation_from=_dt(until), validation_to=_dt(oos))


def _predictor_summary(p: PublishedPredictor, candidates: int, passed: int) -> PredictorSummary:
    rows = list(p.metrics["validation"].values())
    bars = sum(r["bars"] for r in rows)
    skill = direction = None
    if bars:
        mse = sum(r["mse"] * r["bars"] for r in rows) / bars
        zero = sum(r["mse_zero"] * r["bars"] for r in rows) / bars
        skill = 1 - mse / zero if zero > 0 else None
        direction = sum(r["direction_accuracy"] * r["bars"] for r in rows) / bars
    return PredictorSummary(model=p.reference.uri, sha256=p.sha256, train_from=p.train_from, train_to=p.train_to,
                            validation_from=p.validation_from, validation_to=p.validation_to, validation_skill=skill,
                            validation_direction=direction, best_epoch=p.metrics["training"]["best_epoch"],
                            candidates=candidates, passed=passed)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _iso(ms: int) -> str:
    return _dt(ms).strftime("%Y-%m-%dT%H:%MZ")


def _train_policies(data: list[Candles], walk: WalkForwardResult, cfg: EvolveConfig, rl: RLSettings, seed: int,
                    progress: Progress | None, predictor: PublishedPredictor | None = None) -> Any:
    """The PPO candidates of every window (:func:`kubetrade.learning.walkforward.policy_walk_forward`), observing
    ``predictor``'s output when given (rl.observePrediction)."""
    try:
        from kubetrade.learning.walkforward import policy_walk_forward
    except ImportError as exc:
        raise GoalRunError(
            f"spec.evolution.sources asks for rl, but this image has no training libraries ({exc.name} cannot be "
            f"imported): the operator runs such a Goal's evolution in its training image (chart value image.train, "
            f"operator variable KUBETRADE_TRAIN_IMAGE)") from None
    try:
        loaded = (model.from_bytes(predictor.onnx, predictor.reference.uri, predictor.reference)
                  if predictor is not None else None)
        return policy_walk_forward(data, walk, cfg, rl, seed=rl.seed if rl.seed is not None else seed,
                                   progress=progress, predictor=loaded)
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
