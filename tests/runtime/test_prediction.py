"""The ONNX prediction model: the bundled one loads and feeds genomes; wrong ones are refused clearly."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest

from kubetrade.candles import load_csv
from kubetrade.data import SAMPLE_DIR
from kubetrade.engine.live import LiveSignal
from kubetrade.engine.runs import Costs, backtest
from kubetrade.prediction import train
from kubetrade.prediction.model import MODELS_DIR, ModelError, load, predict_series, register_prediction
from kubetrade.resources.genome import Genome
from kubetrade.resources.strategy import ModelReference
from kubetrade.runner.config import RunnerConfigError, parse

BUNDLED = "bundled://returns-linear-16.onnx"


def sha() -> str:
    return json.loads((MODELS_DIR / "returns-linear-16.json").read_text())["sha256"]


def test_bundled_model_matches_its_record_and_predicts() -> None:
    blob = (MODELS_DIR / "returns-linear-16.onnx").read_bytes()
    assert hashlib.sha256(blob).hexdigest() == sha()
    model = load(ModelReference(uri=BUNDLED, sha256=sha()))
    close = load_csv(SAMPLE_DIR / "BTC_USDT-5m.csv.gz").close[:500]
    pred = predict_series(model, close, close, close, close, close)  # the ridge reads the close only
    assert np.isnan(pred[:16]).all() and np.isfinite(pred[16:]).all()
    assert np.abs(pred[16:]).max() < 0.01  # a next-bar log return, not a price


def test_training_is_reproducible_and_evaluated_out_of_sample(tmp_path) -> None:
    assert train.main(["--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "returns-linear-16.json").read_text())
    bundled = json.loads((MODELS_DIR / "returns-linear-16.json").read_text())
    for sym, m in report["held_out"].items():
        assert m["bars"] > 20_000
        assert m["mse_model"] == pytest.approx(bundled["held_out"][sym]["mse_model"], rel=1e-6)
        assert m["mse_persistence"] > m["mse_zero"]  # the naive baselines behave as on a near random walk


def _model_with_input(tmp_path, width: int, name: str = "returns") -> str:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((width, 1), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", [name, "w"], ["y"])], "g",
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / f"m{width}.onnx"
    path.write_bytes(model.SerializeToString())
    return str(path)


def test_models_that_do_not_fit_are_refused_with_what_was_expected(tmp_path) -> None:
    with pytest.raises(ModelError, match=r"input is 'returns' tensor\(float\) \['batch', 8\].*shape \[batch, 16\]"):
        load(ModelReference(uri=_model_with_input(tmp_path, 8)))
    with pytest.raises(ModelError, match="input is 'x'"):
        load(ModelReference(uri=_model_with_input(tmp_path, 16, "x")))
    with pytest.raises(ModelError, match="cannot be read"):
        load(ModelReference(uri="file:///nonexistent/model.onnx"))
    with pytest.raises(ModelError, match=r"has sha256 .* the Strategy expects"):
        load(ModelReference(uri=BUNDLED, sha256="0" * 64))
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        load(ModelReference(uri=str(tmp_path / "junk.onnx")))


def strategy(**spec) -> dict:
    genome = {"entry": {"rules": [{"left": {"indicator": "prediction"}, "op": "gt", "right": {"value": 0.00004}}]},
              "exit": {"rules": [{"left": {"indicator": "prediction"}, "op": "lt", "right": {"value": -0.00002}}]}}
    return {"apiVersion": "kubetrade.io/v1alpha1", "kind": "Strategy", "metadata": {"name": "p"},
            "spec": {"symbols": ["BTC/USDT"], "capital": {"amount": 1000}, "riskPolicyRef": {"name": "d"},
                     "genome": genome} | spec}


def test_runner_refuses_a_prediction_genome_without_a_usable_model(tmp_path, registry) -> None:
    with pytest.raises(RunnerConfigError, match=r"uses the prediction indicator but spec\.model is not set"):
        parse(strategy())
    # a model that does not fit is not a config error: the runner starts, refuses to trade and says why
    cfg = parse(strategy(model={"uri": _model_with_input(tmp_path, 8)}))
    assert cfg.model_error is not None and re.search(r"spec.model: .*shape \[batch, 16\]", cfg.model_error)


@pytest.fixture
def registry():
    """Leave the process's indicator registry as it was found."""
    from kubetrade.prediction import model as m

    yield
    m.unbind()


def test_prediction_operand_backtests_and_runs_live_identically(registry) -> None:
    cfg = parse(strategy(model={"uri": BUNDLED, "sha256": sha()}))
    register_prediction(ModelReference(uri=BUNDLED))
    genome: Genome = cfg.genome
    c = load_csv(SAMPLE_DIR / "ETH_USDT-5m.csv.gz").slice(0, 700)
    costs = Costs(fee=0.0, slippage=0.0)
    bt = backtest(genome, c, costs, start=300)
    assert len(bt.trades) >= 3
    live = LiveSignal(genome, timeframe="5m", capital=costs.init_cash)
    live.prime(c.slice(0, 300))
    entries = [i for i in range(300, 700)
               if live.on_bar(int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i]).opened]
    assert entries[: len(bt.trades)] == [t.entry_bar for t in bt.trades]
