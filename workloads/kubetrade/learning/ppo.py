"""Proximal policy optimisation (Schulman et al. 2017) in JAX and optax, on :mod:`kubetrade.learning.env`.

Why our own: stable-baselines3's PPO needs torch (several GB of CUDA wheels from PyPI), and its JAX port
(sbx) depends on stable-baselines3 and therefore on torch too.  The algorithm is small; this one is the
standard clipped-surrogate PPO with generalised advantage estimation (GAE), separate tanh MLPs for the
policy and the value, advantage normalisation, an entropy bonus and gradient clipping, and is tested
on an environment whose optimal policy is known (``tests/learning/test_rl.py``).

Rollouts: ``envs`` segments of ``steps`` bars with starts drawn from the training rows, the actions of
a segment sampled from the current policy in one call (the observation does not depend on the
actions), their rewards from the backtest kernel (:func:`kubetrade.learning.env.rollout`).  After
every iteration the greedy policy is scored on the validation rows (the last ``val_fraction`` of the
training rows, in time): the best iteration's parameters are kept and training stops after
``patience`` iterations without improvement.  The same seed gives the same policy.
"""

from __future__ import annotations

import itertools
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
class PPOConfig:
    hidden: int = 64
    iterations: int = 30
    envs: int = 16
    steps: int = 256
    epochs: int = 4
    minibatch: int = 512
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    max_grad_norm: float = 0.5
    val_fraction: float = 0.2
    patience: int = 8
    seed: int = 0


@dataclass
class PPOResult:
    policy: Params
    value: Params
    x_mean: np.ndarray
    x_std: np.ndarray
    config: PPOConfig
    history: list[dict[str, float]] = field(default_factory=list)
    best_iteration: int = 0
    checkpoints: list[Params] = field(default_factory=list)
    """The policy after every iteration (the trials a selection must count)."""
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "best_iteration": self.best_iteration,
                "iterations_run": len(self.history), "seconds": round(self.seconds, 2), "history": self.history}


def _mlp_init(key: jax.Array, sizes: list[int], last_scale: float) -> list[tuple[jax.Array, jax.Array]]:
    layers = []
    keys = jax.random.split(key, len(sizes) - 1)
    for k, (a, b) in enumerate(itertools.pairwise(sizes)):
        scale = last_scale if k == len(sizes) - 2 else np.sqrt(2.0)
        w = jax.nn.initializers.orthogonal(scale)(keys[k], (a, b), jnp.float32)
        layers.append((w, jnp.zeros(b, jnp.float32)))
    return layers


def mlp(layers: list[tuple[jax.Array, jax.Array]], x: jax.Array) -> jax.Array:
    for k, (w, b) in enumerate(layers):
        x = x @ w + b
        if k < len(layers) - 1:
            x = jnp.tanh(x)
    return x


def greedy(result_policy: Params, x_mean: np.ndarray, x_std: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """The greedy action index per observation row, in JAX (what the ONNX export must reproduce)."""
    z = ((obs - x_mean) / x_std).astype(np.float32)
    return np.asarray(jnp.argmax(mlp(result_policy["layers"], jnp.asarray(z)), axis=-1))


Scorer = Callable[[Params], float]
RewardFn = Callable[[np.ndarray, int], np.ndarray]
"""(actions of a segment, its first row) -> rewards."""


def train(obs: np.ndarray, n_actions: int, rewards: RewardFn,
          validate: Callable[[Params, np.ndarray, np.ndarray], float],
          cfg: PPOConfig, train_rows: list[tuple[int, int]],
          progress: Callable[[int, dict[str, float]], None] | None = None) -> PPOResult:
    """PPO on the row ranges ``train_rows`` ([lo, hi) each: one per candle set, a segment never crosses two)
    of ``obs``; ``validate(policy, x_mean, x_std)`` scores a greedy policy on rows it does not train on."""
    started = time.monotonic()
    ranges = [(lo, hi) for lo, hi in train_rows if hi - lo >= cfg.steps + 2]
    if not ranges:
        raise ValueError(f"no candle set has the {cfg.steps + 2} training rows a rollout of {cfg.steps} steps needs")
    weights = np.array([hi - lo - cfg.steps for lo, hi in ranges], dtype=np.float64)
    weights /= weights.sum()
    rows_in = np.concatenate([np.arange(lo, hi) for lo, hi in ranges])
    x_mean = obs[rows_in].mean(axis=0).astype(np.float64)
    x_std = obs[rows_in].std(axis=0).astype(np.float64)
    x_std = np.where(x_std > 0, x_std, 1.0)
    z = ((obs - x_mean) / x_std).astype(np.float32)
    key = jax.random.PRNGKey(cfg.seed)
    key, kp, kv = jax.random.split(key, 3)
    d = obs.shape[1]
    params = {"policy": {"layers": _mlp_init(kp, [d, cfg.hidden, cfg.hidden, n_actions], 0.01)},
              "value": {"layers": _mlp_init(kv, [d, cfg.hidden, cfg.hidden, 1], 1.0)}}
    opt = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.learning_rate))
    opt_state = opt.init(params)

    @jax.jit
    def act(p: Params, x: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        logits = mlp(p["policy"]["layers"], x)
        a = jax.random.categorical(k, logits)
        logp = jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), a]
        return a, logp, mlp(p["value"]["layers"], x)[:, 0]

    def loss(p: Params, x: jax.Array, a: jax.Array, old_logp: jax.Array, adv: jax.Array, ret: jax.Array,
             ) -> jax.Array:
        logits = mlp(p["policy"]["layers"], x)
        logps = jax.nn.log_softmax(logits)
        logp = logps[jnp.arange(x.shape[0]), a]
        ratio = jnp.exp(logp - old_logp)
        surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip, 1 + cfg.clip) * adv)
        v = mlp(p["value"]["layers"], x)[:, 0]
        entropy = -(jnp.exp(logps) * logps).sum(-1)
        return -surrogate.mean() + cfg.value_coef * ((v - ret) ** 2).mean() - cfg.entropy_coef * entropy.mean()

    @jax.jit
    def update(p: Params, s: Any, batch: tuple[jax.Array, ...]) -> tuple[Params, Any, jax.Array]:
        value, grads = jax.value_and_grad(loss)(p, *batch)
        upd, s = opt.update(grads, s, p)
        return optax.apply_updates(p, upd), s, value

    rng = np.random.default_rng(cfg.seed)
    best, best_policy, best_value, best_it, waited = -np.inf, params["policy"], params["value"], 0, 0
    history: list[dict[str, float]] = []
    checkpoints: list[Params] = []
    for it in range(1, cfg.iterations + 1):
        xs, acts, logps, advs, rets, rew_sum = [], [], [], [], [], 0.0
        for _ in range(cfg.envs):
            lo, hi = ranges[int(rng.choice(len(ranges), p=weights))]
            r0 = int(rng.integers(lo, hi - cfg.steps))
            x = z[r0:r0 + cfg.steps + 1]
            key, k = jax.random.split(key)
            a, logp, v = (np.asarray(t) for t in act(params, jnp.asarray(x), k))
            r = rewards(a[:cfg.steps], r0)
            rew_sum += float(r.sum())
            adv = np.zeros(cfg.steps, np.float32)
            last = 0.0
            for t in range(cfg.steps - 1, -1, -1):  # GAE, bootstrapped from the value of the row after
                delta = r[t] + cfg.gamma * v[t + 1] - v[t]
                last = delta + cfg.gamma * cfg.gae_lambda * last
                adv[t] = last
            xs.append(x[:cfg.steps])
            acts.append(a[:cfg.steps])
            logps.append(logp[:cfg.steps])
            advs.append(adv)
            rets.append(adv + v[:cfg.steps])
        X, A, LP = np.concatenate(xs), np.concatenate(acts), np.concatenate(logps)
        ADV, RET = np.concatenate(advs), np.concatenate(rets).astype(np.float32)
        ADV = ((ADV - ADV.mean()) / (ADV.std() + 1e-8)).astype(np.float32)
        losses = []
        for _ in range(cfg.epochs):
            order = rng.permutation(len(X))
            for b in range(0, len(X), cfg.minibatch):
                ix = order[b:b + cfg.minibatch]
                params, opt_state, lv = update(params, opt_state, (X[ix], A[ix], LP[ix], ADV[ix], RET[ix]))
                losses.append(float(lv))
        policy_np = jax.tree_util.tree_map(np.asarray, params["policy"])
        checkpoints.append(policy_np)
        score = validate(policy_np, x_mean, x_std)
        row = {"iteration": it, "mean_reward": rew_sum / (cfg.envs * cfg.steps), "loss": float(np.mean(losses)),
               "validation": score}
        history.append(row)
        if progress is not None:
            progress(it, row)
        if score > best + 1e-12:
            best, best_policy, best_value, best_it, waited = score, policy_np, params["value"], it, 0
        else:
            waited += 1
            if waited >= cfg.patience:
                break
    return PPOResult(best_policy, jax.tree_util.tree_map(np.asarray, best_value), x_mean, x_std, cfg, history,
                     best_it, checkpoints, time.monotonic() - started)
