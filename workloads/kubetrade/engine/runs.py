"""The Python face of the backtester: genomes and candles in, metrics, equity and trades out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from kubetrade.candles import Candles, FloatArray
from kubetrade.engine import backtest as bt
from kubetrade.engine import codes
from kubetrade.engine.altdata import AltData
from kubetrade.engine.compile import FeaturePlan, Market, Program, SeriesKey, build_features, compile_genomes
from kubetrade.engine.performance import Metrics, from_accumulators
from kubetrade.resources.genome import Genome


@dataclass(frozen=True)
class Costs:
    """Trading costs as fractions of notional: ``fee`` per side, ``slippage`` against the trader."""

    fee: float = 0.001
    slippage: float = 0.0
    init_cash: float = 10_000.0

    def __post_init__(self) -> None:
        if not 0 <= self.fee < 0.5:
            raise ValueError(f"fee {self.fee} must be a fraction in [0, 0.5)")
        if not 0 <= self.slippage < 0.5:
            raise ValueError(f"slippage {self.slippage} must be a fraction in [0, 0.5)")
        if not self.init_cash > 0:
            raise ValueError(f"initial cash {self.init_cash} must be positive")


@dataclass(frozen=True)
class Trade:
    entry_bar: int
    exit_bar: int
    side: int
    qty: float
    entry_price: float
    exit_price: float
    pnl: float
    reason: str


@dataclass
class Result:
    metrics: Metrics
    equity: FloatArray
    trades: list[Trade] = field(default_factory=list)
    """Closed trades."""
    open_trade: Trade | None = None
    """The position still open after the last bar, marked at its close (reason ``open``); its ``pnl`` is
    the equity change since it was opened, so closed PnL + open PnL = final equity - initial cash."""


def _bounds(candles: Candles, start: int | None, end: int | None) -> tuple[int, int]:
    n = len(candles)
    s = 0 if start is None else start
    e = n if end is None else end
    if not 0 <= s < e <= n:
        raise ValueError(f"bar range [{s}, {e}) is not inside the {n} bars of {candles.label}")
    return s, e


def run_program(
    plan: FeaturePlan, program: Program, candles: Candles, costs: Costs = Costs(), *,
    start: int | None = None, end: int | None = None, features: FloatArray | None = None,
    cache: dict[SeriesKey, FloatArray] | None = None, alt: AltData | None = None,
) -> list[Metrics]:
    """Metrics of every compiled strategy over bars [start, end): one parallel kernel call."""
    return run_program_segments(plan, program, candles, costs, start=start, end=end, features=features,
                                cache=cache, alt=alt)[0]


def run_program_segments(
    plan: FeaturePlan, program: Program, candles: Candles, costs: Costs = Costs(), *,
    start: int | None = None, end: int | None = None, features: FloatArray | None = None,
    cache: dict[SeriesKey, FloatArray] | None = None, segments: Sequence[int] = (), alt: AltData | None = None,
) -> tuple[list[Metrics], npt.NDArray[np.float64]]:
    """:func:`run_program`, plus per-strategy return sums of the segments ending at ``segments``.

    ``segments`` are ascending bar indices inside (start, end], the last one ``end``; the
    second result is (strategies, segments, 3): count, sum and sum of squares of the per-bar
    returns in each (see :data:`kubetrade.engine.backtest.G_N`).
    """
    s, e = _bounds(candles, start, end)
    seg_ends = np.asarray(segments, dtype=np.int64)
    if seg_ends.size and (seg_ends[-1] != e or (np.diff(seg_ends) <= 0).any() or seg_ends[0] <= s):
        raise ValueError(f"segment ends {seg_ends.tolist()} must rise strictly inside ({s}, {e}] and end at {e}")
    F = features if features is not None else build_features(plan, candles, cache, alt)
    acc, segs = bt.run_batch(F, candles.open, candles.high, candles.low, candles.close, program.rules,
                             program.consts, program.nrules, program.combine, program.risk, program.direction,
                             costs.fee, costs.slippage, costs.init_cash, s, e, seg_ends)
    return [from_accumulators(row, costs.init_cash, candles.bars_per_year) for row in acc], segs


def backtest_many(
    genomes: Sequence[Genome], candles: Candles, costs: Costs = Costs(), *, market: Market = "spot",
    start: int | None = None, end: int | None = None, alt: AltData | None = None,
) -> list[Metrics]:
    plan, program = compile_genomes(genomes, market=market)
    return run_program(plan, program, candles, costs, start=start, end=end, alt=alt)


def backtest(
    genome: Genome, candles: Candles, costs: Costs = Costs(), *, market: Market = "spot",
    start: int | None = None, end: int | None = None, max_trades: int = 1_000_000, alt: AltData | None = None,
) -> Result:
    """One strategy with its equity curve (per bar, from ``start``) and its trade list."""
    s, e = _bounds(candles, start, end)
    plan, program = compile_genomes([genome], market=market)
    F = build_features(plan, candles, alt=alt)
    acc = np.zeros(bt.ACC_SIZE)
    equity = np.empty(e - s)
    trades = np.empty((min(max_trades, e - s + 1), bt.TRADE_SIZE))
    simulate: Any = bt.simulate  # a numba dispatcher: its signature is the kernel's
    state = bt.new_state(costs.init_cash)
    n = simulate(F, candles.open, candles.high, candles.low, candles.close, *program.take(0),
                 costs.fee, costs.slippage, state, s, e, acc, equity, trades,
                 np.empty(0, dtype=np.int64), np.empty((0, bt.SEG_SIZE)))
    open_trade = None
    if state[codes.S_SIDE] != 0 and e > s:
        open_trade = Trade(int(state[codes.S_ENTRY_BAR]), e - 1, int(state[codes.S_SIDE]), float(state[codes.S_QTY]),
                           float(state[codes.S_ENTRY_PX]), float(candles.close[e - 1]),
                           float(equity[-1] - state[codes.S_CASH_BEFORE]), "open")
    return Result(
        from_accumulators(acc, costs.init_cash, candles.bars_per_year),
        equity,
        [Trade(int(t[0]), int(t[1]), int(t[2]), t[3], t[4], t[5], t[6], codes.EXIT_REASONS[int(t[7])])
         for t in trades[:n]],
        open_trade,
    )
