"""The backtest kernel: one bar loop shared by the backtester and the live signal function.

Execution model (the contract a quant needs to know):

* Signals are evaluated on the **close** of each bar and filled at that bar's **close**,
  moved against the trader by ``slippage`` (a fraction); fees are a fraction of notional
  per side.  This is what the live runner does too: it decides when a candle closes and
  sends the order right away.
* Stops are evaluated inside each later bar in a conservative order: first the open (a
  gap through a stop fills at the open, a gap through the take-profit too), then the
  stop-loss / trailing stop (whichever level is nearer the price), then the take-profit;
  when one bar touches both a stop and the take-profit, the stop wins.  The trailing
  stop's reference (the best price since entry) is raised by the open before the check
  and by the bar's high/low only after it, so a bar never lifts its own stop.  A bar
  that stopped a position out does not re-enter it.
* Sizing: a position uses ``position_pct`` of current equity, fees included; long/short
  positions are linear (perpetual-style): equity = cash + signed quantity * price.
  Perpetual funding payments and liquidation are not modelled (no leverage above 1).
* Long while flat: entry rules; while long: exit rules close it, and (direction ``both``)
  short-entry rules reverse it.  Entry and short-entry firing together means no trade.

Genomes arrive compiled (:mod:`kubetrade.engine.compile`) as integer/float tables, so one
parallel pass (``prange`` over strategies) shares the feature matrix ``F`` (every distinct
indicator output, computed once) between all strategies.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from kubetrade.engine import stoprule
from kubetrade.engine.codes import (  # noqa: F401 - re-exported for the kernels and their callers
    BOTH,
    ENTRY,
    EXIT,
    EXIT_REASONS,
    EXIT_REVERSE,
    EXIT_SIGNAL,
    EXIT_STOP_LOSS,
    EXIT_TAKE_PROFIT,
    EXIT_TRAILING,
    GE,
    GT,
    LE,
    LEFT,
    LONG,
    LT,
    NO_EXIT,
    OP,
    POSITION,
    RIGHT,
    S_CASH,
    S_CASH_BEFORE,
    S_ENTRY_BAR,
    S_ENTRY_PX,
    S_EXTREME,
    S_LAST_ENTRY_PX,
    S_LAST_EXIT_PX,
    S_LAST_OPENED,
    S_LAST_REASON,
    S_LAST_STOP,
    S_LAST_TARGET,
    S_QTY,
    S_SIDE,
    SHORT,
    SHORT_ENTRY,
    SHORT_EXIT,
    STATE_SIZE,
    STOP_LOSS,
    TAKE_PROFIT,
    TRAILING,
    XABOVE,
    XBELOW,
)

# the state vector (S_*; S_LAST_STOP / S_LAST_TARGET: the levels a stop exit on the last bar was filled
# against, NaN if none) and the exit reasons: kubetrade.engine.codes, imported above
# accumulator columns returned per strategy (derived metrics in kubetrade.engine.performance)
(A_FINAL, A_NRET, A_SUM, A_SUM2, A_SUM3, A_SUM4, A_DOWN2, A_MAXDD, A_TRADES, A_WINS, A_GROSS_WIN,
 A_GROSS_LOSS, A_BARS_IN) = range(13)
ACC_SIZE = 13
# trade record columns
T_ENTRY_BAR, T_EXIT_BAR, T_SIDE, T_QTY, T_ENTRY_PX, T_EXIT_PX, T_PNL, T_REASON = range(8)
TRADE_SIZE = 8
# per-segment sums of the per-bar returns (walk-forward blocks, PBO): count, sum, sum of squares
G_N, G_SUM, G_SUM2 = range(3)
SEG_SIZE = 3


@njit(cache=True)
def new_state(init_cash):  # type: ignore[no-untyped-def]
    """A flat strategy holding ``init_cash``."""
    state = np.zeros(STATE_SIZE)
    state[S_CASH] = init_cash
    state[S_ENTRY_BAR] = -1.0
    state[S_LAST_EXIT_PX] = np.nan
    state[S_LAST_ENTRY_PX] = np.nan
    state[S_LAST_STOP] = np.nan
    state[S_LAST_TARGET] = np.nan
    return state


_fixed_level = njit(inline="always")(stoprule.fixed_level)
_trailed_level = njit(inline="always")(stoprule.trailed_level)
_best_price = njit(inline="always")(stoprule.best_price)
_crossed = njit(inline="always")(stoprule.crossed)
_bar_fill = njit(inline="always")(stoprule.bar_fill)


@njit(cache=True)
def _stop_exit(side, entry, extreme, o, h, lo, sl, tp, ts):  # type: ignore[no-untyped-def]
    """(reason, raw fill price, stop level, target level) for a stop hit inside one bar, or (NO_EXIT, nan, ...).

    The stop level is :mod:`kubetrade.engine.stoprule`'s, as the risk manager's stop watch
    computes it; where the bar fills it is :func:`kubetrade.engine.stoprule.bar_fill`'s (the
    open's gap through the stop or the take-profit: filled at the open; then the stop's level,
    then the take-profit's), as the paper venue computes it from the same candle.
    """
    extreme = _best_price(side, extreme, o)
    stop = np.nan
    reason = NO_EXIT
    if sl > 0:
        stop = _fixed_level(side, entry, sl)
        reason = EXIT_STOP_LOSS
    if ts > 0:
        trailed = _trailed_level(side, stop if sl > 0 else (-np.inf if side > 0 else np.inf), extreme, ts)
        if trailed != stop:
            stop = trailed
            reason = EXIT_TRAILING
    # the take-profit sits ``tp`` beyond the entry in the position's favour
    target = _fixed_level(-side, entry, tp) if tp > 0 else np.nan
    kind, raw = _bar_fill(side, stop, target, o, h, lo)
    if kind == stoprule.STOP_FILL:
        return reason, raw, stop, target
    if kind == stoprule.TARGET_FILL:
        return EXIT_TAKE_PROFIT, raw, stop, target
    return NO_EXIT, np.nan, stop, target


@njit(cache=True)
def simulate(F, o, h, lo, c, rules, consts, nrules, combine, risk, direction,  # type: ignore[no-untyped-def]
             fee, slip, state, start, end, acc, equity_out, trades_out, seg_ends, seg_out):
    """Advance one strategy over bars [start, end), each bar closed; the backtester and the live runner both call this.

    ``state`` (see :func:`new_state`) carries the position between calls, so the live
    runner calling it for one bar at a time makes exactly the decisions of one call over
    the whole history.  ``acc`` receives the running sums for the metrics of this call;
    ``equity_out`` / ``trades_out`` are filled when they have rows.  ``seg_ends`` (ascending
    bar indices, the last one ``end``) cuts the call into segments ``[start, seg_ends[0])``,
    ``[seg_ends[0], seg_ends[1])`` ...; ``seg_out`` (one row each) then receives the count, sum
    and sum of squares of the per-bar returns realised in each.  Returns the number of
    trades written.  The bar logic is written out in this one loop on purpose: calls into
    other jitted functions with array arguments cost more than the logic itself.
    """
    side = int(state[S_SIDE])
    qty = state[S_QTY]
    cash = state[S_CASH]
    entry_px = state[S_ENTRY_PX]
    extreme = state[S_EXTREME]
    entry_bar = int(state[S_ENTRY_BAR])
    cash_before = state[S_CASH_BEFORE]
    sl = risk[STOP_LOSS]
    tp = risk[TAKE_PROFIT]
    ts = risk[TRAILING]
    pct = risk[POSITION]
    has_stops = sl > 0 or tp > 0 or ts > 0
    prev_eq = cash + side * qty * c[start - 1] if side != 0 and start > 0 else cash
    peak = prev_eq
    ntr = 0
    rec_eq = equity_out.shape[0] > 0
    cap = trades_out.shape[0]
    nseg = seg_ends.shape[0]
    seg = 0
    g_n = g_s1 = g_s2 = 0.0
    # running sums stay in locals (registers) and are written to ``acc`` once at the end
    nret = s1 = s2 = s3 = s4 = down2 = maxdd = wins = gross_win = gross_loss = bars_in = 0.0
    r = 0.0
    reason = NO_EXIT
    exit_px = np.nan
    opened = 0
    new_entry_px = np.nan
    last_stop = np.nan
    last_target = np.nan
    for i in range(start, end):
        while seg < nseg and i >= seg_ends[seg]:
            seg_out[seg, G_N] = g_n
            seg_out[seg, G_SUM] = g_s1
            seg_out[seg, G_SUM2] = g_s2
            g_n = g_s1 = g_s2 = 0.0
            seg += 1
        reason = NO_EXIT
        exit_px = np.nan
        opened = 0
        new_entry_px = np.nan
        last_stop = np.nan
        last_target = np.nan
        old_side = side
        stopped = False
        # 1. stops inside the bar, for a position opened on an earlier bar
        if side != 0 and has_stops and i > entry_bar:
            reason, raw, stop_level, target_level = _stop_exit(side, entry_px, extreme, o[i], h[i], lo[i], sl, tp, ts)
            if reason != NO_EXIT:
                stopped = True
                last_stop = stop_level
                last_target = target_level
                exit_px = raw * (1.0 - slip) if side > 0 else raw * (1.0 + slip)
            elif side > 0:
                extreme = max(extreme, h[i])
            else:
                extreme = min(extreme, lo[i])
        # 2. rules on the close: which two rule sets matter depends on the position
        want = 0
        if not stopped:
            if side == 0:
                k0 = ENTRY if direction != SHORT else -1
                k1 = SHORT_ENTRY if direction != LONG else -1
            elif side > 0:
                k0 = SHORT_ENTRY if direction == BOTH else -1
                k1 = EXIT
            else:
                k0 = ENTRY if direction == BOTH else -1
                k1 = SHORT_EXIT
            hit0 = False
            hit1 = False
            for slot in range(2):
                k = k0 if slot == 0 else k1
                if k < 0 or (slot == 1 and side != 0 and hit0):
                    continue
                n = nrules[k]
                if n == 0:
                    continue
                any_ = combine[k] != 0
                hit = not any_
                for r in range(n):
                    left = rules[k, r, LEFT]
                    right = rules[k, r, RIGHT]
                    op = rules[k, r, OP]
                    a = consts[k, r, 0] if left < 0 else F[left, i]
                    b = consts[k, r, 1] if right < 0 else F[right, i]
                    ok = False
                    if not (np.isnan(a) or np.isnan(b)):
                        if op == GT:
                            ok = a > b
                        elif op == LT:
                            ok = a < b
                        elif op == GE:
                            ok = a >= b
                        elif op == LE:
                            ok = a <= b
                        elif i > 0:
                            a0 = consts[k, r, 0] if left < 0 else F[left, i - 1]
                            b0 = consts[k, r, 1] if right < 0 else F[right, i - 1]
                            if not (np.isnan(a0) or np.isnan(b0)):
                                ok = (a > b and a0 <= b0) if op == XABOVE else (a < b and a0 >= b0)
                    if ok == any_:
                        hit = any_
                        break
                if slot == 0:
                    hit0 = hit
                else:
                    hit1 = hit
            if side == 0:
                if hit0 and not hit1:
                    want = 1
                elif hit1 and not hit0:
                    want = -1
            elif hit0:
                reason = EXIT_REVERSE
                want = -side
            elif hit1:
                reason = EXIT_SIGNAL
            if reason != NO_EXIT:
                exit_px = c[i] * (1.0 - slip) if side > 0 else c[i] * (1.0 + slip)
        # 3. fills: close first, then open at the same close
        if reason != NO_EXIT:
            if side > 0:
                cash += qty * exit_px * (1.0 - fee)
            else:
                cash -= qty * exit_px * (1.0 + fee)
            pnl = cash - cash_before
            if pnl > 0:
                wins += 1
                gross_win += pnl
            else:
                gross_loss -= pnl
            if ntr < cap:
                t = trades_out[ntr]
                t[T_ENTRY_BAR] = entry_bar
                t[T_EXIT_BAR] = i
                t[T_SIDE] = side
                t[T_QTY] = qty
                t[T_ENTRY_PX] = entry_px
                t[T_EXIT_PX] = exit_px
                t[T_PNL] = pnl
                t[T_REASON] = reason
            ntr += 1
            side = 0
            qty = 0.0
        if want != 0 and cash > 0:
            fill = c[i] * (1.0 + slip) if want > 0 else c[i] * (1.0 - slip)
            qty = (cash * pct / (1.0 + fee)) / fill
            cash_before = cash
            if want > 0:
                cash -= qty * fill * (1.0 + fee)
            else:
                cash += qty * fill * (1.0 - fee)
            side = want
            entry_px = fill
            extreme = c[i]
            entry_bar = i
            opened = want
            new_entry_px = fill
        # 4. mark to market and metrics; a bar spent flat without a trade changes nothing
        if side == 0 and old_side == 0 and reason == NO_EXIT:
            if rec_eq:
                equity_out[i - start] = cash
            if i > start:
                nret += 1
                g_n += 1
            continue
        eq = cash
        if side != 0:
            eq += side * qty * c[i]
            bars_in += 1
        if rec_eq:
            equity_out[i - start] = eq
        if i > start or old_side != 0:
            r = eq / prev_eq - 1.0 if prev_eq > 0 else 0.0
            r2 = r * r
            nret += 1
            g_n += 1
            g_s1 += r
            g_s2 += r2
            s1 += r
            s2 += r2
            s3 += r2 * r
            s4 += r2 * r2
            if r < 0:
                down2 += r2
        if eq > peak:
            peak = eq
        elif eq < peak * (1.0 - maxdd) and peak > 0:
            maxdd = (peak - eq) / peak
        prev_eq = eq
    while seg < nseg:
        seg_out[seg, G_N] = g_n
        seg_out[seg, G_SUM] = g_s1
        seg_out[seg, G_SUM2] = g_s2
        g_n = g_s1 = g_s2 = 0.0
        seg += 1
    state[S_SIDE] = side
    state[S_QTY] = qty
    state[S_CASH] = cash
    state[S_ENTRY_PX] = entry_px
    state[S_EXTREME] = extreme
    state[S_ENTRY_BAR] = entry_bar
    state[S_CASH_BEFORE] = cash_before
    state[S_LAST_REASON] = reason
    state[S_LAST_EXIT_PX] = exit_px
    state[S_LAST_OPENED] = opened
    state[S_LAST_ENTRY_PX] = new_entry_px
    state[S_LAST_STOP] = last_stop
    state[S_LAST_TARGET] = last_target
    acc[A_FINAL] = prev_eq
    acc[A_NRET] = nret
    acc[A_SUM] = s1
    acc[A_SUM2] = s2
    acc[A_SUM3] = s3
    acc[A_SUM4] = s4
    acc[A_DOWN2] = down2
    acc[A_MAXDD] = maxdd
    acc[A_TRADES] = ntr
    acc[A_WINS] = wins
    acc[A_GROSS_WIN] = gross_win
    acc[A_GROSS_LOSS] = gross_loss
    acc[A_BARS_IN] = bars_in
    return min(ntr, cap)


@njit(cache=True, parallel=True)
def run_batch(F, o, h, lo, c, rules, consts, nrules, combine, risk, direction,  # type: ignore[no-untyped-def]
              fee, slip, init_cash, start, end, seg_ends):
    """Every strategy of a compiled batch over the same bars, in parallel.

    Returns one accumulator row per strategy and, per strategy, one row of return sums per
    segment of ``seg_ends`` (an empty ``seg_ends``: no segments, an empty second array).
    """
    n = rules.shape[0]
    acc = np.zeros((n, ACC_SIZE))
    segs = np.zeros((n, seg_ends.shape[0], SEG_SIZE))
    no_eq = np.empty(0)
    no_tr = np.empty((0, TRADE_SIZE))
    for s in prange(n):
        simulate(F, o, h, lo, c, rules[s], consts[s], nrules[s], combine[s], risk[s], direction[s],
                 fee, slip, new_state(init_cash), start, end, acc[s], no_eq, no_tr, seg_ends, segs[s])
    return acc, segs
