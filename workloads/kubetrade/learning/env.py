"""A gymnasium environment over the backtest kernel: observe the market, choose a target position.

* **observation**: :func:`kubetrade.prediction.features.policy_observations` of the bar - the last
  ``window`` bars' features, RSI(14) and the close against its SMA(50) and, for an agent given a
  predictor, the prediction;
* **action**: the target position, ``Discrete(2)`` on spot (flat, long) or ``Discrete(3)`` on a
  perpetual (short, flat, long);
* **step**: the backtest kernel itself (:func:`kubetrade.engine.backtest.simulate`) runs the bar with
  :func:`kubetrade.prediction.model.policy_genome`, the genome a trained policy trades through - the
  same fills at the close, fees and slippage as every backtest and the live runner;
* **reward**: the log change of equity from before this bar's fill to the next close (so the fee of
  a change of position is charged to the action that made it), minus ``risk_aversion`` times its
  square (a variance penalty: a risk-adjusted return), times ``reward_scale``.

:func:`rollout` computes the same rewards for a whole segment of actions in one compiled loop over
the same kernel (what PPO trains on); ``tests/learning`` checks that stepping the environment gives
the very same rewards.  The observation does not contain the position held: it is a function of the
market alone, which is what lets a trained policy run as an indicator (batch over a history in a
backtest, one row per bar live).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import gymnasium as gym
import numpy as np
from numba import njit

from kubetrade.candles import Candles
from kubetrade.engine import backtest as bt
from kubetrade.engine import codes
from kubetrade.engine.compile import compile_genomes
from kubetrade.engine.runs import Costs
from kubetrade.prediction.model import policy_genome

COSTS = Costs(fee=0.001, slippage=0.0002)
"""The evolution's costs: 0.1 % fee per side, 0.02 % slippage."""
ACTIONS = {"spot": (0.0, 1.0), "perpetual": (-1.0, 0.0, 1.0)}


@functools.cache
def tables(market: str) -> tuple[Any, ...]:
    """The policy genome's kernel tables (rules, consts, nrules, combine, risk, direction), reading the
    action from row 0 of the feature matrix.  Compiled with a stand-in for the ``policy`` indicator (any
    registered one: only the row it is given matters), so no policy need be loaded to train one."""
    plan, program = compile_genomes([policy_genome(market, indicator="obv")],
                                    market="perpetual" if market == "perpetual" else "spot")
    assert len(plan.keys) == 1
    return program.take(0)


@njit(cache=True)
def rollout(actions, o, h, lo, c, rules, consts, nrules, combine, risk, direction,  # type: ignore[no-untyped-def]
            fee, slip, init_cash, start, risk_aversion, reward_scale):
    """Rewards of target positions ``actions[k]`` at bars ``start + k`` (each bar's next close must exist).

    Steps the backtest kernel bar by bar from a flat ``init_cash``; returns (rewards, equity after each
    next close).
    """
    n = actions.shape[0]
    F = np.full((1, c.shape[0]), np.nan)
    state = bt.new_state(init_cash)
    acc = np.zeros(bt.ACC_SIZE)
    no_eq = np.empty(0)
    no_tr = np.empty((0, bt.TRADE_SIZE))
    no_seg = np.empty(0, dtype=np.int64)
    no_seg_out = np.empty((0, bt.SEG_SIZE))
    rewards = np.empty(n)
    equity = np.empty(n)
    before = init_cash
    for k in range(n):
        i = start + k
        F[0, i] = actions[k]
        bt.simulate(F, o, h, lo, c, rules, consts, nrules, combine, risk, direction, fee, slip, state, i, i + 1,
                    acc, no_eq, no_tr, no_seg, no_seg_out)
        after = state[codes.S_CASH] + state[codes.S_SIDE] * state[codes.S_QTY] * c[i + 1]
        r = np.log(after / before) if after > 0 and before > 0 else -1.0
        rewards[k] = (r - risk_aversion * r * r) * reward_scale
        equity[k] = after
        before = after
    return rewards, equity


class TradingEnv(gym.Env):
    """One candle set; an episode is ``episode_bars`` bars from a start drawn in [lo, hi)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, candles: Candles, observations: np.ndarray, bars: np.ndarray, *, market: str = "spot",
                 costs: Costs = COSTS, episode_bars: int = 256,
                 risk_aversion: float = 1.0, reward_scale: float = 100.0, lo: int | None = None,
                 hi: int | None = None) -> None:
        if market not in ACTIONS:
            raise ValueError(f"market {market!r}: spot or perpetual")
        self.c, self.obs, self.bars = candles, np.asarray(observations, np.float32), np.asarray(bars, np.int64)
        if len(self.obs) != len(self.bars) or not len(self.bars):
            raise ValueError("one observation per bar is needed, and at least one")
        self.market, self.costs, self.episode_bars = market, costs, episode_bars
        self.risk_aversion, self.reward_scale = risk_aversion, reward_scale
        self.values = np.asarray(ACTIONS[market])
        self.action_space = gym.spaces.Discrete(len(self.values))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.obs.shape[1],), np.float32)
        self._tables = tables(market)
        last = int(np.searchsorted(self.bars, len(candles) - 1))  # rows whose next close exists
        self.lo = 0 if lo is None else lo
        self.hi = min(last, len(self.bars) if hi is None else hi)
        if self.hi - self.lo < 2:
            raise ValueError(f"rows [{self.lo}, {self.hi}) leave no bar to trade")
        self._F = np.full((1, len(candles)), np.nan)
        self._acc = np.zeros(bt.ACC_SIZE)
        self._empty = (np.empty(0), np.empty((0, bt.TRADE_SIZE)), np.empty(0, np.int64), np.empty((0, bt.SEG_SIZE)))
        self.row = self.end = 0
        self.state = bt.new_state(costs.init_cash)
        self.equity = costs.init_cash

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None,
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        span = min(self.episode_bars, self.hi - self.lo)
        start = (options or {}).get("row")
        if start is None:
            start = int(self.np_random.integers(self.lo, self.hi - span + 1))
        self.row, self.end = int(start), int(start) + span
        self.state = bt.new_state(self.costs.init_cash)
        self.equity = self.costs.init_cash
        self._F[:] = np.nan
        return self.obs[self.row].copy(), {"bar": int(self.bars[self.row])}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        i = int(self.bars[self.row])
        c = self.c
        self._F[0, i] = self.values[int(action)]
        simulate: Any = bt.simulate
        simulate(self._F, c.open, c.high, c.low, c.close, *self._tables, self.costs.fee, self.costs.slippage,
                 self.state, i, i + 1, self._acc, *self._empty)
        after = float(self.state[codes.S_CASH] + self.state[codes.S_SIDE] * self.state[codes.S_QTY] * c.close[i + 1])
        r = math.log(after / self.equity) if after > 0 and self.equity > 0 else -1.0
        reward = (r - self.risk_aversion * r * r) * self.reward_scale
        self.equity = after
        self.row += 1
        done = self.row >= self.end
        obs = self.obs[min(self.row, len(self.obs) - 1)].copy()
        return obs, reward, done, False, {"bar": i, "equity": after, "position": int(self.state[codes.S_SIDE])}
