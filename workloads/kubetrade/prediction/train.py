"""Train the bundled price-prediction model, reproducibly, and evaluate it honestly.

    python -m kubetrade.prediction.train            # writes models/returns-linear-16.onnx + .json

Data: the bundled real Binance 5m candles of BTC/USDT and ETH/USDT.  Each series is split
in time - the first 70 % trains, the last 30 % is held out and never seen by the fit.
Model: ridge regression of the next bar's log return on the last 16 log returns (closed
form, numpy only; deterministic), written as an ONNX graph (MatMul + Add) with the ``onnx``
helper API.  Evaluation on the held-out part against two naive baselines - predicting zero
(a random walk) and predicting the last return again (persistence) - by mean squared error,
directional accuracy (on bars where the model predicts a non-zero move) and the
correlation of prediction and outcome.  The numbers are written next to the model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from kubetrade.candles import load_csv
from kubetrade.data import SAMPLE_DIR
from kubetrade.prediction.features import INPUT_NAME, OUTPUT_NAME, WINDOW, log_returns, window_matrix
from kubetrade.prediction.model import MODELS_DIR

NAME = "returns-linear-16"
SYMBOLS = ("BTC_USDT", "ETH_USDT")
TRAIN_FRACTION = 0.7
RIDGE = 1e-6


def dataset(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the last WINDOW returns and the next bar's return (rows without a next bar dropped)."""
    rows, idx = window_matrix(close)
    r = log_returns(close)
    keep = idx + 1 < len(close)
    return rows[keep].astype(np.float64), r[idx[keep] + 1]


def fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    mx, my = x.mean(axis=0), y.mean()
    xc = x - mx
    w = np.linalg.solve(xc.T @ xc + RIDGE * len(x) * np.eye(x.shape[1]), xc.T @ (y - my))
    return w, float(my - mx @ w)


def evaluate(pred: np.ndarray, y: np.ndarray, last: np.ndarray) -> dict[str, float]:
    def mse(p: np.ndarray) -> float:
        return float(np.mean((p - y) ** 2))

    moving = (pred != 0) & (y != 0)
    return {
        "bars": len(y),
        "mse_model": mse(pred),
        "mse_zero": mse(np.zeros_like(y)),
        "mse_persistence": mse(last),
        "skill_vs_zero": 1 - mse(pred) / mse(np.zeros_like(y)),
        "directional_accuracy": float(np.mean(np.sign(pred[moving]) == np.sign(y[moving]))),
        "directional_accuracy_persistence": float(np.mean(np.sign(last[moving]) == np.sign(y[moving]))),
        "correlation": float(np.corrcoef(pred, y)[0, 1]),
    }


def to_onnx(w: np.ndarray, b: float) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(w.astype(np.float32).reshape(WINDOW, 1), "weights")
    bias = numpy_helper.from_array(np.array([b], dtype=np.float32), "bias")
    graph = helper.make_graph(
        [helper.make_node("MatMul", [INPUT_NAME, "weights"], ["linear"]),
         helper.make_node("Add", ["linear", "bias"], [OUTPUT_NAME])],
        "next_return_linear",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", WINDOW])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1])],
        [weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="kubetrade")
    model.ir_version = 8
    import onnx

    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--data", type=Path, default=SAMPLE_DIR)
    p.add_argument("--out", type=Path, default=MODELS_DIR)
    args = p.parse_args(argv)
    train_x, train_y, tests = [], [], {}
    for sym in SYMBOLS:
        close = load_csv(args.data / f"{sym}-5m.csv.gz").close
        cut = int(len(close) * TRAIN_FRACTION)
        x, y = dataset(close[:cut])
        train_x.append(x)
        train_y.append(y)
        tests[sym] = dataset(close[cut - WINDOW - 1:])  # the held-out bars, with their own input windows
    w, b = fit(np.vstack(train_x), np.concatenate(train_y))
    blob = to_onnx(w, b)
    import onnxruntime as ort

    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    report: dict[str, object] = {"model": f"{NAME}.onnx", "window": WINDOW, "train_fraction": TRAIN_FRACTION,
                                 "ridge": RIDGE, "symbols": list(SYMBOLS), "timeframe": "5m", "held_out": {}}
    for sym, (x, y) in tests.items():
        pred = session.run(None, {INPUT_NAME: x.astype(np.float32)})[0].reshape(-1).astype(np.float64)
        report["held_out"][sym] = evaluate(pred, y, x[:, -1])  # type: ignore[index]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{NAME}.onnx").write_bytes(blob)
    import hashlib

    report["sha256"] = hashlib.sha256(blob).hexdigest()
    (args.out / f"{NAME}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
