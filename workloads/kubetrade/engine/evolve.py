"""NSGA-II evolution of genomes (return against drawdown) with guards against overfitting.

The search only ever sees the training part of its bars (the first ``train_fraction`` of
each candle set, or of the range ``bounds`` gives it: a walk-forward window's in-sample
part, :mod:`kubetrade.engine.walkforward`).  Survivors must also trade enough on the
held-out validation part and are ranked on validation results; each carries the deflated
Sharpe ratio of its validation returns (pooled over the candle sets) after every genome
tried.  Every genome tried is kept (``EvolveResult.trials``) with the return sums of its
training run per block, from which the walk-forward computes the probability of backtest
overfitting of the search.  Everything random draws from one seeded generator, and the
kernels are deterministic, so the same seed and data give the same strategies.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from deap import base, tools

from kubetrade.candles import Candles, FloatArray
from kubetrade.engine import altdata, genes, indicators
from kubetrade.engine.altdata import AltData, AltOperand
from kubetrade.engine.compile import FeaturePlan, SeriesKey, build_features, compile_genomes
from kubetrade.engine.performance import Metrics
from kubetrade.engine.runs import Costs, run_program_segments
from kubetrade.engine.stats import Moments, deflated_sharpe
from kubetrade.resources.genome import Genome
from kubetrade.resources.goal import EvolutionSettings

Progress = Callable[[int, int, str], None]


class FitnessReturnDrawdown(base.Fitness):  # type: ignore[misc]
    """Maximise the mean training return, minimise the worst training drawdown."""

    weights = (1.0, -1.0)


@dataclass
class Individual:
    spec: genes.Spec
    fitness: FitnessReturnDrawdown = field(default_factory=FitnessReturnDrawdown)

    @property
    def key(self) -> str:
        return json.dumps(self.spec, sort_keys=True)


@dataclass(frozen=True)
class EvolveConfig:
    population: int = 500
    generations: int = 10
    seed: int = 42
    train_fraction: float = 0.7
    min_trades: int = 30
    """Fewest closed trades (all candle sets together) on the training part; validation needs its share."""
    top: int = 150
    """Most survivors to return (the best first)."""
    top_fraction: float = 1.0
    """Fraction of the survivors to return before ``top`` caps it (a Goal's paperFraction)."""
    market: Literal["spot", "perpetual"] = "spot"
    costs: Costs = field(default_factory=Costs)
    crossover_prob: float = 0.7
    mutation_prob: float = 0.4

    def __post_init__(self) -> None:
        if self.population < 8 or self.population % 4:
            raise ValueError(
                f"population {self.population} must be a multiple of 4 and at least 8 (NSGA-II tournament)")
        if self.generations < 0:
            raise ValueError("generations must be >= 0")
        if not 0.2 <= self.train_fraction <= 0.9:
            raise ValueError(f"train fraction {self.train_fraction} must be within [0.2, 0.9]")
        if not 0 < self.top_fraction <= 1:
            raise ValueError(f"top fraction {self.top_fraction} must be within (0, 1]")

    @classmethod
    def from_goal(cls, evo: EvolutionSettings, costs: Costs, seed: int) -> EvolveConfig:
        """The search a Goal's ``spec.evolution`` asks for (population rounded up to a multiple of 4).

        ``seed`` is used when the Goal leaves its seed unset (a new one every run).
        """
        return cls(population=-(-evo.population // 4) * 4, generations=evo.generations,
                   seed=evo.seed if evo.seed is not None else seed, train_fraction=1 - evo.validation_fraction,
                   min_trades=evo.min_trades, top=evo.max_paper, top_fraction=evo.paper_fraction,
                   market=evo.market, costs=costs)


@dataclass
class Survivor:
    genome: Genome
    train: dict[str, Metrics]
    validation: dict[str, Metrics]
    deflated_sharpe: float

    @property
    def validation_return(self) -> float:
        return float(np.mean([m.total_return for m in self.validation.values()]))

    @property
    def validation_drawdown(self) -> float:
        return max(m.max_drawdown for m in self.validation.values())

    @property
    def validation_sharpe(self) -> float:
        return float(np.mean([m.sharpe for m in self.validation.values()]))


@dataclass
class EvolveResult:
    survivors: list[Survivor]
    trials: int
    """Distinct genomes tried (the number a deflated Sharpe ratio must discount)."""
    evaluations: int
    generations: int
    datasets: list[str]
    tried: dict[str, genes.Spec] = field(default_factory=dict)
    """Every genome tried, by its key, in the order first tried."""
    blocks: FloatArray | None = None
    """(trials, blocks, 3): count, sum and sum of squares of each tried genome's per-bar training returns per
    block (all candle sets added), in the order of ``tried``; None when the search was asked for no blocks."""


class Features:
    """The feature matrices of some candle sets, grown as batches bring new operand series.

    One instance can serve several searches over the same candles (the windows of a
    walk-forward) and the scoring after them, so each indicator series is computed once.
    """

    def __init__(self, data: Sequence[Candles], alt: AltData | None = None) -> None:
        self.data = list(data)
        self.alt = alt
        self.plan = FeaturePlan()
        self.caches: list[dict[SeriesKey, FloatArray]] = [{} for _ in data]
        self.matrices: list[FloatArray] = [np.empty((0, len(c))) for c in data]

    def matrix(self, d: int) -> FloatArray:
        if self.matrices[d].shape[0] < len(self.plan.keys):
            self.matrices[d] = build_features(self.plan, self.data[d], self.caches[d], self.alt)
        return self.matrices[d]


def block_ends(start: int, end: int, blocks: int) -> list[int]:
    """Ends of ``blocks`` near-equal consecutive blocks of bars [start, end)."""
    return [start + (end - start) * (k + 1) // blocks for k in range(blocks)]


class _Evaluator:
    """Backtests batches of genomes on every candle set, sharing one feature plan and cache."""

    def __init__(self, data: Sequence[Candles], cfg: EvolveConfig, bounds: Sequence[tuple[int, int]] | None = None,
                 blocks: int = 0, features: Features | None = None) -> None:
        self.data, self.cfg = data, cfg
        self.features = features if features is not None else Features(data)
        if len(self.features.data) != len(data) or any(a is not b for a, b in zip(self.features.data, data,
                                                                                      strict=True)):
            raise ValueError("the shared features were built for other candle sets")
        self.bounds = list(bounds) if bounds is not None else [(0, len(c)) for c in data]
        self.splits = [s + int((e - s) * cfg.train_fraction) for s, e in self.bounds]
        self.blocks = blocks
        self.segments = [block_ends(s, split, blocks) if blocks else []
                         for (s, _), split in zip(self.bounds, self.splits, strict=True)]
        self.trial_blocks: list[FloatArray] = []

    def run(self, genomes: Sequence[Genome], part: Literal["train", "validation"], *, trials: bool = False,
            ) -> list[dict[str, Metrics]]:
        """Metrics per genome and candle set; ``trials`` keeps the training return sums per block."""
        _, program = compile_genomes(genomes, market=self.cfg.market, plan=self.features.plan)
        out: list[dict[str, Metrics]] = [{} for _ in genomes]
        pooled = np.zeros((len(genomes), self.blocks, 3)) if trials and self.blocks else None
        for d, c in enumerate(self.data):
            start, end = (self.bounds[d][0], self.splits[d]) if part == "train" else (self.splits[d],
                                                                                       self.bounds[d][1])
            segments = self.segments[d] if pooled is not None else []
            metrics, segs = run_program_segments(self.features.plan, program, c, self.cfg.costs, start=start,
                                                 end=end, features=self.features.matrix(d), segments=segments)
            for g, m in enumerate(metrics):
                out[g][c.symbol or c.label] = m
            if pooled is not None:
                pooled += segs
        if pooled is not None:
            self.trial_blocks.append(pooled)
        return out


def prediction_key() -> SeriesKey:
    """The feature row of the ``prediction`` indicator (a model must be bound to it in this process)."""
    try:
        values, output = indicators.resolve(genes.PREDICTION, {})
    except indicators.IndicatorError:
        raise ValueError("the search was asked for the prediction operand, but no predictor is bound to the "
                         "prediction indicator in this process") from None
    return ("indicator", genes.PREDICTION, values, output)


def prediction_operand(features: Features, bounds: Sequence[tuple[int, int]], costs: Costs,
                       quantiles: int = 9) -> genes.PredictionOperand:
    """Rule levels for ``prediction``: its deciles over the bars [start, end) of each set (a search's training
    part: no later bar shapes them), zero, and plus and minus the round-trip cost."""
    row = features.plan.add(prediction_key())
    values = np.concatenate([features.matrix(d)[row, s:e] for d, (s, e) in enumerate(bounds)])
    values = values[np.isfinite(values)]
    if values.size < quantiles:
        raise ValueError(f"the prediction has {values.size} values on the search's training bars, too few to draw "
                         f"{quantiles} levels from")
    cost = 2 * (costs.fee + costs.slippage)
    qs = np.quantile(values, np.linspace(0.1, 0.9, quantiles))
    return genes.PredictionOperand(tuple(sorted({*(float(altdata.round_level(q)) for q in qs), 0.0, cost, -cost})))


def _fitness(metrics: dict[str, Metrics], min_trades: int) -> tuple[float, float]:
    if sum(m.trades for m in metrics.values()) < min_trades:
        return -1.0, 1.0  # dominated by anything that trades
    return (float(np.mean([m.total_return for m in metrics.values()])),
            max(m.max_drawdown for m in metrics.values()))


def evolve(data: Sequence[Candles], cfg: EvolveConfig, progress: Progress | None = None, *,
           bounds: Sequence[tuple[int, int]] | None = None, blocks: int = 0,
           features: Features | None = None, alt: AltData | None = None, prediction: bool = False,
           ) -> EvolveResult:
    """Run the search and return the ranked survivors (best first, at most ``cfg.top``).

    ``bounds`` limits the search to bars [start, end) of each candle set (the bars before
    still warm the indicators up); ``blocks`` > 0 keeps each tried genome's training return
    sums in that many blocks (for CSCV); ``features`` shares computed series between searches.
    ``alt``: alternative-data series the genomes may use, each compared with its deciles among
    the values known before the training part's last bar.  ``prediction``: the genomes may use the
    ``prediction`` indicator (the model bound to it in this process), compared with the levels of
    :func:`prediction_operand` on the training part.
    """
    if not data:
        raise ValueError("evolve needs at least one candle set")
    rng = random.Random(cfg.seed)
    random.seed(cfg.seed)  # deap's selection operators draw from the module-level generator
    if features is None:
        features = Features(data, alt)
    ev = _Evaluator(data, cfg, bounds, blocks, features)
    alt_ops: list[AltOperand] = []
    if alt:
        train_end = int(data[0].time[ev.splits[0] - 1]) + data[0].bar_ms
        alt_ops = altdata.operands([alt[k].ref for k in sorted(alt)], alt, train_end)
    pred_op = (prediction_operand(features, [(s, split) for (s, _), split in zip(ev.bounds, ev.splits, strict=True)],
                                  cfg.costs) if prediction else None)
    seen: dict[str, tuple[float, float]] = {}
    tried: dict[str, genes.Spec] = {}
    evaluations = 0
    report = progress or (lambda done, total, msg: None)
    both = cfg.market == "perpetual"

    def evaluate(pop: list[Individual]) -> None:
        nonlocal evaluations
        todo: dict[str, Individual] = {}
        for ind in pop:
            if ind.key in seen:
                ind.fitness.values = seen[ind.key]
            else:
                todo.setdefault(ind.key, ind)
        if todo:
            batch = list(todo.values())
            results = ev.run([genes.to_genome(i.spec) for i in batch], "train", trials=True)
            evaluations += len(batch)
            for ind, res in zip(batch, results, strict=True):
                seen[ind.key] = _fitness(res, cfg.min_trades)
                tried[ind.key] = ind.spec
        for ind in pop:
            ind.fitness.values = seen[ind.key]

    pop = [Individual(genes.random_spec(rng, both_sides=both, alt=alt_ops, pred=pred_op))
           for _ in range(cfg.population)]
    evaluate(pop)
    pop = tools.selNSGA2(pop, cfg.population)
    report(0, cfg.generations, f"generation 0: {len(seen)} genomes tried")
    for gen in range(1, cfg.generations + 1):
        parents = tools.selTournamentDCD(pop, len(pop))
        offspring = [Individual(dict(p.spec)) for p in parents]
        for a, b in zip(offspring[::2], offspring[1::2], strict=True):
            if rng.random() < cfg.crossover_prob:
                a.spec, b.spec = genes.crossover(a.spec, b.spec, rng)
        for ind in offspring:
            if rng.random() < cfg.mutation_prob:
                ind.spec = genes.mutate(ind.spec, rng, alt_ops, pred_op)
        evaluate(offspring)
        pop = tools.selNSGA2(pop + offspring, cfg.population)
        best = max(ind.fitness.values[0] for ind in pop)
        report(gen, cfg.generations, f"generation {gen}: {len(seen)} genomes tried, best train return {best:+.2%}")
    result = _select(pop, ev, cfg, len(seen), evaluations)
    result.tried = tried
    if blocks:
        result.blocks = np.concatenate(ev.trial_blocks) if ev.trial_blocks else np.zeros((0, blocks, 3))
    return result


def pooled(metrics: dict[str, Metrics]) -> Moments:
    """The per-bar returns of every candle set taken together."""
    out = Moments()
    for m in metrics.values():
        out = out + m.returns
    return out


def _select(pop: list[Individual], ev: _Evaluator, cfg: EvolveConfig, trials: int, evaluations: int) -> EvolveResult:
    unique = list({ind.key: ind for ind in pop if ind.fitness.values[0] > -1.0}.values())
    genomes = [genes.to_genome(i.spec) for i in unique]
    labels = [c.symbol or c.label for c in ev.data]
    if not genomes:
        return EvolveResult([], trials, evaluations, cfg.generations, labels)
    train = ev.run(genomes, "train")
    valid = ev.run(genomes, "validation")
    # the luck level: the best of ``trials`` tries, with the spread of the candidates' validation Sharpe ratios
    val_sharpes = [pooled(va).sharpe for va in valid]
    variance = float(np.var(val_sharpes, ddof=1)) if len(val_sharpes) > 1 else 0.0
    val_share = (1 - cfg.train_fraction) / cfg.train_fraction
    min_val_trades = max(1, math.ceil(cfg.min_trades * val_share))
    survivors = []
    behaviours: set[tuple[Metrics, ...]] = set()
    for g, tr, va in zip(genomes, train, valid, strict=True):
        if sum(m.trades for m in va.values()) < min_val_trades:
            continue
        # genomes that differ only in rules that never decide anything trade identically: keep one
        behaviour = (*tr.values(), *va.values())
        if behaviour in behaviours:
            continue
        behaviours.add(behaviour)
        moments = pooled(va)
        dsr = deflated_sharpe(moments, trials, variance).value if moments.n >= 2 else 0.0
        survivors.append(Survivor(g, tr, va, dsr))
    # rank: non-dominated fronts on validation (return up, drawdown down), then deflated Sharpe
    holders = []
    for s in survivors:
        h = Individual({})
        h.fitness.values = (s.validation_return, s.validation_drawdown)
        holders.append((h, s))
    fronts = tools.sortNondominated([h for h, _ in holders], len(holders)) if holders else []
    front_of = {id(h): f for f, front in enumerate(fronts) for h in front}
    holders.sort(key=lambda hs: (front_of[id(hs[0])], -hs[1].deflated_sharpe, -hs[1].validation_return))
    keep = min(cfg.top, math.ceil(len(holders) * cfg.top_fraction))
    return EvolveResult([s for _, s in holders][:keep], trials, evaluations, cfg.generations, labels)


def summary_row(rank: int, s: Survivor) -> dict[str, Any]:
    """The figures a person wants in a table."""
    return {
        "rank": rank,
        "train_return": float(np.mean([m.total_return for m in s.train.values()])),
        "val_return": s.validation_return,
        "val_max_dd": s.validation_drawdown,
        "val_sharpe": s.validation_sharpe,
        "val_trades": sum(m.trades for m in s.validation.values()),
        "deflated_sharpe": s.deflated_sharpe,
    }
