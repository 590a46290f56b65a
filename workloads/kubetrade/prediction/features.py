"""The model's input: the last ``WINDOW`` log returns of the close, one row per bar.

Kept in one place so that training, the runner and the backtester build exactly the same
matrix: row ``i`` holds ``log(c[i-WINDOW+1] / c[i-WINDOW]), ..., log(c[i] / c[i-1])``, the
returns known at the close of bar ``i``; the model predicts the next bar's log return.
"""

from __future__ import annotations

import numpy as np

from kubetrade.candles import Candles
from kubetrade.engine import kernels

WINDOW = 16
INPUT_NAME = "returns"
OUTPUT_NAME = "predicted_return"


def log_returns(close: np.ndarray) -> np.ndarray:
    r = np.full(len(close), np.nan)
    r[1:] = np.diff(np.log(close))
    return r


def window_matrix(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, bar index of each row): every bar with a full window of returns behind it."""
    r = log_returns(np.asarray(close, dtype=np.float64))
    n = len(r)
    if n <= WINDOW:
        return np.empty((0, WINDOW), dtype=np.float32), np.empty(0, dtype=np.int64)
    idx = np.arange(WINDOW, n)
    rows = np.lib.stride_tricks.sliding_window_view(r[1:], WINDOW)  # rows[j] = r[j+1 .. j+WINDOW]
    return rows.astype(np.float32), idx


# --- the networks' input: a window of per-bar features -----------------------------------------------------

BAR_FEATURES = "bars-v1"
"""The feature set the LSTM-Transformer and the RL policies read; a model records the name it was trained on
and the runner refuses it for a Strategy that asks for another (``spec.model.features``)."""
BAR_COLUMNS = ("log_return", "log_high_close", "log_low_close", "log_volume_change")
BARS_INPUT = "bars"
FEATURE_SETS = {"returns-16": f"the last {WINDOW} log returns of the close (the ridge baseline)",
                BAR_FEATURES: "per bar: log return of the close, log(high/close), log(low/close), "
                              "log((1+volume)/(1+previous volume))"}


def bar_features(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                 volume: np.ndarray) -> np.ndarray:
    """(bars, 4) features of each bar, known at its close; row 0 (no previous bar) is NaN.

    Scale-free, so one model serves every pair: returns and ranges in log terms, volume as its
    change.  Non-finite candle values give non-finite rows, which the model refuses to predict on.
    """
    c = np.asarray(close, dtype=np.float64)
    v = np.asarray(volume, dtype=np.float64)
    out = np.full((len(c), len(BAR_COLUMNS)), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[1:, 0] = np.diff(np.log(c))
        out[:, 1] = np.log(np.asarray(high, dtype=np.float64) / c)
        out[:, 2] = np.log(np.asarray(low, dtype=np.float64) / c)
        out[1:, 3] = np.diff(np.log1p(v))
    out[0, 1:3] = np.nan
    return out


def bar_windows(feats: np.ndarray, window: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(windows (k, window, 4) float32, bar index of each): the ``window`` bars ending at each bar.

    ``rows``: only these bar indices (each at least ``window``); default every bar with a full window
    of features behind it (bars ``window`` .. n-1: bar 0 has no return).
    """
    n = len(feats)
    idx = np.arange(window, n) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(idx) == 0:
        return np.empty((0, window, feats.shape[1]), dtype=np.float32), idx
    if idx.min() < window:
        raise ValueError(f"bar {int(idx.min())} has fewer than {window} bars of features behind it")
    view = np.lib.stride_tricks.sliding_window_view(feats, window, axis=0)  # (n-window+1, 4, window)
    return np.ascontiguousarray(view[idx - window + 1].transpose(0, 2, 1), dtype=np.float32), idx


def forward_return(close: np.ndarray, horizon: int) -> np.ndarray:
    """log(c[i+horizon] / c[i]) at each bar (NaN where the horizon runs past the data): the target."""
    c = np.log(np.asarray(close, dtype=np.float64))
    out = np.full(len(c), np.nan)
    if len(c) > horizon:
        out[:-horizon] = c[horizon:] - c[:-horizon]
    return out


# --- the RL policies' observation --------------------------------------------------------------------------

OBSERVATION_INPUT = "observation"
INDICATOR_COLUMNS = ("rsi14_centred", "log_close_sma50")


def observation_size(window: int, with_prediction: bool) -> int:
    return window * len(BAR_COLUMNS) + len(INDICATOR_COLUMNS) + int(with_prediction)


def observation_warmup(window: int) -> int:
    """First bar with a complete observation (the SMA(50) needs 49 bars before it)."""
    return max(window, 49)


def policy_observations(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                        volume: np.ndarray, window: int, prediction: np.ndarray | None = None,
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(observations (k, D) float32, bar index of each) from :func:`observation_warmup` on.

    Per bar: the last ``window`` bars of :data:`BAR_COLUMNS` (flattened, oldest first), RSI(14)/100 - 0.5,
    log(close / SMA(50)) - the backtester's own indicator kernels - and, for a policy trained with one,
    the predictor's output.  Nothing about the position held: the observation is a function of the
    market alone, which is what lets the policy run as an indicator (batch over a history, one row live).
    Rows where the prediction is not yet defined are dropped from the front.
    """
    c = np.asarray(close, dtype=np.float64)
    start = observation_warmup(window)
    if prediction is not None:
        defined = np.flatnonzero(np.isfinite(prediction))
        start = max(start, int(defined[0]) if len(defined) else len(c))
    n = len(c)
    if n <= start:
        return np.empty((0, observation_size(window, prediction is not None)), dtype=np.float32), np.empty(0, np.int64)
    bars, idx = bar_windows(bar_features(open_, high, low, c, volume), window, np.arange(start, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        ind = np.column_stack([kernels.rsi(c, 14)[idx] / 100.0 - 0.5, np.log(c / kernels.sma(c, 50))[idx]])
    cols = [bars.reshape(len(idx), -1), ind]
    if prediction is not None:
        cols.append(np.asarray(prediction, dtype=np.float64)[idx, None])
    return np.ascontiguousarray(np.hstack(cols), dtype=np.float32), idx


def dataset_name(candles: Candles) -> str:
    """How a model names a candle set it was trained on: the file's name (not its path, which is where this
    machine keeps it: the same data and seed then give the same model file, and the same sha256, in the
    training image and on a laptop), else the symbol."""
    from pathlib import PurePath

    return PurePath(candles.source).name if candles.source else (candles.symbol or "candles")
