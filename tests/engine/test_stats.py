"""The selection statistics against the papers' worked example and against independent implementations.

* Deflated Sharpe ratio: the numerical example of Bailey & López de Prado (2014, section
  "A numerical example": N = 100 trials, V[SR] = 1/2 annualised, T = 1250 daily returns,
  annualised SR 2.5, skew -3, kurtosis 10 -> SR0 = 0.1132 per day, DSR = 0.9004); the
  expected maximum against a Monte Carlo of the maximum of N normals (the paper's
  approximation runs 3.5 % high at N = 10, under 1 % from N = 100); the probabilistic
  Sharpe ratio's calibration under the null (5 % of unskilled series pass at 0.95).
* PBO: a two-trial case worked by hand, and a brute-force implementation written
  differently (every split enumerated on the raw return rows, Sharpe by numpy's mean/std,
  ranks by scipy's rankdata) that must give the very same logits.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from kubetrade.engine.stats import (
    Moments,
    StatsError,
    block_sums,
    deflated_sharpe,
    expected_max_sharpe,
    pbo,
    pbo_from_blocks,
    probabilistic_sharpe,
)


def test_deflated_sharpe_matches_the_papers_numerical_example() -> None:
    sr0 = expected_max_sharpe(100, 0.5 / 250)  # V[SR] = 1/2 annualised, per day: / 250
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = probabilistic_sharpe(2.5 / math.sqrt(250), 1250, -3.0, 10.0, sr0)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_expected_max_sharpe_is_the_mean_maximum_of_n_unskilled_trials() -> None:
    rng = np.random.default_rng(7)
    for n, sd in ((10, 0.05), (100, 0.02), (1000, 0.01)):
        maxima = (rng.standard_normal((4000, n)) * sd).max(axis=1)
        assert expected_max_sharpe(n, sd * sd) == pytest.approx(maxima.mean(), rel=0.04), n
    assert expected_max_sharpe(1, 0.3) == 0.0
    assert expected_max_sharpe(5000, 0.0) == 0.0


def test_probabilistic_sharpe_is_calibrated_under_the_null() -> None:
    rng = np.random.default_rng(11)
    passed = 0
    reps = 4000
    for _ in range(reps):
        m = Moments.of(rng.standard_t(6, 500) * 0.01)  # fat tails, no skill
        passed += probabilistic_sharpe(m.sharpe, m.n, m.skew, m.kurtosis, 0.0) > 0.95
    assert passed / reps == pytest.approx(0.05, abs=0.012)


def test_moments_agree_with_scipy_and_pool_exactly() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.standard_t(5, 700) * 0.01 + 0.0003, rng.standard_normal(300) * 0.02
    both = np.concatenate([a, b])
    m = Moments.of(a) + Moments.of(b)
    assert m.n == both.size
    assert m.mean == pytest.approx(both.mean())
    assert m.sd == pytest.approx(both.std())
    assert m.skew == pytest.approx(sps.skew(both), rel=1e-6)
    assert m.kurtosis == pytest.approx(sps.kurtosis(both, fisher=False), rel=1e-6)
    d = deflated_sharpe(m, 1, 0.0)  # one trial: the DSR is the PSR against zero
    z = m.sharpe * math.sqrt(m.n - 1) / math.sqrt(1 - m.skew * m.sharpe + (m.kurtosis - 1) / 4 * m.sharpe**2)
    assert d.value == pytest.approx(sps.norm.cdf(z))


def test_more_trials_deflate_more() -> None:
    rng = np.random.default_rng(5)
    m = Moments.of(rng.standard_normal(2000) * 0.01 + 0.0008)
    values = [deflated_sharpe(m, n, 0.03**2).value for n in (1, 10, 100, 10_000)]
    assert values == sorted(values, reverse=True) and values[0] > 0.99 > 0.5 > values[-1]


def test_bad_input_is_named() -> None:
    with pytest.raises(StatsError, match="at least 1, got 0"):
        expected_max_sharpe(0, 0.1)
    with pytest.raises(StatsError, match=r"got -0\.1"):
        expected_max_sharpe(10, -0.1)
    with pytest.raises(StatsError, match="at least 2 returns, got 1"):
        deflated_sharpe(Moments.of([0.01]), 10, 0.01)
    with pytest.raises(StatsError, match="even number of blocks >= 2, got 3"):
        pbo(np.zeros((30, 4)), blocks=3)
    with pytest.raises(StatsError, match="at least 2, got 1"):
        pbo(np.zeros((30, 1)), blocks=2)
    with pytest.raises(StatsError, match="5 bars cannot be cut into 16 blocks"):
        pbo(np.zeros((5, 3)), blocks=16)


def test_pbo_by_hand_two_trials() -> None:
    # A earns in the first half and loses in the second; B the other way round.  Whichever
    # wins in sample loses out of sample: overfitting every time.
    up, down = [0.01, 0.02, 0.015], [-0.01, -0.02, -0.015]
    a = np.array(up + down)
    b = np.array(down + up)
    res = pbo(np.column_stack([a, b]), blocks=2)
    assert res.splits == 2 and res.pbo == 1.0
    # w = rank 1 of 2 / (2 + 1): logit ln(1/2)
    assert np.allclose(res.logits, math.log((1 / 3) / (2 / 3)))
    # A earns in both halves, B loses in both: the in-sample best is the out-of-sample best
    good = pbo(np.column_stack([np.array(up + up), np.array(down + down)]), blocks=2)
    assert good.pbo == 0.0 and np.allclose(good.logits, math.log((2 / 3) / (1 / 3)))


def _brute_force_logits(returns: np.ndarray, blocks: int) -> list[float]:
    """CSCV written out: every split, the rows themselves, numpy's Sharpe, scipy's average ranks."""
    t, n = returns.shape
    size = t // blocks
    rows = returns[t - size * blocks:]
    parts = [rows[k * size:(k + 1) * size] for k in range(blocks)]
    out = []
    for chosen in itertools.combinations(range(blocks), blocks // 2):
        train = np.vstack([parts[k] for k in chosen])
        test = np.vstack([parts[k] for k in range(blocks) if k not in chosen])
        sr_train = [train[:, j].mean() / train[:, j].std() if train[:, j].std() > 0 else 0.0 for j in range(n)]
        sr_test = [test[:, j].mean() / test[:, j].std() if test[:, j].std() > 0 else 0.0 for j in range(n)]
        best = int(np.argmax(sr_train))
        rank = sps.rankdata(sr_test)[best]  # average ranks for ties
        w = rank / (n + 1)
        out.append(math.log(w / (1 - w)))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pbo_equals_a_brute_force_cscv(seed: int) -> None:
    rng = np.random.default_rng(seed)
    r = rng.standard_normal((243, 9)) * 0.01
    r[:, 4] += 0.002 * seed  # one trial with some edge
    r[:, 7] = r[:, 6]  # two identical trials: ties
    r[:, 8] = 0.0  # one that never trades
    res = pbo(r, blocks=8)
    expected = _brute_force_logits(r, 8)
    assert res.splits == math.comb(8, 4)
    assert np.allclose(res.logits, expected)
    assert res.pbo == pytest.approx(np.mean(np.array(expected) <= 0))


def test_pbo_of_noise_is_a_coin_flip_and_of_a_real_edge_near_zero() -> None:
    rng = np.random.default_rng(17)
    noise = [pbo(rng.standard_normal((1600, 40)) * 0.01, blocks=10).pbo for _ in range(20)]
    assert 0.35 < float(np.mean(noise)) < 0.65
    r = rng.standard_normal((1600, 40)) * 0.01
    r[:, 0] += 0.003  # a per-bar Sharpe of 0.3: a real edge
    assert pbo(r, blocks=10).pbo < 0.05


def test_block_sums_pool_the_rows() -> None:
    r = np.arange(20.0).reshape(10, 2)
    n, s1, s2 = block_sums(r, 2)
    assert n.tolist() == [[5, 5], [5, 5]]
    assert s1[:, 0].tolist() == [sum(r[:5, 0]), sum(r[5:, 0])]
    assert s2[1, 1] == pytest.approx(float((r[5:, 1] ** 2).sum()))
    res = pbo_from_blocks(n, s1, s2)
    assert res.blocks == 2 and res.trials == 2
