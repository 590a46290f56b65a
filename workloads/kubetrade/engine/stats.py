"""Selection statistics: the deflated Sharpe ratio and the probability of backtest overfitting.

Both answer the question a search that tries thousands of genomes must ask of its winner:
is this result better than what the best of that many tries would show by luck?

* **Deflated Sharpe ratio** (Bailey & López de Prado, "The Deflated Sharpe Ratio: Correcting
  for Selection Bias, Backtest Overfitting and Non-Normality", JPM 2014): the probabilistic
  Sharpe ratio of the observed returns against the Sharpe ratio that the best of ``N``
  unskilled trials is expected to reach, ``SR0 = sqrt(V) * ((1 - g) Z^-1(1 - 1/N) +
  g Z^-1(1 - 1/(N e)))``, where ``V`` is the variance of the trials' Sharpe ratios and ``g``
  the Euler-Mascheroni constant.  The PSR corrects for the sample length, skew and (non-excess)
  kurtosis: ``PSR = Z((SR - SR0) sqrt(T - 1) / sqrt(1 - skew SR + (kurt - 1) / 4 SR^2))``.
  Sharpe ratios here are per observation (per bar), never annualised.
* **Probability of backtest overfitting** by combinatorially symmetric cross-validation
  (Bailey, Borwein, López de Prado & Zhu, "The Probability of Backtest Overfitting", J. of
  Computational Finance 2017): the bars are cut into ``S`` equal blocks; for every way of
  choosing ``S/2`` of them as the in-sample half, the trial with the best in-sample Sharpe
  is ranked among all trials on the other half; ``PBO`` is the share of those splits in which
  it ranks at or below the median (logit of its relative rank ``<= 0``).

Everything here is a pure function of arrays: the engine feeds it the kernel's running
sums (:class:`Moments` pool exactly, so per-window sums give the pooled figures).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
from numba import njit, prange

EULER_GAMMA = 0.5772156649015329
_Z = NormalDist()
FloatArray = npt.NDArray[np.float64]


class StatsError(ValueError):
    """Input the statistics cannot be computed from; the message names the values."""


@dataclass(frozen=True)
class Moments:
    """Sums of a series of per-bar returns: ``n`` observations, ``s1 = sum r`` ... ``s4 = sum r^4``.

    Sums add, so the moments of several windows pooled are the sum of their moments.
    """

    n: int = 0
    s1: float = 0.0
    s2: float = 0.0
    s3: float = 0.0
    s4: float = 0.0

    @classmethod
    def of(cls, returns: Sequence[float] | FloatArray) -> Moments:
        r = np.asarray(returns, dtype=float)
        return cls(int(r.size), float(r.sum()), float((r**2).sum()), float((r**3).sum()), float((r**4).sum()))

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.n + other.n, self.s1 + other.s1, self.s2 + other.s2, self.s3 + other.s3,
                       self.s4 + other.s4)

    @property
    def mean(self) -> float:
        return self.s1 / self.n if self.n else 0.0

    @property
    def sd(self) -> float:
        """Population standard deviation (the moments' own, as the papers use)."""
        if not self.n:
            return 0.0
        m = self.mean
        return math.sqrt(max(self.s2 / self.n - m * m, 0.0))

    @property
    def sharpe(self) -> float:
        """Per-observation Sharpe ratio (mean over standard deviation); 0 for a constant series."""
        sd = self.sd
        return self.mean / sd if sd > 1e-15 else 0.0

    @property
    def skew(self) -> float:
        sd = self.sd
        if sd <= 1e-15:
            return 0.0
        n, m = self.n, self.mean
        m3 = self.s3 / n - 3 * m * self.s2 / n + 2 * m**3
        return m3 / sd**3

    @property
    def kurtosis(self) -> float:
        """Non-excess kurtosis (3 for a normal distribution)."""
        sd = self.sd
        if sd <= 1e-15:
            return 3.0
        n, m = self.n, self.mean
        m4 = self.s4 / n - 4 * m * self.s3 / n + 6 * m**2 * self.s2 / n - 3 * m**4
        return m4 / sd**4


def probabilistic_sharpe(sharpe: float, observations: int, skew: float, kurtosis: float,
                         benchmark: float = 0.0) -> float:
    """Probability that the true per-bar Sharpe ratio exceeds ``benchmark`` (Bailey & López de Prado 2012)."""
    if observations < 2:
        raise StatsError(f"a probabilistic Sharpe ratio needs at least 2 returns, got {observations}")
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if denom <= 0:
        # the moments are too extreme for the normal approximation (tiny samples): no evidence either way
        return 0.0
    return _Z.cdf((sharpe - benchmark) * math.sqrt(observations - 1) / math.sqrt(denom))


def expected_max_sharpe(trials: int, variance: float) -> float:
    """The Sharpe ratio the best of ``trials`` unskilled tries reaches by luck (the DSR's ``SR0``).

    ``variance`` is the variance of the trials' per-bar Sharpe ratios.  One trial has nothing
    to be lucky against: 0.
    """
    if trials < 1:
        raise StatsError(f"number of trials must be at least 1, got {trials}")
    if variance < 0 or not math.isfinite(variance):
        raise StatsError(f"variance of the trials' Sharpe ratios must be finite and >= 0, got {variance}")
    if trials == 1:
        return 0.0
    return math.sqrt(variance) * ((1 - EULER_GAMMA) * _Z.inv_cdf(1 - 1 / trials)
                                  + EULER_GAMMA * _Z.inv_cdf(1 - 1 / (trials * math.e)))


@dataclass(frozen=True)
class DeflatedSharpe:
    """The deflated Sharpe ratio and what it was computed from."""

    value: float
    """Probability that the true Sharpe exceeds what luck gives the best of the trials; >= 0.95 convinces."""
    sharpe: float
    """Observed per-bar Sharpe ratio."""
    benchmark: float
    """``SR0``: expected maximum per-bar Sharpe of ``trials`` unskilled tries."""
    trials: int
    variance: float
    observations: int
    skew: float
    kurtosis: float


def deflated_sharpe(m: Moments, trials: int, variance: float) -> DeflatedSharpe:
    """The DSR of the returns summed in ``m``, after ``trials`` tries whose Sharpe ratios vary by ``variance``."""
    sr0 = expected_max_sharpe(trials, variance)
    if m.n < 2:
        raise StatsError(f"a deflated Sharpe ratio needs at least 2 returns, got {m.n}")
    sr, skew, kurt = m.sharpe, m.skew, m.kurtosis
    return DeflatedSharpe(probabilistic_sharpe(sr, m.n, skew, kurt, sr0), sr, sr0, trials, variance, m.n, skew, kurt)


# --- probability of backtest overfitting (CSCV) --------------------------------------------


@dataclass(frozen=True)
class Overfitting:
    """The outcome of combinatorially symmetric cross-validation."""

    pbo: float
    """Share of the splits whose in-sample best ranks at or below the median out of sample."""
    logits: FloatArray
    """``ln(w / (1 - w))`` of the in-sample best's relative out-of-sample rank ``w``, one per split."""
    blocks: int
    trials: int

    @property
    def splits(self) -> int:
        return int(self.logits.size)


def pbo_from_blocks(n: FloatArray, s1: FloatArray, s2: FloatArray) -> Overfitting:
    """PBO from per-block sums: ``n``, ``s1 = sum r``, ``s2 = sum r^2``, each (blocks, trials).

    The performance statistic is the per-bar Sharpe ratio of the blocks pooled.  Ties in the
    out-of-sample ranking share their average rank.  Each split and its complement are
    computed together, in one parallel numba pass (one's in-sample half is the other's
    out-of-sample half, whose sums are the totals less the in-sample ones).
    """
    n, s1, s2 = (np.asarray(a, dtype=float) for a in (n, s1, s2))
    if n.ndim != 2 or n.shape != s1.shape or n.shape != s2.shape:
        raise StatsError(f"block sums must be three arrays of one shape (blocks, trials), got "
                         f"{n.shape}, {s1.shape}, {s2.shape}")
    blocks, trials = n.shape
    if blocks < 2 or blocks % 2:
        raise StatsError(f"CSCV needs an even number of blocks >= 2, got {blocks}")
    if trials < 2:
        raise StatsError(f"CSCV ranks trials against each other: it needs at least 2, got {trials}")
    if (n.sum(axis=1) <= 0).any():
        raise StatsError("every block must hold at least one return")
    splits = list(itertools.combinations(range(blocks), blocks // 2))
    index = {c: i for i, c in enumerate(splits)}
    everything = frozenset(range(blocks))
    firsts = [i for i, c in enumerate(splits) if 0 in c]  # one of each complementary pair
    partners = [index[tuple(sorted(everything - set(splits[i])))] for i in firsts]
    members = np.array([splits[i] for i in firsts], dtype=np.int64)
    out_a, out_b = _cscv_pairs(np.ascontiguousarray(n.T), np.ascontiguousarray(s1.T), np.ascontiguousarray(s2.T),
                               members)
    logits = np.empty(len(splits))
    logits[firsts] = out_a
    logits[partners] = out_b
    return Overfitting(float((logits <= 0).mean()), logits, blocks, trials)


@njit(cache=True)
def _sharpe(n, s1, s2):  # type: ignore[no-untyped-def]
    if n <= 0:
        return 0.0
    mean = s1 / n
    var = s2 / n - mean * mean
    if var <= 0:
        return 0.0
    sd = np.sqrt(var)
    return mean / sd if sd > 1e-15 else 0.0


@njit(cache=True)
def _logit(sr_is, sr_oos):  # type: ignore[no-untyped-def]
    """The logit of the in-sample best's average relative rank out of sample."""
    trials = sr_is.shape[0]
    best = 0
    for j in range(1, trials):
        if sr_is[j] > sr_is[best]:
            best = j
    chosen = sr_oos[best]
    below = 0
    ties = 0
    for j in range(trials):
        if sr_oos[j] < chosen:
            below += 1
        elif sr_oos[j] == chosen:
            ties += 1
    w = (below + (ties + 1) / 2.0) / (trials + 1)
    return np.log(w / (1.0 - w))


@njit(cache=True, parallel=True)
def _cscv_pairs(n, s1, s2, members):  # type: ignore[no-untyped-def]
    """Logits of each split in ``members`` (rows of block indices) and of its complement.

    ``n``, ``s1``, ``s2`` are (trials, blocks).  One pass per pair of splits: the in-sample
    sums of one are the out-of-sample sums of the other (totals less them).
    """
    pairs = members.shape[0]
    trials = n.shape[0]
    out_a = np.empty(pairs)
    out_b = np.empty(pairs)
    tn = n.sum(axis=1)
    t1 = s1.sum(axis=1)
    t2 = s2.sum(axis=1)
    for p in prange(pairs):
        sr_a = np.empty(trials)
        sr_b = np.empty(trials)
        for j in range(trials):
            an = 0.0
            a1 = 0.0
            a2 = 0.0
            for b in members[p]:
                an += n[j, b]
                a1 += s1[j, b]
                a2 += s2[j, b]
            sr_a[j] = _sharpe(an, a1, a2)
            sr_b[j] = _sharpe(tn[j] - an, t1[j] - a1, t2[j] - a2)
        out_a[p] = _logit(sr_a, sr_b)
        out_b[p] = _logit(sr_b, sr_a)
    return out_a, out_b


def block_sums(returns: FloatArray, blocks: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Cut a (bars, trials) return matrix into ``blocks`` equal row blocks (the remainder dropped from the start)."""
    r = np.asarray(returns, dtype=float)
    if r.ndim != 2:
        raise StatsError(f"returns must be a (bars, trials) matrix, got shape {r.shape}")
    size = r.shape[0] // blocks
    if size < 1:
        raise StatsError(f"{r.shape[0]} bars cannot be cut into {blocks} blocks")
    r = r[r.shape[0] - size * blocks:].reshape(blocks, size, r.shape[1])
    return np.full((blocks, r.shape[2]), float(size)), r.sum(axis=1), (r**2).sum(axis=1)


def pbo(returns: FloatArray, blocks: int = 16) -> Overfitting:
    """PBO of a (bars, trials) matrix of per-bar returns, cut into ``blocks`` blocks."""
    return pbo_from_blocks(*block_sums(returns, blocks))
