"""Reinforcement learning: the gymnasium environment over the kernel, PPO, its ONNX policy and the gates."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from kubetrade.candles import Candles, from_arrays
from kubetrade.engine.evolve import EvolveConfig
from kubetrade.engine.runs import Costs, backtest
from kubetrade.engine.walkforward import WalkForwardConfig, evaluate
from kubetrade.learning import env, ppo, training
from kubetrade.lifecycle.gates import paper_gate
from kubetrade.prediction.model import ModelReference, bind_policy, from_bytes, policy_genome, policy_series
from kubetrade.resources.goal import SelectionGates

COSTS = Costs(fee=0.001, slippage=0.0002, init_cash=10_000)
FAST = {"iterations": 12, "envs": 8, "steps": 128, "minibatch": 256, "patience": 12, "seed": 3}


def planted(real: Candles, regime: int = 48) -> Candles:
    """Real ETH bars' return sizes and volumes, with the sign held for ``regime`` bars at a time: a trend
    that the last few bars reveal (what a policy must learn to ride, after costs)."""
    r = np.abs(np.diff(np.log(real.close))) + 0.002
    sign = np.where((np.arange(len(r)) // regime) % 2 == 0, 1.0, -1.0)
    close = real.close[0] * np.exp(np.concatenate([[0.0], np.cumsum(r * sign)]))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * 1.0005
    low = np.minimum(open_, close) * 0.9995
    return from_arrays(real.time, open_, high, low, close, real.volume, timeframe=real.timeframe, symbol="PLANT/USDT")


@pytest.fixture(scope="module")
def plant(eth_1h) -> Candles:
    return planted(eth_1h)


@pytest.fixture(scope="module")
def trained_policy(plant):
    return training.train_policy([plant], ppo.PPOConfig(**FAST), window=8, until_ms=int(plant.time[4000]),
                                 costs=COSTS)


def test_the_environment_follows_gymnasiums_api_and_steps_the_kernel(eth_1h) -> None:
    s = training.observe(eth_1h.slice(0, 1500), 8, None)
    e = env.TradingEnv(s.candles, s.obs, s.bars, costs=COSTS, episode_bars=200)
    check_env(e, skip_render_check=True)
    obs, info = e.reset(seed=1, options={"row": 100})
    assert info["bar"] == s.bars[100] and np.array_equal(obs, s.obs[100])
    actions = np.random.default_rng(0).integers(0, 2, 200)
    stepped, done = [], False
    for a in actions:
        assert not done
        _, reward, done, truncated, info = e.step(a)
        stepped.append(reward)
    assert done and not truncated
    c = s.candles
    batch, equity = env.rollout(np.asarray(env.ACTIONS["spot"])[actions], c.open, c.high, c.low, c.close,
                                *env.tables("spot"), COSTS.fee, COSTS.slippage, COSTS.init_cash, int(s.bars[100]),
                                1.0, 100.0)
    np.testing.assert_allclose(stepped, batch, rtol=1e-12, atol=1e-12)
    assert info["equity"] == pytest.approx(equity[-1])
    assert equity[-1] != COSTS.init_cash


def test_ppo_learns_a_planted_trend_and_is_reproducible(plant, trained_policy) -> None:
    again = training.train_policy([plant], ppo.PPOConfig(**FAST), window=8, until_ms=int(plant.time[4000]),
                                  costs=COSTS)
    assert again.sha256 == trained_policy.sha256
    out = training.held_out(trained_policy, [plant], int(plant.time[4000]), None, COSTS)["PLANT/USDT"]
    # bars it never saw: riding 48-bar trends after costs beats cash and buy-and-hold by far
    assert out["policy"] > 0.5 and out["policy"] > out["buy_and_hold"] + 0.5, out
    assert 0.2 < out["time_in_market"] < 0.8


def test_the_onnx_policy_and_jax_choose_the_same_actions(plant, trained_policy) -> None:
    s = training.observe(plant, 8, None)
    m = from_bytes(trained_policy.onnx, "policy", ModelReference(uri="x", features="bars-v1"), "policy")
    onnx_actions = m.run(s.obs)
    r = trained_policy.result
    jax_actions = np.asarray(env.ACTIONS["spot"])[ppo.greedy(r.policy, r.x_mean, r.x_std, s.obs)]
    assert np.array_equal(onnx_actions, jax_actions)
    assert set(np.unique(onnx_actions)) == {0.0, 1.0}


def test_a_policy_goes_through_the_same_gates(plant, eth_1h, trained_policy, clean_indicators) -> None:
    m = bind_policy(from_bytes(trained_policy.onnx, "policy", ModelReference(uri="x"), "policy"), None)
    genome = policy_genome()
    # three windows of 600 bars, all after the policy's last training bar (4000)
    wf = WalkForwardConfig(windows=3, oos_bars=600, is_bars=200, benchmark="buyAndHold")
    cfg = EvolveConfig(costs=COSTS)
    trials = len(trained_policy.result.checkpoints)
    res = evaluate(genome, [plant.slice(3900, len(plant))], cfg, wf, trials=trials, pbo=0.0)
    [ev] = res.evidence.values()
    verdict = paper_gate(ev, SelectionGates(benchmark="buyAndHold"))
    assert verdict.passed, verdict.failures
    # on real ETH bars the same policy has no edge: the same gates refuse it
    m._cache.clear()
    real = evaluate(genome, [eth_1h.slice(3900, len(eth_1h))], cfg, wf, trials=trials, pbo=0.0)
    [ev_real] = real.evidence.values()
    assert not paper_gate(ev_real, SelectionGates(benchmark="buyAndHold")).passed
    # and the backtester trades it from the indicator exactly as the rollout does
    bt = backtest(genome, plant.slice(4000, 4600), COSTS)
    series = policy_series(m, None, *(getattr(plant.slice(4000, 4600), f)
                                      for f in ("open", "high", "low", "close", "volume")))
    changes = int(np.sum(np.abs(np.diff(np.nan_to_num(series))) > 0))
    assert abs(len(bt.trades) * 2 - changes) <= 2
