"""Loading the ONNX price-prediction model a Strategy names, and exposing it to genomes.

A Strategy's ``spec.model`` (``uri`` and optional ``sha256``) names the file; the runner
refuses a file that is missing, whose digest differs, or whose graph does not take what
:mod:`kubetrade.prediction.features` gives (one float input ``returns`` of shape
``[batch, 16]``) and return one value per row.  Once loaded, the model is registered as the
indicator ``prediction`` (output: the predicted next-bar log return), so a genome uses it
like any other operand - ``{indicator: prediction} gt {value: 0.0005}`` - and the backtester,
the evolution and the live runner all compute it the same way.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kubetrade.engine import indicators
from kubetrade.prediction.features import INPUT_NAME, WINDOW, window_matrix
from kubetrade.resources.strategy import ModelReference

MODELS_DIR = Path(__file__).with_name("models")
INDICATOR = "prediction"
_lock = threading.Lock()
_registered: str | None = None


class ModelError(ValueError):
    """A model the runner refuses; the message says what was expected."""


def resolve(uri: str) -> Path:
    """``bundled://NAME`` (shipped in the image), ``file:///PATH`` or a plain path."""
    if uri.startswith("bundled://"):
        return MODELS_DIR / uri.removeprefix("bundled://")
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    if "://" in uri:
        raise ModelError(f"uri {uri!r}: only bundled://NAME, file:///PATH or a path are supported")
    return Path(uri)


@dataclass
class PredictionModel:
    path: Path
    sha256: str
    session: Any

    def predict(self, close: np.ndarray) -> np.ndarray:
        """Predicted next-bar log return at every bar (NaN until a full window of returns exists)."""
        out = np.full(len(close), np.nan)
        rows, idx = window_matrix(close)
        if len(rows):
            out[idx] = self.session.run(None, {INPUT_NAME: rows})[0].reshape(-1)
        return out


def _check_signature(session: Any, path: Path) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected = f"one input {INPUT_NAME!r} of type tensor(float) and shape [batch, {WINDOW}] (the last {WINDOW} " \
               f"log returns of the close)"
    if len(inputs) != 1:
        raise ModelError(f"{path}: the model has {len(inputs)} inputs; kubetrade gives {expected}")
    i = inputs[0]
    if i.name != INPUT_NAME or i.type != "tensor(float)" or len(i.shape) != 2 or i.shape[1] != WINDOW:
        raise ModelError(f"{path}: the model's input is {i.name!r} {i.type} {i.shape}; kubetrade gives {expected}")
    if len(outputs) != 1 or len(outputs[0].shape) != 2 or outputs[0].shape[1] != 1:
        got = [(o.name, o.shape) for o in outputs]
        raise ModelError(f"{path}: the model's outputs are {got}; kubetrade expects one output of shape [batch, 1]")


def load(ref: ModelReference) -> PredictionModel:
    path = resolve(ref.uri)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read: {exc.strerror}") from None
    digest = hashlib.sha256(blob).hexdigest()
    if ref.sha256 and digest != ref.sha256:
        raise ModelError(f"model file {path} has sha256 {digest}, the Strategy expects {ref.sha256}")
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a file that is not a model
        raise ModelError(f"model file {path} is not a loadable ONNX model: {str(exc)[:200]}") from None
    _check_signature(session, path)
    return PredictionModel(path, digest, session)


def register_prediction(ref: ModelReference) -> PredictionModel:
    """Load the model and make it the ``prediction`` indicator of this process."""
    global _registered
    model = load(ref)
    with _lock:
        if _registered is not None and _registered != model.sha256:
            raise ModelError(f"another prediction model (sha256 {_registered[:12]}...) is already loaded in this "
                             f"process; one model per runner")
        indicators.register(indicators.IndicatorSpec(
            INDICATOR, ("close",), (), ("value",), lambda close: (model.predict(close),), lambda p: WINDOW,
            description=f"predicted next-bar log return of the ONNX model {model.path.name}"), replace=True)
        _registered = model.sha256
    return model
