"""The model's input: the last ``WINDOW`` log returns of the close, one row per bar.

Kept in one place so that training, the runner and the backtester build exactly the same
matrix: row ``i`` holds ``log(c[i-WINDOW+1] / c[i-WINDOW]), ..., log(c[i] / c[i-1])``, the
returns known at the close of bar ``i``; the model predicts the next bar's log return.
"""

from __future__ import annotations

import numpy as np

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
