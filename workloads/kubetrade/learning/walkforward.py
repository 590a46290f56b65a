"""PPO policies as walk-forward candidates: one trained per window on its in-sample bars, scored after them.

What a Goal's evolution run does with ``spec.evolution.sources: [rl]`` (or ``[genomes, rl]``), on the
windows of :mod:`kubetrade.engine.walkforward` (the same windows the genome searches use):

1. for window ``k``, PPO (:func:`kubetrade.learning.training.train_policy`) trains one policy for all the
   Goal's candle sets on the in-sample bars ``[is_start, is_end - 1)`` only: the reward of a bar needs
   the next bar's close, so the last in-sample bar is not a training row and no reward ever reads a
   close of the window's out-of-sample part (``tests/learning/test_rl_goal.py`` changes every bar from
   the out-of-sample start on and gets the very same policy).  The observation scaling is measured on
   the training rows, the last ``validationFraction`` of them rank the checkpoints;
2. every checkpoint (the policy after each PPO iteration) is a trial: the run adds them to the
   genomes tried, so every candidate's deflated Sharpe ratio counts them;
3. the probability of backtest overfitting of the window's choice, by CSCV
   (:func:`kubetrade.engine.stats.pbo_from_blocks`) over the per-bar returns after costs of all its
   checkpoints on the in-sample bars, cut into the walk-forward's ``blocks``;
4. the chosen checkpoint, exported to ONNX, is run by onnxruntime (what a runner runs) over every bar,
   and its target positions are traded by :func:`kubetrade.prediction.model.policy_genome` through the
   backtest kernel on window ``k`` and every later window's out-of-sample bars, with the run's costs:
   the same one kernel pass per window as a genome candidate, the same metrics.

The evidence is then built and judged exactly as a genome's (:func:`kubetrade.engine.walkforward.scored_evidence`,
:func:`kubetrade.lifecycle.gates.judged`).  This module needs the ``train`` extra (JAX): the runtime image
never imports it; the operator runs a Goal that asks for ``rl`` in its training image.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kubetrade.candles import Candles
from kubetrade.engine.compile import compile_genomes
from kubetrade.engine.evolve import EvolveConfig
from kubetrade.engine.performance import Metrics
from kubetrade.engine.runs import Costs, run_program
from kubetrade.engine.stats import Overfitting, StatsError, block_sums, pbo_from_blocks
from kubetrade.engine.walkforward import WalkForwardResult, offsets
from kubetrade.learning import env, ppo, training
from kubetrade.prediction import features as feat
from kubetrade.prediction.model import LoadedModel, from_bytes, policy_genome
from kubetrade.resources.genome import Genome
from kubetrade.resources.goal import RL_STEPS, RLSettings
from kubetrade.resources.strategy import ModelReference

Progress = Callable[[int, int, str], None]


@dataclass
class PolicyCandidate:
    """One window's policy: trained on its in-sample bars, scored on it and every later window."""

    key: str
    window: int
    trained: training.TrainedPolicy
    genome: Genome
    checkpoints: int
    """PPO checkpoints evaluated in this window (its trials)."""
    pbo: Overfitting | None
    scores: dict[int, dict[str, Metrics]] = field(default_factory=dict)

    @property
    def reference(self) -> ModelReference:
        """The policy by digest (the registry name is the Strategy's, given when it is published)."""
        return ModelReference(uri=f"rl-window-{self.window}", sha256=self.trained.sha256, features=feat.BAR_FEATURES)


@dataclass
class PolicyRun:
    candidates: dict[str, PolicyCandidate]
    seconds: float

    @property
    def trials(self) -> int:
        return sum(c.checkpoints for c in self.candidates.values())

    @property
    def pbos(self) -> list[float]:
        return [c.pbo.pbo for c in self.candidates.values() if c.pbo is not None]


def ppo_config(rl: RLSettings, seed: int, val_fraction: float) -> ppo.PPOConfig:
    """``timesteps`` split into ``checkpoints`` iterations of rollout segments of RL_STEPS bars; no early stop
    (every checkpoint is evaluated, and counted)."""
    envs = max(1, rl.timesteps // (rl.checkpoints * RL_STEPS))
    return ppo.PPOConfig(hidden=rl.hidden, iterations=rl.checkpoints, envs=envs, steps=RL_STEPS,
                         minibatch=min(512, envs * RL_STEPS), val_fraction=val_fraction, patience=rl.checkpoints,
                         seed=seed)


def _returns(policy: ppo.Params, x_mean: np.ndarray, x_std: np.ndarray, s: training.SetRows, lo: int, hi: int,
             market: str, costs: Costs) -> np.ndarray:
    """Per-bar returns after costs of the greedy policy on local rows [lo, hi), from flat."""
    actions = ppo.greedy(policy, x_mean, x_std, s.obs[lo:hi])
    values = np.asarray(env.ACTIONS[market])[actions].astype(np.float64)
    c = s.candles
    rollout: Any = env.rollout  # a numba dispatcher
    _, equity = rollout(values, c.open, c.high, c.low, c.close, *env.tables(market), costs.fee, costs.slippage,
                        1.0, int(s.bars[lo]), 0.0, 1.0)
    prev = np.concatenate([[1.0], equity[:-1]])
    return np.asarray(equity / prev - 1.0)


def checkpoint_pbo(result: ppo.PPOResult, sets: Sequence[training.SetRows], since_ms: int, until_ms: int,
                   market: str, costs: Costs, blocks: int) -> Overfitting | None:
    """CSCV over the checkpoints' in-sample returns, the sets' blocks pooled; None when it cannot be measured
    (fewer than two checkpoints, or fewer in-sample bars than blocks)."""
    if len(result.checkpoints) < 2:
        return None
    total: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    try:
        for s in sets:
            c = s.candles
            lo, hi = s.rows_between(int(np.searchsorted(c.time, since_ms)), int(np.searchsorted(c.time, until_ms)))
            if hi - lo < blocks:
                return None
            matrix = np.column_stack([_returns(p, result.x_mean, result.x_std, s, lo, hi, market, costs)
                                      for p in result.checkpoints])
            sums = block_sums(matrix, blocks)
            total = sums if total is None else (total[0] + sums[0], total[1] + sums[1], total[2] + sums[2])
        return pbo_from_blocks(*total) if total is not None else None
    except StatsError:
        return None


def _positions(model: LoadedModel, s: training.SetRows) -> np.ndarray:
    """The ONNX policy's target position at every bar of the set (NaN before its first full observation):
    the feature row the policy genome's compiled rule reads."""
    out = np.full((1, len(s.candles)), np.nan)
    out[0, s.bars] = model.run(s.obs)
    return out


def policy_walk_forward(data: Sequence[Candles], walk: WalkForwardResult, cfg: EvolveConfig, rl: RLSettings, *,
                        seed: int, progress: Progress | None = None,
                        predictor: LoadedModel | None = None) -> PolicyRun:
    """A PPO policy per window of ``walk`` (its windows, times and benchmark), each scored out of sample;
    ``predictor``: every policy also observes this (fixed, already trained) predictor's output."""
    started = time.monotonic()
    report = progress or (lambda done, total, msg: None)
    market = cfg.market
    offs = offsets(data)
    bar = data[0].bar_ms
    sets = [training.observe(c, rl.window, predictor) for c in data]
    plan, program = compile_genomes([policy_genome(market, indicator="obv")], market=market)
    genome = policy_genome(market)
    blocks = walk.config.blocks
    out: dict[str, PolicyCandidate] = {}
    n = len(walk.windows)
    for wr in walk.windows:
        k = wr.window.index
        since, until = wr.is_from, wr.is_to - bar  # the last in-sample bar's reward would read an out-of-sample close
        report(k, n, f"window {k + 1}/{n}: training a PPO policy ({rl.checkpoints} checkpoints, {rl.timesteps} steps)")
        try:
            trained = training.train_policy(data, ppo_config(rl, seed + k, 1 - cfg.train_fraction), market=market,
                                            window=rl.window, since_ms=since, until_ms=until, costs=cfg.costs,
                                            predictor=predictor)
        except ValueError as exc:
            raise ValueError(f"window {k}: PPO cannot train on its in-sample bars: {exc}") from None
        pbo = checkpoint_pbo(trained.result, sets, since, until, market, cfg.costs, blocks)
        cand = PolicyCandidate(f"rl:window-{k}", k, trained, genome, len(trained.result.checkpoints), pbo)
        model = from_bytes(trained.onnx, cand.key, cand.reference, "policy")
        features = [_positions(model, s) for s in sets]
        for later in walk.windows[k:]:
            w = later.window
            cand.scores[w.index] = {
                c.symbol or c.label: run_program(plan, program, c, cfg.costs, start=w.oos_start + off,
                                                 end=w.oos_end + off, features=features[d])[0]
                for d, (c, off) in enumerate(zip(data, offs, strict=True))}
        out[cand.key] = cand
        report(k + 1, n, f"window {k + 1}/{n}: policy trained ({cand.checkpoints} checkpoints, PBO "
                         f"{'unknown' if pbo is None else f'{pbo.pbo:.2f}'})")
    return PolicyRun(out, time.monotonic() - started)
