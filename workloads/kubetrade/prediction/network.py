"""The LSTM-Transformer price model: defined, trained and early-stopped in JAX with optax.

Architecture (one forward pass over a window of ``window`` bars of
:data:`kubetrade.prediction.features.BAR_COLUMNS`):

1. each feature standardised with the training part's mean and standard deviation (stored with the
   model, inside its ONNX graph);
2. an LSTM encoder (``hidden`` units, gates i, f, g, o, no peepholes) over the window, giving one state
   per bar;
3. ``layers`` Transformer encoder blocks over those states: multi-head self-attention (``heads``) with a
   residual connection and layer normalisation, then a ReLU feed-forward layer, again with residual and
   layer normalisation (post-norm);
4. a linear head on the last bar's state: the next ``horizon`` bars' log return, in units of the training
   target's standard deviation (the ONNX graph scales it back to a log return).

Training: mean squared error against the standardised target (clipped to +-``clip`` standard deviations:
crypto returns have fat tails, and a handful of crash bars would otherwise dominate the fit), AdamW,
mini-batches in an order drawn from ``seed``; the last ``val_fraction`` of the training rows (in time)
is the validation part: the parameters of the epoch with the lowest validation error are kept, and
training stops after ``patience`` epochs without improvement.  The same seed gives the same parameters
(XLA on the CPU computes deterministically; ``tests/prediction`` trains twice and compares digests).

Imported only where a model is trained (the ``train`` extra); serving needs the ONNX file alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

Params = dict[str, Any]


@dataclass(frozen=True)
class NetConfig:
    window: int = 32
    hidden: int = 16
    heads: int = 2
    layers: int = 1
    ffn: int = 32
    horizon: int = 1
    epochs: int = 20
    batch: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 3
    val_fraction: float = 0.2
    clip: float = 5.0
    seed: int = 0
    ln_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} must be a multiple of heads {self.heads}")
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"validation fraction {self.val_fraction} must be within (0, 0.5)")
        for name in ("window", "hidden", "heads", "layers", "ffn", "horizon", "epochs", "batch", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} {getattr(self, name)} must be at least 1")


@dataclass
class Scaling:
    """What the inputs and the target are standardised with (stored in the model)."""

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float


@dataclass
class TrainResult:
    params: Params
    scaling: Scaling
    config: NetConfig
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "best_epoch": self.best_epoch, "epochs_run": len(self.history),
                "seconds": round(self.seconds, 2), "history": self.history}


def _dense(key: jax.Array, n_in: int, n_out: int) -> tuple[jax.Array, jax.Array]:
    lim = math.sqrt(6.0 / (n_in + n_out))  # Glorot uniform
    return jax.random.uniform(key, (n_in, n_out), jnp.float32, -lim, lim), jnp.zeros(n_out, jnp.float32)


def init_params(cfg: NetConfig, n_features: int, key: jax.Array) -> Params:
    keys = iter(jax.random.split(key, 4 + 6 * cfg.layers))
    h = cfg.hidden
    wx, _ = _dense(next(keys), n_features, 4 * h)
    wh, _ = _dense(next(keys), h, 4 * h)
    # the forget gate starts open (bias 1), the usual LSTM initialisation
    b = jnp.zeros(4 * h, jnp.float32).at[h:2 * h].set(1.0)
    blocks = []
    for _ in range(cfg.layers):
        blk = {}
        for name in ("q", "k", "v", "o"):
            blk[f"w{name}"], blk[f"b{name}"] = _dense(next(keys), h, h)
        blk["w1"], blk["b1"] = _dense(next(keys), h, cfg.ffn)
        blk["w2"], blk["b2"] = _dense(next(keys), cfg.ffn, h)
        for ln in ("ln1", "ln2"):
            blk[f"{ln}_g"], blk[f"{ln}_b"] = jnp.ones(h, jnp.float32), jnp.zeros(h, jnp.float32)
        blocks.append(blk)
    head_w, head_b = _dense(next(keys), h, 1)
    return {"lstm": {"wx": wx, "wh": wh, "b": b}, "blocks": blocks, "head": {"w": head_w, "b": head_b}}


def _layer_norm(x: jax.Array, g: jax.Array, b: jax.Array, eps: float) -> jax.Array:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    out: jax.Array = (x - mu) / jnp.sqrt(var + eps) * g + b
    return out


def lstm(p: Params, x: jax.Array) -> jax.Array:
    """(batch, time, features) -> (batch, time, hidden): every bar's state."""
    hidden = p["wh"].shape[0]
    xs = jnp.einsum("btf,fg->tbg", x, p["wx"]) + p["b"]

    def step(carry: tuple[jax.Array, jax.Array], xt: jax.Array) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        hprev, cprev = carry
        z = xt + hprev @ p["wh"]
        i, f, g, o = (z[:, k * hidden:(k + 1) * hidden] for k in range(4))
        c = jax.nn.sigmoid(f) * cprev + jax.nn.sigmoid(i) * jnp.tanh(g)
        hnew = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (hnew, c), hnew

    zeros = jnp.zeros((x.shape[0], hidden), x.dtype)
    _, hs = jax.lax.scan(step, (zeros, zeros), xs)
    out: jax.Array = jnp.transpose(hs, (1, 0, 2))
    return out


def attention_block(blk: Params, x: jax.Array, heads: int, eps: float) -> jax.Array:
    b, t, h = x.shape
    dh = h // heads

    def split(y: jax.Array) -> jax.Array:
        return jnp.transpose(y.reshape(b, t, heads, dh), (0, 2, 1, 3))

    q, k, v = (split(x @ blk[f"w{n}"] + blk[f"b{n}"]) for n in ("q", "k", "v"))
    att = jax.nn.softmax(q @ jnp.transpose(k, (0, 1, 3, 2)) / math.sqrt(dh), axis=-1)
    mixed = jnp.transpose(att @ v, (0, 2, 1, 3)).reshape(b, t, h) @ blk["wo"] + blk["bo"]
    x = _layer_norm(x + mixed, blk["ln1_g"], blk["ln1_b"], eps)
    ff = jax.nn.relu(x @ blk["w1"] + blk["b1"]) @ blk["w2"] + blk["b2"]
    return _layer_norm(x + ff, blk["ln2_g"], blk["ln2_b"], eps)


def forward(params: Params, x: jax.Array, cfg: NetConfig) -> jax.Array:
    """Standardised windows (batch, window, features) -> standardised prediction (batch,)."""
    hs = lstm(params["lstm"], x)
    for blk in params["blocks"]:
        hs = attention_block(blk, hs, cfg.heads, cfg.ln_eps)
    out: jax.Array = (hs[:, -1, :] @ params["head"]["w"] + params["head"]["b"])[:, 0]
    return out


def fit_scaling(x: np.ndarray, y: np.ndarray) -> Scaling:
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    std = flat.std(axis=0)
    return Scaling(flat.mean(axis=0), np.where(std > 0, std, 1.0), float(np.mean(y)), float(np.std(y) or 1.0))


def scale_x(x: np.ndarray, s: Scaling) -> np.ndarray:
    out: np.ndarray = ((x - s.x_mean) / s.x_std).astype(np.float32)
    return out


def predict(result: TrainResult, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Raw windows -> predicted log returns, in JAX (what the ONNX export must reproduce)."""
    fwd = jax.jit(lambda p, xb: forward(p, xb, result.config))
    out = [np.asarray(fwd(result.params, scale_x(x[i:i + batch], result.scaling)))
           for i in range(0, len(x), batch)]
    z = np.concatenate(out) if out else np.empty(0, np.float32)
    return z.astype(np.float64) * result.scaling.y_std + result.scaling.y_mean


def train(x: np.ndarray, y: np.ndarray, cfg: NetConfig,
          progress: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Fit on rows in time order (windows ``x`` (n, window, features), targets ``y`` (n,)); see the module doc."""
    if len(x) != len(y) or len(x) < 10:
        raise ValueError(f"training needs at least 10 rows of windows and targets, got {len(x)} and {len(y)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("training rows contain NaN or infinite values")
    started = time.monotonic()
    n_val = max(1, int(len(x) * cfg.val_fraction))
    xtr, ytr, xva, yva = x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
    scaling = fit_scaling(xtr, ytr)
    xtr_s, xva_s = scale_x(xtr, scaling), scale_x(xva, scaling)
    clip = cfg.clip

    def target(v: np.ndarray) -> np.ndarray:
        return np.clip((v - scaling.y_mean) / scaling.y_std, -clip, clip).astype(np.float32)

    ytr_s, yva_s = target(ytr), target(yva)
    params = init_params(cfg, x.shape[-1], jax.random.PRNGKey(cfg.seed))
    opt = optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)
    state = opt.init(params)

    def loss(p: Params, xb: jax.Array, yb: jax.Array) -> jax.Array:
        return jnp.mean((forward(p, xb, cfg) - yb) ** 2)

    @jax.jit
    def step(p: Params, s: Any, xb: jax.Array, yb: jax.Array) -> tuple[Params, Any, jax.Array]:
        value, grads = jax.value_and_grad(loss)(p, xb, yb)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    eval_loss = jax.jit(loss)

    def mse(p: Params, xs: np.ndarray, ys: np.ndarray) -> float:
        total = 0.0
        for i in range(0, len(xs), 4096):
            total += float(eval_loss(p, xs[i:i + 4096], ys[i:i + 4096])) * len(xs[i:i + 4096])
        return total / len(xs)

    rng = np.random.default_rng(cfg.seed)
    n = len(xtr_s)
    nb = max(1, n // cfg.batch)
    best, best_params, best_epoch, waited = mse(params, xva_s, yva_s), params, 0, 0
    history = [{"epoch": 0, "train_mse": mse(params, xtr_s, ytr_s), "val_mse": best}]
    for epoch in range(1, cfg.epochs + 1):
        order = rng.permutation(n)
        tot = 0.0
        for b in range(nb):
            ix = order[b * cfg.batch:(b + 1) * cfg.batch]
            params, state, value = step(params, state, xtr_s[ix], ytr_s[ix])
            tot += float(value)
        val = mse(params, xva_s, yva_s)
        row = {"epoch": epoch, "train_mse": tot / nb, "val_mse": val}
        history.append(row)
        if progress is not None:
            progress(epoch, row)
        if val < best - 1e-6:
            best, best_params, best_epoch, waited = val, params, epoch, 0
        else:
            waited += 1
            if waited >= cfg.patience:
                break
    return TrainResult(jax.tree_util.tree_map(np.asarray, best_params), scaling, cfg, history, best_epoch,
                       time.monotonic() - started)
