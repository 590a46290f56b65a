"""The LSTM-Transformer: reproducible training, the ONNX file equal to JAX, live = batch, bad models refused."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from kubetrade.engine.live import LiveSignal
from kubetrade.engine.runs import Costs, backtest
from kubetrade.prediction import features as feat
from kubetrade.prediction import learn, network
from kubetrade.prediction.model import (
    ModelError,
    ModelInputError,
    bind_prediction,
    from_bytes,
    load,
    predict_series,
    register_prediction,
)
from kubetrade.resources.genome import Genome
from kubetrade.resources.strategy import ModelReference

from .conftest import SMALL


def test_training_is_reproducible_with_a_seed(eth_1h, trained) -> None:
    again = learn.train_predictor([eth_1h], network.NetConfig(**SMALL), until_ms=int(eth_1h.time[3000]))
    assert again.sha256 == trained.sha256
    other = learn.train_predictor([eth_1h], network.NetConfig(**(SMALL | {"seed": 8})),
                                  until_ms=int(eth_1h.time[3000]))
    assert other.sha256 != trained.sha256
    # early stopping kept the best validation epoch, and the history says so
    hist = trained.result.history
    assert trained.result.best_epoch == min(range(len(hist)), key=lambda i: hist[i]["val_mse"])


def test_the_onnx_file_and_jax_agree_to_1e_5(eth_1h, trained) -> None:
    x, _ = learn.rows(eth_1h, trained.result.config.window, 1, 3000, 4500)
    jax_out = network.predict(trained.result, x)
    m = from_bytes(trained.onnx, "trained", ModelReference(uri="x"))
    onnx_out = m.run(x)
    s = trained.result.scaling
    # in the network's own units (the standardised target), where its outputs are of order one
    assert np.max(np.abs((onnx_out - jax_out) / s.y_std)) < 1e-5
    assert np.std(jax_out / s.y_std) > 1e-3  # not a constant: the comparison means something
    assert m.metadata["kubetrade.features"] == feat.BAR_FEATURES
    assert m.metadata["kubetrade.train_to"].startswith("2024-05")  # bar 3000 of 2024's hours


def _genome(level: float) -> Genome:
    return Genome.model_validate({
        "entry": {"rules": [{"left": {"indicator": "prediction"}, "op": "gt", "right": {"value": level}}]},
        "exit": {"rules": [{"left": {"indicator": "prediction"}, "op": "lt", "right": {"value": level}}]}})


def test_live_one_step_inference_equals_batch_bar_by_bar(eth_1h, trained, tmp_path, clean_indicators) -> None:
    path = tmp_path / "net.onnx"
    path.write_bytes(trained.onnx)
    m = register_prediction(ModelReference(uri=str(path), sha256=trained.sha256, features="bars-v1"))
    c = eth_1h.slice(3000, 3600)
    batch = predict_series(m, c.open, c.high, c.low, c.close, c.volume)
    level = float(np.nanmedian(batch))
    genome = _genome(level)
    bt = backtest(genome, c, Costs(fee=0.0), start=200)
    assert len(bt.trades) >= 5
    m._cache.clear()
    live = LiveSignal(genome, timeframe="1h", capital=Costs().init_cash)
    live.prime(c.slice(0, 200))
    entries, seen = [], []
    for i in range(200, 600):
        calls, rows = m.calls, m.rows
        sig = live.on_bar(int(c.time[i]), c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i])
        if i > 200:  # after the first bar (the held history's windows at once), one new window per bar
            assert (m.calls - calls, m.rows - rows) == (1, 1)
        seen.append(m._cache[next(reversed(m._cache))])
        if sig.opened:
            entries.append(i)
    np.testing.assert_allclose(seen, batch[200:600], rtol=0, atol=1e-9)
    assert entries[:len(bt.trades)] == [t.entry_bar for t in bt.trades]


def test_bad_models_and_inputs_are_refused_clearly(eth_1h, trained, tmp_path, clean_indicators) -> None:
    path = tmp_path / "net.onnx"
    path.write_bytes(trained.onnx)
    with pytest.raises(ModelError, match=r"has sha256 .* the Strategy expects 0000"):
        load(ModelReference(uri=str(path), sha256="0" * 64))
    with pytest.raises(ModelError, match=r"trained on features 'bars-v1'; the Strategy asks for 'returns-16'"):
        load(ModelReference(uri=str(path), features="returns-16"))
    with pytest.raises(ModelError, match="cannot be read"):
        load(ModelReference(uri=str(tmp_path / "gone.onnx")))
    with pytest.raises(ModelError, match="is a predictor model; this field takes a policy"):
        load(ModelReference(uri=str(path)), "policy")
    with pytest.raises(ModelError, match="needs the database"):
        load(ModelReference(uri="registry://lstm", sha256=trained.sha256))
    m = bind_prediction(load(ModelReference(uri=str(path), sha256=hashlib.sha256(trained.onnx).hexdigest())))
    c = eth_1h.slice(0, 300)
    vol = c.volume.copy()
    vol[250] = np.nan
    with pytest.raises(ModelInputError, match="window ending at bar 250 holds NaN"):
        predict_series(m, c.open, c.high, c.low, c.close, vol)


def test_the_model_store_keeps_the_file_by_name_and_hash(trained, pg_dsn, clean_indicators) -> None:
    from datetime import UTC, datetime

    from kubetrade.prediction import registry

    t0, t1 = (datetime.fromtimestamp(t / 1000, UTC) for t in (trained.train_from, trained.train_to))
    stored = registry.store(pg_dsn, "lstm-eth", trained.onnx, kind="predictor", features="bars-v1", train_from=t0,
                            train_to=t1, metrics={"val_mse": 1.0}, config=trained.config())
    assert stored.sha256 == trained.sha256
    ref = stored.reference
    m = load(ref, fetch=lambda r: registry.fetch(pg_dsn, r))
    assert m.sha256 == trained.sha256
    [row] = registry.describe(pg_dsn, "lstm-eth")
    assert (row.train_from, row.train_to, row.metrics) == (t0, t1, {"val_mse": 1.0})
    with pytest.raises(ModelError, match=r"is not in the model store \(it has lstm-eth with sha256 "):
        registry.fetch(pg_dsn, ModelReference(uri="registry://lstm-eth", sha256="1" * 64))
    with pytest.raises(ModelError, match="it has no model named nope"):
        registry.fetch(pg_dsn, ModelReference(uri="registry://nope", sha256="1" * 64))
