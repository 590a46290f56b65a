"""Loading the ONNX models a Strategy names, checking them, and exposing them to genomes as indicators.

Two kinds of model, each one indicator:

* a **predictor** (``spec.model``) -> the indicator ``prediction``: the predicted next-horizon log
  return at each bar.  Either the ridge baseline (input ``returns``, the last 16 log returns) or the
  LSTM-Transformer (input ``bars``, a window of :data:`~kubetrade.prediction.features.BAR_COLUMNS`);
* a **policy** (``spec.policy``), trained by reinforcement learning -> the indicator ``policy``: the
  target position (-1, 0 or +1) its greedy action chooses at each bar, from the observation of
  :func:`kubetrade.prediction.features.policy_observations` (bar features, indicators and, if it was
  trained with one, the predictor's output).  A policy trades through an ordinary genome
  (:func:`policy_genome`), so the backtester, the evolution's gates and the runner treat it as one.

A model is refused - :class:`ModelError`, which the runner turns into a Strategy that does not trade,
a Degraded condition and an alert - when its file is missing, its SHA-256 differs from the
Strategy's, its graph does not take what kubetrade gives, it was trained on other features than the
Strategy asks for (``spec.model.features``), or a policy was trained on another predictor than the
one the Strategy names.  A prediction is never made from a window with a NaN or an infinite value:
that raises :class:`ModelInputError` naming the bar, never a silent zero.

Serving is batch over a history and one row per new bar live, with the same file: the indicator keeps
the predictions of the latest windows it computed (keyed by the window's bytes), so a live runner,
which recomputes its features over the bars it holds on every bar, runs the model on the one new
window only.  Only onnxruntime is needed here (no training library).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kubetrade.engine import indicators
from kubetrade.prediction import features as feat
from kubetrade.prediction.errors import ModelError as ModelError  # re-exported: the loaders raise it
from kubetrade.prediction.errors import ModelInputError as ModelInputError
from kubetrade.resources.genome import Genome
from kubetrade.resources.strategy import ModelReference

MODELS_DIR = Path(__file__).with_name("models")
INDICATOR = "prediction"
POLICY_INDICATOR = "policy"
REGISTRY_SCHEME = "registry://"
_lock = threading.Lock()
_registered: dict[str, str] = {}
"""Indicator name -> sha256 of the model it is bound to in this process."""


def resolve(uri: str) -> Path:
    """``bundled://NAME`` (shipped in the image), ``file:///PATH`` or a plain path (``registry://`` is
    fetched from the model store by :func:`kubetrade.prediction.registry.fetch`, not resolved to a path)."""
    if uri.startswith("bundled://"):
        return MODELS_DIR / uri.removeprefix("bundled://")
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    if "://" in uri:
        raise ModelError(f"uri {uri!r}: only bundled://NAME, file:///PATH, registry://NAME or a path are supported")
    return Path(uri)


@dataclass
class LoadedModel:
    """One checked ONNX model and what its metadata says about it."""

    source: str
    sha256: str
    session: Any
    kind: str
    """predictor or policy."""
    features: str
    window: int
    input_name: str
    metadata: dict[str, str]
    calls: int = 0
    """Runs of the session (a test counts them: one row per bar live)."""
    rows: int = 0
    _cache: OrderedDict[bytes, float] = field(default_factory=OrderedDict)
    cache_size: int = 4096

    @property
    def predictor_sha256(self) -> str:
        """A policy's: the predictor whose output it observes ("" if none)."""
        return self.metadata.get("kubetrade.predictor", "")

    def run(self, rows: np.ndarray) -> np.ndarray:
        """The model on ready-made input rows, one output per row (float64)."""
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if len(rows) == 0:
            return np.empty(0)
        self.calls += 1
        self.rows += len(rows)
        return np.asarray(self.session.run(None, {self.input_name: rows})[0], dtype=np.float64).reshape(-1)

    def cached_run(self, rows: np.ndarray) -> np.ndarray:
        """``run`` for rows not seen lately; rows seen before (the held history of a live runner) come
        from the cache, so live inference is one row per new bar."""
        if len(rows) > self.cache_size:  # a backtest's whole history: one batch, keep its tail
            out = self.run(rows)
            for r, v in zip(rows[-self.cache_size:], out[-self.cache_size:], strict=True):
                self._cache[r.tobytes()] = float(v)
            self._trim()
            return out
        keys = [r.tobytes() for r in rows]
        out = np.empty(len(rows))
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if missing:
            new = self.run(rows[missing])
            for i, v in zip(missing, new, strict=True):
                self._cache[keys[i]] = float(v)
        for i, k in enumerate(keys):
            self._cache.move_to_end(k)
            out[i] = self._cache[k]
        self._trim()
        return out

    def _trim(self) -> None:
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def _finite_rows(rows: np.ndarray, idx: np.ndarray, source: str) -> None:
    bad = ~np.isfinite(rows.reshape(len(rows), -1)).all(axis=1)
    if bad.any():
        i = int(idx[np.argmax(bad)])
        raise ModelInputError(f"model {source}: the input window ending at bar {i} holds NaN or infinite values "
                              f"({int(bad.sum())} such window(s)); no prediction is made from them")


def predict_series(m: LoadedModel, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
                   v: np.ndarray) -> np.ndarray:
    """A predictor's output at every bar (NaN until a full window exists)."""
    out = np.full(len(c), np.nan)
    if m.features == "returns-16":
        rows, idx = feat.window_matrix(c)
    else:
        rows, idx = feat.bar_windows(feat.bar_features(o, h, lo, c, v), m.window)
    if len(rows):
        _finite_rows(rows, idx, m.source)
        out[idx] = m.cached_run(rows)
    return out


def policy_series(m: LoadedModel, predictor: LoadedModel | None, o: np.ndarray, h: np.ndarray, lo: np.ndarray,
                  c: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A policy's target position at every bar (NaN until its observation is complete)."""
    pred = predict_series(predictor, o, h, lo, c, v) if predictor is not None else None
    obs, idx = feat.policy_observations(o, h, lo, c, v, m.window, pred)
    out = np.full(len(c), np.nan)
    if len(obs):
        _finite_rows(obs, idx, m.source)
        out[idx] = m.cached_run(obs)
    return out


def _describe(session: Any) -> str:
    return ", ".join(f"{i.name!r} {i.type} {i.shape}" for i in session.get_inputs())


def _check(session: Any, source: str, meta: dict[str, str], want_kind: str) -> tuple[str, str, int, str]:
    """(kind, features, window, input name) of a model, or ModelError naming what was found and expected."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    kind = meta.get("kubetrade.kind", "predictor")
    if kind != want_kind:
        raise ModelError(f"{source} is a {kind} model; this field takes a {want_kind} "
                         f"({'spec.model' if want_kind == 'predictor' else 'spec.policy'})")
    if len(outputs) != 1 or len(outputs[0].shape) != 2 or outputs[0].shape[1] != 1:
        got = [(o.name, o.shape) for o in outputs]
        raise ModelError(f"{source}: the model's outputs are {got}; kubetrade expects one output of shape [batch, 1]")
    if len(inputs) != 1:
        raise ModelError(f"{source}: the model has {len(inputs)} inputs ({_describe(session)}); kubetrade gives one")
    i = inputs[0]
    if kind == "policy":
        window = int(meta.get("kubetrade.window", "0") or 0)
        want = feat.observation_size(window, bool(meta.get("kubetrade.predictor")))
        if i.name != feat.OBSERVATION_INPUT or i.type != "tensor(float)" or len(i.shape) != 2 or i.shape[1] != want:
            raise ModelError(f"{source}: the policy's input is {_describe(session)}; kubetrade gives "
                             f"{feat.OBSERVATION_INPUT!r} tensor(float) [batch, {want}] for a window of {window} bars")
        return kind, meta.get("kubetrade.features", ""), window, i.name
    if "kubetrade.features" not in meta:  # the ridge baseline: the last 16 returns
        expected = (f"one input {feat.INPUT_NAME!r} of type tensor(float) and shape [batch, {feat.WINDOW}] (the last "
                    f"{feat.WINDOW} log returns of the close)")
        if i.name != feat.INPUT_NAME or i.type != "tensor(float)" or len(i.shape) != 2 or i.shape[1] != feat.WINDOW:
            raise ModelError(f"{source}: the model's input is {i.name!r} {i.type} {i.shape}; "
                             f"kubetrade gives {expected}")
        return kind, "returns-16", feat.WINDOW, i.name
    features = meta["kubetrade.features"]
    if features not in feat.FEATURE_SETS:
        raise ModelError(f"{source} was trained on features {features!r}, which this kubetrade does not compute "
                         f"(it knows {', '.join(sorted(feat.FEATURE_SETS))})")
    window = int(meta.get("kubetrade.window", "0") or 0)
    n = len(feat.BAR_COLUMNS)
    if i.name != feat.BARS_INPUT or i.type != "tensor(float)" or list(i.shape[1:]) != [window, n]:
        raise ModelError(f"{source}: the model's input is {_describe(session)}; kubetrade gives {feat.BARS_INPUT!r} "
                         f"tensor(float) [batch, {window}, {n}] ({features})")
    return kind, features, window, i.name


def from_bytes(blob: bytes, source: str, ref: ModelReference, kind: str = "predictor") -> LoadedModel:
    """Check the digest, the graph and the features of a model file's bytes against the reference."""
    digest = hashlib.sha256(blob).hexdigest()
    if ref.sha256 and digest != ref.sha256:
        raise ModelError(f"model file {source} has sha256 {digest}, the Strategy expects {ref.sha256}")
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a file that is not a model
        raise ModelError(f"model file {source} is not a loadable ONNX model: {str(exc)[:200]}") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    kind_found, features, window, input_name = _check(session, source, meta, kind)
    if ref.features is not None and ref.features != features:
        raise ModelError(f"{source} was trained on features {features!r}; the Strategy asks for {ref.features!r}")
    return LoadedModel(source, digest, session, kind_found, features, window, input_name, meta)


def load(ref: ModelReference, kind: str = "predictor", fetch: Callable[[ModelReference], bytes] | None = None,
         ) -> LoadedModel:
    """Load and check the model ``ref`` names; ``fetch`` reads ``registry://`` models (from the model store)."""
    if ref.uri.startswith(REGISTRY_SCHEME):
        if fetch is None:
            raise ModelError(f"{ref.uri}: a model in the model store needs the database (KUBETRADE_DATABASE_URL)")
        if not ref.sha256:
            raise ModelError(f"{ref.uri}: a model from the model store must be named with its sha256")
        return from_bytes(fetch(ref), ref.uri, ref, kind)
    path = resolve(ref.uri)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read: {exc.strerror}") from None
    return from_bytes(blob, str(path), ref, kind)


def _bind(name: str, model: LoadedModel, compute: Callable[..., tuple[np.ndarray]], lookback: int,
          description: str) -> None:
    with _lock:
        bound = _registered.get(name)
        if bound is not None and bound != model.sha256:
            raise ModelError(f"another {name} model (sha256 {bound[:12]}...) is already loaded in this process; "
                             f"one per runner")
        indicators.register(indicators.IndicatorSpec(
            name, ("open", "high", "low", "close", "volume"), (), ("value",), compute, lambda p: lookback,
            description=description), replace=True)
        _registered[name] = model.sha256


def bind_prediction(model: LoadedModel) -> LoadedModel:
    """Make a loaded predictor the ``prediction`` indicator of this process."""
    _bind(INDICATOR, model, lambda o, h, lo, c, v: (predict_series(model, o, h, lo, c, v),), model.window,
          f"predicted next-bar log return of the ONNX model {model.source}")
    return model


def bind_policy(model: LoadedModel, predictor: LoadedModel | None) -> LoadedModel:
    """Make a loaded policy the ``policy`` indicator; ``predictor`` must be the one it was trained with."""
    want = model.predictor_sha256
    if want and (predictor is None or predictor.sha256 != want):
        have = "none" if predictor is None else predictor.sha256
        raise ModelError(f"policy {model.source} observes the predictor sha256 {want}; the Strategy's spec.model is "
                         f"{have}")
    if not want and predictor is not None:
        predictor = None  # a policy trained without a prediction does not observe one
    lookback = feat.observation_warmup(model.window) + (predictor.window if predictor is not None else 0)
    _bind(POLICY_INDICATOR, model, lambda o, h, lo, c, v: (policy_series(model, predictor, o, h, lo, c, v),),
          lookback, f"target position (-1, 0, +1) of the RL policy {model.source}")
    return model


def register_prediction(ref: ModelReference, fetch: Callable[[ModelReference], bytes] | None = None) -> LoadedModel:
    """Load the model and make it the ``prediction`` indicator of this process."""
    return bind_prediction(load(ref, "predictor", fetch))


def register_policy(ref: ModelReference, predictor: LoadedModel | None = None,
                    fetch: Callable[[ModelReference], bytes] | None = None) -> LoadedModel:
    return bind_policy(load(ref, "policy", fetch), predictor)


@contextmanager
def bound_prediction(model: LoadedModel) -> Iterator[LoadedModel]:
    """``model`` as the ``prediction`` indicator while the block runs (a Goal's evolution run), then unbound.

    Refused (ModelError) when another predictor is bound in this process: a run never swaps the model
    under something that trades with it."""
    with _lock:
        ours = INDICATOR not in _registered  # the same model bound before stays bound after
    bind_prediction(model)
    try:
        yield model
    finally:
        with _lock:
            if ours and _registered.get(INDICATOR) == model.sha256:
                indicators.REGISTRY.pop(INDICATOR, None)
                del _registered[INDICATOR]


def unbind() -> None:
    """Forget this process's model indicators (tests, and a training run that scores several policies)."""
    with _lock:
        for name in list(_registered):
            indicators.REGISTRY.pop(name, None)
        _registered.clear()


def uses(genome: Genome, name: str) -> bool:
    sets = [genome.entry, genome.exit, genome.short_entry, genome.short_exit]
    return any(op.indicator == name for rs in sets if rs for r in rs.rules for op in (r.left, r.right))


def policy_genome(market: str = "spot", indicator: str = POLICY_INDICATOR, position_pct: float = 1.0) -> Genome:
    """The genome that holds the position the ``policy`` indicator chooses (long/flat on spot, long/short on a
    perpetual), with no stops of its own: entry above 0.5, exit below; short below -0.5, cover above."""
    def rule(op: str, level: float) -> dict[str, Any]:
        return {"left": {"indicator": indicator}, "op": op, "right": {"value": level}}

    spec: dict[str, Any] = {"entry": {"rules": [rule("gt", 0.5)]}, "exit": {"rules": [rule("lt", 0.5)]},
                            "positionPct": position_pct}
    if market == "perpetual":
        spec |= {"direction": "both", "shortEntry": {"rules": [rule("lt", -0.5)]},
                 "shortExit": {"rules": [rule("gt", -0.5)]}}
    return Genome.model_validate(spec)
