"""Training the LSTM-Transformer on candle sets, exporting it, and judging it out of sample.

:func:`train_predictor` is what ``kubetrade train predictor``, the Goal's training Job, ``bench learning``
and the tests call: windows of :data:`~kubetrade.prediction.features.BAR_COLUMNS` from each candle set's
training bars (every set split at the same time), one network for all of them, written as ONNX with its
scaling and metadata inside.  :func:`evaluate` scores any predictor series on bars it never saw against
the baselines - predicting no change (zero) and the ridge regression of the last 16 returns refitted on
the same training bars - by mean squared error, direction accuracy and what a simple strategy trading
on it makes after costs in the backtest kernel: long while the prediction exceeds the round-trip cost,
flat when it turns negative.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from kubetrade.candles import Candles
from kubetrade.engine import backtest as bt
from kubetrade.engine.compile import compile_genomes
from kubetrade.prediction import export, network
from kubetrade.prediction import features as feat
from kubetrade.prediction import train as ridge
from kubetrade.prediction.model import from_bytes, predict_series
from kubetrade.resources.genome import Genome
from kubetrade.resources.strategy import ModelReference


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class TrainedPredictor:
    onnx: bytes
    result: network.TrainResult
    train_from: int
    train_to: int
    """Time (ms) of the first training bar and the end of the last one."""
    datasets: list[str]
    rows: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.onnx).hexdigest()

    def config(self) -> dict[str, Any]:
        return {"architecture": "lstm-transformer", **asdict(self.result.config), "datasets": self.datasets,
                "rows": self.rows, "features": feat.BAR_FEATURES}


def rows(c: Candles, window: int, horizon: int, start: int = 0, end: int | None = None,
         ) -> tuple[np.ndarray, np.ndarray]:
    """(windows, targets) of the bars [start, end) whose window and target lie inside them."""
    end = len(c) if end is None else end
    part = c.slice(start, end)
    x, idx = feat.bar_windows(feat.bar_features(part.open, part.high, part.low, part.close, part.volume), window)
    y = feat.forward_return(part.close, horizon)[idx]
    keep = np.isfinite(y) & np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    return x[keep], y[keep]


def train_predictor(data: Sequence[Candles], cfg: network.NetConfig, *, until_ms: int | None = None,
                    since_ms: int | None = None, progress: Callable[[int, dict[str, float]], None] | None = None,
                    ) -> TrainedPredictor:
    """Train on every set's bars in [since_ms, until_ms) (default: all); rows of all sets in time order."""
    xs, ys, ts = [], [], []
    first, last = None, None
    for c in data:
        s = 0 if since_ms is None else int(np.searchsorted(c.time, since_ms))
        e = len(c) if until_ms is None else int(np.searchsorted(c.time, until_ms))
        if e - s <= cfg.window + cfg.horizon + 10:
            raise ValueError(f"{c.label}: {e - s} training bars, too few for a window of {cfg.window}")
        x, y = rows(c, cfg.window, cfg.horizon, s, e)
        xs.append(x)
        ys.append(y)
        # each row's time: the bar its window ends on (the order the validation part is cut in)
        ts.append(np.asarray(c.time[s:e][cfg.window:cfg.window + len(x)], dtype=np.int64))
        first = int(c.time[s]) if first is None else min(first, int(c.time[s]))
        last = int(c.time[e - 1]) + c.bar_ms if last is None else max(last, int(c.time[e - 1]) + c.bar_ms)
    t = np.concatenate(ts)
    order = np.argsort(t, kind="stable")  # validation = the latest rows of every set together
    x, y = np.concatenate(xs)[order], np.concatenate(ys)[order]
    result = network.train(x, y, cfg, progress)
    assert first is not None and last is not None
    meta = {"kubetrade.kind": "predictor", "kubetrade.features": feat.BAR_FEATURES,
            "kubetrade.window": str(cfg.window), "kubetrade.horizon": str(cfg.horizon),
            "kubetrade.architecture": f"lstm{cfg.hidden}-attention{cfg.layers}x{cfg.heads}",
            "kubetrade.seed": str(cfg.seed), "kubetrade.train_from": _iso(first), "kubetrade.train_to": _iso(last),
            "kubetrade.datasets": ",".join(feat.dataset_name(c) for c in data)}
    sc = result.scaling
    blob = export.predictor(result.params, sc.x_mean, sc.x_std, sc.y_mean, sc.y_std, window=cfg.window,
                            heads=cfg.heads, eps=cfg.ln_eps, input_name=feat.BARS_INPUT, metadata=meta)
    return TrainedPredictor(blob, result, first, last, [feat.dataset_name(c) for c in data], len(x))


# --- out-of-sample judgement -------------------------------------------------------------------------------


@dataclass
class Skill:
    bars: int
    mse: float
    mse_zero: float
    direction_accuracy: float
    """Share of bars with a non-zero outcome whose sign it called (0.5 = a coin)."""
    strategy_return: float
    """The simple strategy's return over the bars after costs (cost-aware threshold)."""
    strategy_trades: int
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def skill_vs_zero(self) -> float:
        return 1.0 - self.mse / self.mse_zero if self.mse_zero > 0 else 0.0


def _threshold_genome(entry: float, indicator: str = "prediction") -> Genome:
    return Genome.model_validate({
        "entry": {"rules": [{"left": {"indicator": indicator}, "op": "gt", "right": {"value": entry}}]},
        "exit": {"rules": [{"left": {"indicator": indicator}, "op": "lt", "right": {"value": 0.0}}]},
        "positionPct": 1.0})


def strategy_on(pred: np.ndarray, c: Candles, start: int, end: int, fee: float, slippage: float,
                entry: float) -> tuple[float, int]:
    """Return and trades of 'long while prediction > entry, flat below 0' on bars [start, end), in the kernel."""
    # compiled with a stand-in for the ``prediction`` indicator (as kubetrade.learning.env.tables does): the
    # kernel reads row 0 of F, which is ``pred``, so no model need be bound to score a series
    plan, program = compile_genomes([_threshold_genome(entry, indicator="obv")])
    assert len(plan.keys) == 1
    F = np.ascontiguousarray(pred[None, :], dtype=np.float64)
    state = bt.new_state(1.0)
    acc = np.zeros(bt.ACC_SIZE)
    simulate: Any = bt.simulate
    simulate(F, c.open, c.high, c.low, c.close, *program.take(0), fee, slippage, state, start, end, acc,
             np.empty(0), np.empty((0, bt.TRADE_SIZE)), np.empty(0, np.int64), np.empty((0, bt.SEG_SIZE)))
    return float(acc[bt.A_FINAL] - 1.0), int(acc[bt.A_TRADES])


def evaluate(pred: np.ndarray, c: Candles, start: int, end: int, horizon: int = 1, fee: float = 0.001,
             slippage: float = 0.0002) -> Skill:
    """How a predictor series did on bars [start, end) of ``c`` (it must not have seen them)."""
    y = feat.forward_return(c.close, horizon)
    sl = slice(start, end)
    p, t = pred[sl], y[sl]
    ok = np.isfinite(p) & np.isfinite(t)
    p, t = p[ok], t[ok]
    moving = t != 0
    entry = 2 * (fee + slippage)
    ret, trades = strategy_on(pred, c, start, end, fee, slippage, entry)
    ret0, trades0 = strategy_on(pred, c, start, end, fee, slippage, 0.0)
    return Skill(int(ok.sum()), float(np.mean((p - t) ** 2)), float(np.mean(t ** 2)),
                 float(np.mean(np.sign(p[moving]) == np.sign(t[moving]))), ret, trades,
                 {"strategy_return_sign": ret0, "strategy_trades_sign": float(trades0),
                  "correlation": float(np.corrcoef(p, t)[0, 1]) if len(p) > 2 and np.std(p) > 0 else 0.0})


def onnx_series(blob: bytes, c: Candles) -> np.ndarray:
    """The predictor file's output over a whole candle set (batch inference, as a backtest runs it)."""
    m = from_bytes(blob, "trained model", ModelReference(uri="memory"))
    return predict_series(m, c.open, c.high, c.low, c.close, c.volume)


def ridge_series(train_sets: Sequence[Candles], until_ms: int, c: Candles) -> np.ndarray:
    """The ridge baseline refitted on the same training bars, predicting over ``c``."""
    xs, ys = [], []
    for t in train_sets:
        e = int(np.searchsorted(t.time, until_ms))
        x, y = ridge.dataset(t.close[:e])
        xs.append(x)
        ys.append(y)
    w, b = ridge.fit(np.vstack(xs), np.concatenate(ys))
    out = np.full(len(c), np.nan)
    rows_, idx = feat.window_matrix(c.close)
    out[idx] = rows_.astype(np.float64) @ w + b
    return out


def report(skill: Skill) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps({**asdict(skill), "skill_vs_zero": skill.skill_vs_zero}))
    return out
