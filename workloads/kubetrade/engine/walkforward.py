"""Walk-forward evaluation: search on each window's in-sample bars, score on the bars after it.

Layout, on the candle sets' common bars (the last ``bars`` of them; anything before only
warms the indicators up): ``windows`` out-of-sample windows of ``oos_bars`` each, ``step_bars``
apart (default: back to back), the last one ending at the last bar.  Window ``k``'s search
sees only ``[is_start_k, oos_start_k)``: rolling, the same ``is_bars`` every time (default:
all the bars before the first window); anchored, from the first bar on, growing.

Per window, in order:

1. :func:`kubetrade.engine.evolve.evolve` on the in-sample bars (its own train/validation
   split inside them ranks the survivors);
2. the probability of backtest overfitting of that search, by CSCV over the training-return
   blocks of every genome it tried (:func:`kubetrade.engine.stats.pbo_from_blocks`);
3. its best ``per_window`` survivors join the candidates;
4. **one** parallel kernel pass over the window's out-of-sample bars scores every candidate
   chosen so far (in this window or before: none of them was chosen on these bars), a sample
   of this window's tried genomes (their spread of out-of-sample Sharpe ratios is reported)
   and the buy-and-hold benchmark, with the same costs.

Each candidate's evidence (:class:`kubetrade.resources.strategy.SelectionEvidence`) pools its
windows: compounded return, the per-bar returns' moments (so the Sharpe ratio and the deflated
Sharpe ratio use every out-of-sample bar), and the number of distinct genomes all the
searches tried as the number of trials.  The gates (:mod:`kubetrade.lifecycle.gates`) judge it.

The deflated Sharpe ratio's ``V``, the variance of the trials' Sharpe estimates, is taken
under the DSR's null hypothesis that no trial has skill: the sampling variance of a per-bar
Sharpe estimate over the candidate's pooled bars, ``1 / (T - 1)`` (Lo 2002; at a true Sharpe
of 0 skew and kurtosis drop out).  The trials' measured cross-sectional variance is not used:
it mixes estimation noise with differences that are not luck - fee drag (a genome that trades
every bar loses its fees for certain) and, when the search finds a real edge, the edge itself
(the population fills with it).  Measured here, it put the bar for a planted edge's best
genome (out-of-sample Sharpe 38) at 52, and on costless, driftless noise it still came out
1.3-1.6 times the sampling variance (exposure to each window's own drift).  Each window reports
it (``WindowResult.variance``) for comparison.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from kubetrade.candles import CandleError, Candles, validate
from kubetrade.engine import genes
from kubetrade.engine.altdata import AltData
from kubetrade.engine.compile import compile_genomes
from kubetrade.engine.evolve import EvolveConfig, EvolveResult, Features, evolve, pooled
from kubetrade.engine.performance import Metrics
from kubetrade.engine.runs import run_program
from kubetrade.engine.stats import Moments, Overfitting, deflated_sharpe, pbo_from_blocks
from kubetrade.engine.templates import buy_and_hold
from kubetrade.resources.genome import Genome
from kubetrade.resources.goal import GoalSpec
from kubetrade.resources.strategy import SelectionEvidence, WindowEvidence

Progress = Callable[[int, int, str], None]
Benchmark = Literal["cash", "buyAndHold"]


class WalkForwardError(ValueError):
    """Windows or data a walk-forward cannot use; the message names the values."""


@dataclass(frozen=True)
class WalkForwardConfig:
    windows: int = 3
    mode: Literal["rolling", "anchored"] = "rolling"
    bars: int | None = None
    """How many of the last common bars the windows cover (default: all)."""
    oos_bars: int | None = None
    """Bars per out-of-sample window (default: ``oos_fraction`` of ``bars``)."""
    oos_fraction: float = 0.1
    is_bars: int | None = None
    """In-sample bars of each rolling search, or of the first anchored one (default: all before window 0)."""
    step_bars: int | None = None
    """Bars from one out-of-sample start to the next (default ``oos_bars``; less would overlap)."""
    per_window: int = 5
    blocks: int = 16
    variance_sample: int = 500
    """Most tried genomes per window scored out of sample to report their spread of Sharpe ratios."""
    benchmark: Benchmark = "buyAndHold"
    benchmark_symbol: str | None = None

    def __post_init__(self) -> None:
        if self.windows < 1:
            raise WalkForwardError(f"windows {self.windows} must be at least 1")
        if self.mode not in ("rolling", "anchored"):
            raise WalkForwardError(f"mode {self.mode!r} must be rolling or anchored")
        if not 0 < self.oos_fraction <= 0.5:
            raise WalkForwardError(f"out-of-sample fraction {self.oos_fraction} must be within (0, 0.5]")
        if self.blocks < 2 or self.blocks % 2:
            raise WalkForwardError(f"blocks {self.blocks} must be even and at least 2 (CSCV splits them in halves)")
        if self.per_window < 1:
            raise WalkForwardError(f"per-window {self.per_window} must be at least 1")
        for name in ("bars", "oos_bars", "is_bars", "step_bars"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise WalkForwardError(f"{name.replace('_', ' ')} {v} must be at least 1")

    @classmethod
    def from_goal(cls, spec: GoalSpec, bars: int) -> WalkForwardConfig:
        wf, g = spec.evolution.walk_forward, spec.gates
        return cls(windows=wf.windows, mode=wf.mode, bars=bars, oos_fraction=wf.out_of_sample_fraction,
                   per_window=wf.per_window, blocks=wf.blocks, benchmark=g.benchmark,
                   benchmark_symbol=g.benchmark_symbol)


@dataclass(frozen=True)
class Window:
    """Bar indices on the common grid: search on [is_start, is_end), score on [oos_start, oos_end)."""

    index: int
    is_start: int
    is_end: int
    oos_start: int
    oos_end: int


def check_windows(windows: Sequence[Window], n: int) -> None:
    """Raise if the windows are not usable: inside the bars, in-sample before out-of-sample, no overlaps."""
    if not windows:
        raise WalkForwardError("no walk-forward windows")
    for w in windows:
        if not 0 <= w.is_start < w.is_end <= w.oos_start < w.oos_end <= n:
            raise WalkForwardError(
                f"window {w.index}: in-sample [{w.is_start}, {w.is_end}) and out-of-sample [{w.oos_start}, "
                f"{w.oos_end}) must be non-empty, in this order, within the {n} bars")
        if w.oos_end - w.oos_start < 2:
            raise WalkForwardError(f"window {w.index}: {w.oos_end - w.oos_start} out-of-sample bar(s); a return "
                                   f"needs at least 2")
    for a, b in itertools.pairwise(windows):
        if b.oos_start < a.oos_end:
            raise WalkForwardError(
                f"out-of-sample windows {a.index} [{a.oos_start}, {a.oos_end}) and {b.index} [{b.oos_start}, "
                f"{b.oos_end}) overlap: every out-of-sample bar must count once")


def plan_windows(n: int, cfg: WalkForwardConfig) -> list[Window]:
    """The windows over ``n`` common bars (see the module docstring)."""
    span = min(cfg.bars or n, n)
    if cfg.bars is not None and cfg.bars > n:
        raise WalkForwardError(f"walk-forward over the last {cfg.bars} bars, but the candle sets share only {n}")
    oos = cfg.oos_bars or max(2, int(span * cfg.oos_fraction))
    step = cfg.step_bars or oos
    if step < oos:
        raise WalkForwardError(f"out-of-sample windows overlap: step {step} bars < window length {oos} bars")
    tested = (cfg.windows - 1) * step + oos
    first_oos = n - tested
    start = n - span
    is_len = cfg.is_bars or (first_oos - start)
    if is_len < 1 or first_oos - is_len < start:
        raise WalkForwardError(
            f"{cfg.windows} out-of-sample window(s) of {oos} bars {step} apart ({tested} bars) and {max(is_len, 0)} "
            f"in-sample bars need {tested + max(is_len, 1)}, but the walk-forward covers {span} bars")
    out = []
    for k in range(cfg.windows):
        oos_start = first_oos + k * step
        is_start = oos_start - is_len if cfg.mode == "rolling" else first_oos - is_len
        out.append(Window(k, is_start, oos_start, oos_start, oos_start + oos))
    check_windows(out, n)
    return out


def align(data: Sequence[Candles]) -> tuple[int, int, list[int]]:
    """(first common bar time, common bars, each set's index of the first common bar); gaps are errors."""
    if not data:
        raise WalkForwardError("walk-forward needs at least one candle set")
    frames = {c.timeframe or str(c.bar_ms) for c in data}
    if len(frames) != 1:
        raise WalkForwardError(f"candle sets of several timeframes: {', '.join(sorted(frames))}")
    for c in data:
        try:
            validate(c)
        except CandleError as e:
            raise WalkForwardError(f"walk-forward: {e}") from None
    bar = data[0].bar_ms
    t0 = max(int(c.time[0]) for c in data)
    t1 = min(int(c.time[-1]) for c in data)
    if t1 < t0 or any((int(c.time[0]) - t0) % bar for c in data):
        ranges = ", ".join(f"{c.label} {_iso(int(c.time[0]))}..{_iso(int(c.time[-1]))}" for c in data)
        raise WalkForwardError(f"the candle sets share no common bars: {ranges}")
    return t0, (t1 - t0) // bar + 1, [(t0 - int(c.time[0])) // bar for c in data]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")


def _check_lengths(windows: Sequence[Window], data: Sequence[Candles], offsets: Sequence[int],
                   cfg: EvolveConfig) -> None:
    warm = genes.warmup()
    for w in windows:
        train = val = 0
        for off in offsets:
            s, e = w.is_start + off, w.is_end + off
            split = s + int((e - s) * cfg.train_fraction)
            train += max(0, split - max(s, warm))
            val += e - split
        if train < 2 * cfg.min_trades:
            raise WalkForwardError(
                f"window {w.index}: the search's training part has {train} bars after the {warm}-bar warm-up, "
                f"fewer than the {2 * cfg.min_trades} that {cfg.min_trades} trades need (a trade takes 2 bars; "
                f"it trains on the first {cfg.train_fraction:.0%} of its {w.is_end - w.is_start} in-sample bars "
                f"[{w.is_start}, {w.is_end})); give the windows more in-sample bars or lower the minimum trades")
        min_val = max(1, math.ceil(cfg.min_trades * (1 - cfg.train_fraction) / cfg.train_fraction))
        if val < 2 * min_val:
            raise WalkForwardError(
                f"window {w.index}: the search's validation part has {val} bars, fewer than the {2 * min_val} "
                f"that its {min_val} validation trades need")


@dataclass
class Candidate:
    key: str
    genome: Genome
    chosen_in: int
    scores: dict[int, dict[str, Metrics]] = field(default_factory=dict)


@dataclass
class WindowResult:
    window: Window
    is_from: int
    is_to: int
    oos_from: int
    oos_to: int
    """Times (ms): first bar of each part, and the end of its last bar."""
    trials: int
    pbo: Overfitting | None
    variance: float
    """Variance of the per-bar out-of-sample Sharpe ratios of the sampled tried genomes."""
    chosen: list[str]
    benchmark_return: float
    search: EvolveResult

    def chosen_returns(self, candidates: dict[str, Candidate]) -> list[float]:
        return [float(np.mean([m.total_return for m in candidates[k].scores[self.window.index].values()]))
                for k in self.chosen]


@dataclass
class WalkForwardResult:
    windows: list[WindowResult]
    candidates: dict[str, Candidate]
    evidence: dict[str, SelectionEvidence]
    trials: int
    evaluations: int
    datasets: list[str]
    config: WalkForwardConfig
    bars_per_year: float

    @property
    def pbos(self) -> list[float]:
        return [w.pbo.pbo for w in self.windows if w.pbo is not None]

    def benchmark_return(self) -> float:
        return float(np.prod([1 + w.benchmark_return for w in self.windows]) - 1)


def genome_key(g: Genome) -> str:
    return json.dumps(g.to_k8s(), sort_keys=True)


def _benchmark_sets(data: Sequence[Candles], cfg: WalkForwardConfig,
                    benchmark_data: Candles | None) -> list[Candles]:
    if cfg.benchmark == "cash":
        return []
    if cfg.benchmark_symbol is None:
        return list(data)
    for c in (*data, *([benchmark_data] if benchmark_data is not None else [])):
        if c.symbol == cfg.benchmark_symbol:
            return [c]
    raise WalkForwardError(f"benchmark buy-and-hold of {cfg.benchmark_symbol} cannot be computed: no candles for "
                           f"{cfg.benchmark_symbol} (have {', '.join(c.symbol or c.label for c in data)})")


def _bar_index(c: Candles, t: int, what: str) -> int:
    i = int(np.searchsorted(c.time, t))
    if i >= len(c) or int(c.time[i]) != t:
        raise WalkForwardError(f"{what}: {c.label} has no bar at {_iso(t)} (it covers {_iso(int(c.time[0]))} to "
                               f"{_iso(int(c.time[-1]))})")
    return i


class _Scorer:
    """One kernel pass per out-of-sample window over every genome it is given, per candle set."""

    def __init__(self, data: Sequence[Candles], features: Features, cfg: EvolveConfig) -> None:
        self.data, self.features, self.cfg = data, features, cfg

    def run(self, genomes: Sequence[Genome], bounds: Sequence[tuple[int, int]]) -> list[dict[str, Metrics]]:
        _, program = compile_genomes(genomes, market=self.cfg.market, plan=self.features.plan)
        out: list[dict[str, Metrics]] = [{} for _ in genomes]
        for d, c in enumerate(self.data):
            s, e = bounds[d]
            for g, m in enumerate(run_program(self.features.plan, program, c, self.cfg.costs, start=s, end=e,
                                              features=self.features.matrix(d))):
                out[g][c.symbol or c.label] = m
        return out


def _windows_and_benchmark(data: Sequence[Candles], wf: WalkForwardConfig, benchmark_data: Candles | None,
                           ) -> tuple[int, list[int], list[Window], list[Candles], list[list[tuple[int, int]]]]:
    t0, n, offsets = align(data)
    windows = plan_windows(n, wf)
    bench_sets = _benchmark_sets(data, wf, benchmark_data)
    bar = data[0].bar_ms
    bench_ranges = []
    for w in windows:
        start, end = t0 + w.oos_start * bar, t0 + (w.oos_end - 1) * bar
        what = f"benchmark buy-and-hold, window {w.index} ({_iso(start)} to {_iso(end + bar)})"
        bench_ranges.append([(_bar_index(c, start, what), _bar_index(c, end, what) + 1) for c in bench_sets])
    return t0, offsets, windows, bench_sets, bench_ranges


def walk_forward(data: Sequence[Candles], cfg: EvolveConfig, wf: WalkForwardConfig,
                 progress: Progress | None = None, *, benchmark_data: Candles | None = None,
                 alt: AltData | None = None, prediction: bool = False) -> WalkForwardResult:
    """Search and score every window; each candidate's pooled evidence (not yet judged by the gates).

    ``alt``: alternative-data series the genomes may use (joined as of each bar's close; each
    window's rule levels come from the values known before its training part ends).
    ``prediction``: the genomes may use the ``prediction`` indicator (the predictor bound to it in
    this process; each window's levels from its values on that window's training part).
    """
    t0, offsets, windows, bench_sets, bench_ranges = _windows_and_benchmark(data, wf, benchmark_data)
    _check_lengths(windows, data, offsets, cfg)
    bar = data[0].bar_ms
    report = progress or (lambda done, total, msg: None)
    features = Features(data, alt)
    scorer = _Scorer(data, features, cfg)
    bench_scorer = _Scorer(bench_sets, Features(bench_sets), cfg) if bench_sets else None
    hold = buy_and_hold()
    candidates: dict[str, Candidate] = {}
    tried: set[str] = set()
    evaluations = 0
    results: list[WindowResult] = []
    for w in windows:
        def sub(done: int, total: int, msg: str, w: Window = w) -> None:
            report(w.index, len(windows), f"window {w.index + 1}/{len(windows)}: {msg}")

        bounds = [(w.is_start + off, w.is_end + off) for off in offsets]
        res = evolve(data, replace(cfg, seed=cfg.seed + w.index, top=max(cfg.top, wf.per_window)), sub,
                     bounds=bounds, blocks=wf.blocks, features=features, alt=alt, prediction=prediction)
        tried |= res.tried.keys()
        evaluations += res.evaluations
        overfit = None
        if res.blocks is not None and res.blocks.shape[0] >= 2:
            b = res.blocks.transpose(1, 0, 2)  # (blocks, trials, 3)
            overfit = pbo_from_blocks(b[:, :, 0], b[:, :, 1], b[:, :, 2])
        chosen = []
        for s in res.survivors[:wf.per_window]:
            key = genome_key(s.genome)
            candidates.setdefault(key, Candidate(key, s.genome, w.index))
            chosen.append(key)
        sample_keys = list(res.tried)
        if len(sample_keys) > wf.variance_sample:
            sample_keys = random.Random(cfg.seed + 1000 + w.index).sample(sample_keys, wf.variance_sample)
        genomes = [c.genome for c in candidates.values()] + [genes.to_genome(res.tried[k]) for k in sample_keys]
        oos_bounds = [(w.oos_start + off, w.oos_end + off) for off in offsets]
        scores = scorer.run(genomes, oos_bounds)
        for c, sc in zip(candidates.values(), scores, strict=False):
            c.scores[w.index] = sc
        sample_sharpes = [pooled(sc).sharpe for sc in scores[len(candidates):]]
        variance = float(np.var(sample_sharpes, ddof=1)) if len(sample_sharpes) > 1 else 0.0
        bench_return = 0.0
        if bench_scorer is not None:
            (held,) = bench_scorer.run([hold], bench_ranges[w.index])
            bench_return = float(np.mean([m.total_return for m in held.values()]))
        results.append(WindowResult(
            w, t0 + w.is_start * bar, t0 + w.is_end * bar, t0 + w.oos_start * bar, t0 + w.oos_end * bar,
            len(res.tried), overfit, variance, chosen, bench_return, res))
        report(w.index + 1, len(windows), f"window {w.index + 1}/{len(windows)} scored: {len(res.tried)} tried, "
                                          f"{len(candidates)} candidates")
    bpy = data[0].bars_per_year
    evidence = {k: _evidence(c, results, len(tried), bpy, wf.benchmark) for k, c in candidates.items()}
    return WalkForwardResult(results, candidates, evidence, len(tried), evaluations,
                             [c.symbol or c.label for c in data], wf, bpy)


def _evidence(c: Candidate, windows: Sequence[WindowResult], trials: int, bars_per_year: float,
              benchmark: Benchmark) -> SelectionEvidence:
    chooser = next(wr for wr in windows if wr.window.index == c.chosen_in)
    return scored_evidence(c.scores, c.chosen_in, windows, trials, bars_per_year, benchmark,
                           chooser.pbo.pbo if chooser.pbo is not None else None)


def scored_evidence(scores: dict[int, dict[str, Metrics]], chosen_in: int, windows: Sequence[WindowResult],
                    trials: int, bars_per_year: float, benchmark: Benchmark, pbo: float | None,
                    source: Literal["genomes", "rl"] = "genomes") -> SelectionEvidence:
    """The pooled evidence of one candidate's out-of-sample scores (window index -> symbol -> metrics).

    Whatever found the candidate (a genome search, a PPO training), its evidence is built here, the
    same way: what the gates judge does not depend on where a candidate came from.
    """
    ann = math.sqrt(bars_per_year)
    rows: list[WindowEvidence] = []
    moments = Moments()
    growth = bench_growth = 1.0
    trades = 0
    max_dd = 0.0
    for wr in windows:
        sc = scores.get(wr.window.index)
        if sc is None:
            continue
        m = pooled(sc)
        r = float(np.mean([x.total_return for x in sc.values()]))
        t = sum(x.trades for x in sc.values())
        rows.append(WindowEvidence(index=wr.window.index, start=datetime.fromtimestamp(wr.oos_from / 1000, UTC),
                                   end=datetime.fromtimestamp(wr.oos_to / 1000, UTC), return_pct=r,
                                   sharpe=m.sharpe * ann, trades=t, benchmark_return_pct=wr.benchmark_return))
        moments = moments + m
        growth *= 1 + r
        bench_growth *= 1 + wr.benchmark_return
        trades += t
        max_dd = max(max_dd, *(x.max_drawdown for x in sc.values()))
    # V under the null: the sampling variance of a per-bar Sharpe estimate over these bars (module docstring)
    dsr = deflated_sharpe(moments, max(1, trials), 1.0 / (moments.n - 1) if moments.n > 1 else 0.0)
    return SelectionEvidence(
        windows=rows, positive_windows=sum(1 for w in rows if w.return_pct > 0), oos_return_pct=growth - 1,
        sharpe=moments.sharpe * ann, max_drawdown=max_dd, trades=trades, deflated_sharpe=dsr.value,
        luck_sharpe=dsr.benchmark * ann, trials=trials, pbo=pbo, benchmark=benchmark,
        benchmark_return_pct=bench_growth - 1, chosen_in_window=chosen_in, source=source)


def with_trials(walk: WalkForwardResult, trials: int) -> dict[str, SelectionEvidence]:
    """Every genome candidate's evidence again, counting ``trials`` (the genomes tried and, when a run also
    trains policies, their checkpoints: every trial of the selection deflates every candidate's Sharpe)."""
    if trials == walk.trials:
        return dict(walk.evidence)
    return {k: _evidence(c, walk.windows, trials, walk.bars_per_year, walk.config.benchmark)
            for k, c in walk.candidates.items()}


def windows_only(data: Sequence[Candles], cfg: EvolveConfig, wf: WalkForwardConfig, *,
                 benchmark_data: Candles | None = None) -> WalkForwardResult:
    """The windows and the benchmark's return in each, with no search and no candidate (a run whose
    candidates come from elsewhere, e.g. PPO policies only)."""
    t0, _, windows, bench_sets, bench_ranges = _windows_and_benchmark(data, wf, benchmark_data)
    bar = data[0].bar_ms
    bench_scorer = _Scorer(bench_sets, Features(bench_sets), cfg) if bench_sets else None
    empty = EvolveResult([], 0, 0, 0, [])
    results = []
    for w in windows:
        bench_return = 0.0
        if bench_scorer is not None:
            (held,) = bench_scorer.run([buy_and_hold()], bench_ranges[w.index])
            bench_return = float(np.mean([m.total_return for m in held.values()]))
        results.append(WindowResult(w, t0 + w.is_start * bar, t0 + w.is_end * bar, t0 + w.oos_start * bar,
                                    t0 + w.oos_end * bar, 0, None, 0.0, [], bench_return, empty))
    return WalkForwardResult(results, {}, {}, 0, 0, [c.symbol or c.label for c in data], wf, data[0].bars_per_year)


def offsets(data: Sequence[Candles]) -> list[int]:
    """Each candle set's index of the first bar the sets share (window bounds are on that common grid)."""
    return align(data)[2]


def evaluate(genome: Genome, data: Sequence[Candles], cfg: EvolveConfig, wf: WalkForwardConfig, *, trials: int = 1,
             benchmark_data: Candles | None = None, alt: AltData | None = None,
             pbo: float | None = None) -> WalkForwardResult:
    """The same evidence for one given strategy: scored on every out-of-sample window, no search.

    ``trials`` is how many strategies were tried to find this one (1: none besides it).  With no
    tried genomes at hand no PBO can be measured: ``pbo`` is the one of the search that found it, if known
    (the gates ask for one only when ``trials`` > 1).
    """
    if trials < 1:
        raise WalkForwardError(f"trials {trials} must be at least 1")
    t0, offsets, windows, bench_sets, bench_ranges = _windows_and_benchmark(data, wf, benchmark_data)
    bar = data[0].bar_ms
    features = Features(data, alt)
    scorer = _Scorer(data, features, cfg)
    bench_scorer = _Scorer(bench_sets, Features(bench_sets), cfg) if bench_sets else None
    key = genome_key(genome)
    cand = Candidate(key, genome, 0)
    results = []
    empty = EvolveResult([], 0, 0, 0, [])
    for w in windows:
        (cand.scores[w.index],) = scorer.run([genome], [(w.oos_start + off, w.oos_end + off) for off in offsets])
        bench_return = 0.0
        if bench_scorer is not None:
            (held,) = bench_scorer.run([buy_and_hold()], bench_ranges[w.index])
            bench_return = float(np.mean([m.total_return for m in held.values()]))
        results.append(WindowResult(w, t0 + w.is_start * bar, t0 + w.is_end * bar, t0 + w.oos_start * bar,
                                    t0 + w.oos_end * bar, 0, None, 0.0, [key], bench_return, empty))
    bpy = data[0].bars_per_year
    evidence = _evidence(cand, results, trials, bpy, wf.benchmark).model_copy(update={"pbo": pbo})
    return WalkForwardResult(results, {key: cand}, {key: evidence}, trials, 0, [c.symbol or c.label for c in data],
                             wf, bpy)
