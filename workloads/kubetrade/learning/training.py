"""Training a PPO policy on candle sets, exporting it to ONNX, and scoring it on bars it never saw.

One policy for all the sets given (rows of every set side by side, a rollout never crossing two):
observations from :func:`kubetrade.prediction.features.policy_observations` (with a predictor's output
when one is given), rewards from the backtest kernel (:mod:`kubetrade.learning.env`), the greedy policy
written as ONNX (:func:`kubetrade.prediction.export.mlp_policy`) with its observation scaling, window,
market and the predictor's digest in its metadata.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from kubetrade.candles import Candles
from kubetrade.engine.runs import Costs
from kubetrade.learning import env, ppo
from kubetrade.prediction import export, registry
from kubetrade.prediction import features as feat
from kubetrade.prediction.model import LoadedModel, load, predict_series
from kubetrade.resources.strategy import ModelReference

OUTPUT = "target_position"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class SetRows:
    """One candle set's observations and the bar of each row."""

    candles: Candles
    obs: np.ndarray
    bars: np.ndarray
    offset: int
    """Its first row in the stacked observation matrix."""

    def rows_between(self, start_bar: int, end_bar: int) -> tuple[int, int]:
        """Local rows whose bar is in [start_bar, end_bar) and whose next close exists."""
        last = min(end_bar, len(self.candles) - 1)
        return int(np.searchsorted(self.bars, start_bar)), int(np.searchsorted(self.bars, last))


def observe(c: Candles, window: int, predictor: LoadedModel | None) -> SetRows:
    pred = predict_series(predictor, c.open, c.high, c.low, c.close, c.volume) if predictor is not None else None
    obs, bars = feat.policy_observations(c.open, c.high, c.low, c.close, c.volume, window, pred)
    return SetRows(c, obs, bars, 0)


@dataclass
class TrainedPolicy:
    onnx: bytes
    result: ppo.PPOResult
    market: str
    window: int
    train_from: int
    train_to: int
    datasets: list[str]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.onnx).hexdigest()

    def config(self) -> dict[str, Any]:
        return {"algorithm": "ppo", **asdict(self.result.config), "market": self.market, "window": self.window,
                "datasets": self.datasets, "features": feat.BAR_FEATURES}


def segment_return(s: SetRows, actions: np.ndarray, r0: int, costs: Costs, market: str) -> float:
    """Return after costs of taking action indices ``actions`` from local row ``r0`` on, flat at the start."""
    values = np.asarray(env.ACTIONS[market])[actions]
    c = s.candles
    rollout: Any = env.rollout  # a numba dispatcher
    _, equity = rollout(values.astype(np.float64), c.open, c.high, c.low, c.close, *env.tables(market),
                            costs.fee, costs.slippage, 1.0, int(s.bars[r0]), 0.0, 1.0)
    return float(equity[-1] - 1.0) if len(equity) else 0.0


def train_policy(data: Sequence[Candles], cfg: ppo.PPOConfig, *, market: str = "spot", window: int = 8,
                 until_ms: int | None = None, since_ms: int | None = None, predictor: LoadedModel | None = None,
                 costs: Costs = env.COSTS, risk_aversion: float = 1.0,
                 progress: Callable[[int, dict[str, float]], None] | None = None) -> TrainedPolicy:
    """PPO on the bars [since_ms, until_ms) of every set; validation = the last ``val_fraction`` of them."""
    sets, offset = [], 0
    for c in data:
        s = observe(c, window, predictor)
        s.offset = offset
        offset += len(s.obs)
        sets.append(s)
    obs = np.vstack([s.obs for s in sets])
    train_rows, val_rows = [], []
    first = last = None
    for s in sets:
        c = s.candles
        b0 = 0 if since_ms is None else int(np.searchsorted(c.time, since_ms))
        b1 = len(c) if until_ms is None else int(np.searchsorted(c.time, until_ms))
        lo, hi = s.rows_between(b0, b1)
        cut = hi - int((hi - lo) * cfg.val_fraction)
        train_rows.append((s.offset + lo, s.offset + cut))
        val_rows.append((s, cut, hi))
        first = int(c.time[b0]) if first is None else min(first, int(c.time[b0]))
        end = int(c.time[b1 - 1]) + c.bar_ms
        last = end if last is None else max(last, end)
    where = [(s, s.offset, s.offset + len(s.obs)) for s in sets]

    def rewards(actions: np.ndarray, r0: int) -> np.ndarray:
        s, off, _ = next(w for w in where if w[1] <= r0 < w[2])
        c = s.candles
        values = np.asarray(env.ACTIONS[market])[actions].astype(np.float64)
        rollout: Any = env.rollout
        r, _ = rollout(values, c.open, c.high, c.low, c.close, *env.tables(market), costs.fee,
                           costs.slippage, 1.0, int(s.bars[r0 - off]), risk_aversion, 100.0)
        return np.asarray(r)

    def validate(policy: ppo.Params, x_mean: np.ndarray, x_std: np.ndarray) -> float:
        out = []
        for s, lo, hi in val_rows:
            if hi - lo < 2:
                continue
            a = ppo.greedy(policy, x_mean, x_std, s.obs[lo:hi])
            out.append(segment_return(s, a, lo, costs, market))
        return float(np.mean(out)) if out else 0.0

    result = ppo.train(obs, len(env.ACTIONS[market]), rewards, validate, cfg, train_rows, progress)
    assert first is not None and last is not None
    meta = {"kubetrade.kind": "policy", "kubetrade.features": feat.BAR_FEATURES, "kubetrade.window": str(window),
            "kubetrade.market": market, "kubetrade.predictor": predictor.sha256 if predictor is not None else "",
            "kubetrade.algorithm": "ppo", "kubetrade.seed": str(cfg.seed), "kubetrade.train_from": _iso(first),
            "kubetrade.train_to": _iso(last), "kubetrade.datasets": ",".join(feat.dataset_name(c) for c in data)}
    blob = export.mlp_policy(result.policy["layers"], result.x_mean, result.x_std, env.ACTIONS[market],
                             input_name=feat.OBSERVATION_INPUT, n_inputs=obs.shape[1], output=OUTPUT, metadata=meta)
    return TrainedPolicy(blob, result, market, window, first, last, [feat.dataset_name(c) for c in data])


def held_out(trained: TrainedPolicy, data: Sequence[Candles], from_ms: int, predictor: LoadedModel | None,
             costs: Costs = env.COSTS) -> dict[str, dict[str, float]]:
    """Per set: the greedy policy's return after costs on the bars from ``from_ms`` on, cash's and buy-and-hold's."""
    out = {}
    long = env.ACTIONS[trained.market].index(1.0)
    for c in data:
        s = observe(c, trained.window, predictor)
        lo, hi = s.rows_between(int(np.searchsorted(c.time, from_ms)), len(c))
        if hi - lo < 2:
            continue
        a = ppo.greedy(trained.result.policy, trained.result.x_mean, trained.result.x_std, s.obs[lo:hi])
        out[c.label] = {"policy": segment_return(s, a, lo, costs, trained.market), "cash": 0.0,
                        "buy_and_hold": segment_return(s, np.full(hi - lo, long), lo, costs, trained.market),
                        "bars": float(hi - lo), "time_in_market": float(np.mean(a != env.ACTIONS[trained.market]
                                                                                 .index(0.0)))}
    return out


def policy_command(args: Any, data: list[Candles], cut: int) -> tuple[Any, ...]:
    """``kubetrade train policy``: train, score on the held-out bars, return what the command stores."""
    import sys

    predictor = None
    if args.predictor:
        uri, _, sha = args.predictor.partition("@")
        fetch = None
        if uri.startswith("registry://") and args.dsn:
            def fetch(r: ModelReference) -> bytes:
                return registry.fetch(args.dsn, r)
        predictor = load(ModelReference(uri=uri, sha256=sha or None), "predictor", fetch)
    cfg = ppo.PPOConfig(iterations=args.epochs, seed=args.seed)
    trained = train_policy(data, cfg, market=args.market, window=args.window, until_ms=cut, predictor=predictor,
                           progress=lambda i, r: print(f"iteration {i}: reward {r['mean_reward']:+.4f} validation "
                                                       f"{r['validation']:+.2%}", file=sys.stderr))
    metrics = {"training": trained.result.summary(), "held_out": held_out(trained, data, cut, predictor)}
    return (trained.onnx, "policy", feat.BAR_FEATURES, trained.train_from, trained.train_to, metrics,
            trained.config())
