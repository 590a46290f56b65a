"""A bar's signal -> the orders the runner asks the risk manager for (pure).

The live signal function (:class:`kubetrade.engine.stream.StreamSignal`) says what the
backtester would do on this bar; this module turns that into order *intents* against what
the strategy actually holds (the executor's fills, which risk limits may have cut):

* an exit (signal, stop, take-profit, reverse) closes the whole actual position, reduce-only; an
  exit the kernel filled inside the bar (stop-loss, trailing stop, take-profit) carries the bar
  and the levels it hit (:class:`~kubetrade.messaging.schemas.BarExit`): a paper fill takes its
  price from that candle by the kernel's rule, so paper exits happen where the backtest's do,
  not at the close (a live exchange never sees it);
* a position the strategy no longer wants (its entry was reduced, a risk stop closed part of
  it, an earlier exit was refused) is closed too: the runner never holds what the genome
  does not;
* an entry opens only on the bar the genome enters, never later (a refused entry is not
  chased), sized like the backtester: ``cash * positionPct * goal multiplier / (1 + fee)``
  at the expected fill price.

Client order ids are fixed by (strategy, symbol, bar, kind): a runner that restarts and
decides the same bar again asks with the same id, and the risk manager, JetStream and the
executor all drop the duplicate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from kubetrade.engine import costs, stoprule
from kubetrade.engine.codes import Signal as BarSignal
from kubetrade.messaging.schemas import BarExit

Kind = Literal["entry", "exit", "flatten"]
KIND_CODE = {"entry": "e", "exit": "x", "flatten": "f"}


@dataclass(frozen=True)
class Intent:
    kind: Kind
    symbol: str
    side: Literal["buy", "sell"]
    quantity: float
    price: float
    """Reference price: the bar's close."""
    client_order_id: str
    bar_time: int
    reduce_only: bool = False
    stop_price: float | None = None
    trailing_pct: float | None = None
    reason: str = ""
    bar_exit: BarExit | None = None
    """The bar and levels of an exit the kernel filled inside the bar (a paper fill's price comes from them)."""


INSIDE_THE_BAR = ("stop-loss", "trailing-stop", "take-profit")
"""Exit reasons the kernel fills at a price inside the bar rather than at its close."""


def client_order_id(prefix: str, symbol_index: int, bar_time: int, kind: Kind) -> str:
    """``<8 hex>-<symbol index>-<bar open ms>-<kind>``: at most 36 characters, fixed per decision."""
    return f"{prefix}-{symbol_index}-{bar_time}-{KIND_CODE[kind]}"


def bar_time_of(client_order_id: str) -> int | None:
    """The bar (open, UTC ms) a runner's order was decided on, read back from its client order id;
    None for an id a runner did not make (a manual order)."""
    parts = client_order_id.split("-")
    if len(parts) != 4 or len(parts[0]) != 8 or parts[3] not in KIND_CODE.values():
        return None
    try:
        int(parts[0], 16)
        return int(parts[2]) if parts[1].isdigit() else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Sizing:
    position_pct: float
    multiplier: float
    fee_rate: float
    slippage: float
    stop_loss_pct: float | None = None
    trailing_stop_pct: float | None = None


def intents(
    sig: BarSignal, *, symbol: str, symbol_index: int, bar_time: int, close: float, held: float, cash: float,
    sizing: Sizing, prefix: str, busy: bool = False, timeframe: str = "",
) -> list[Intent]:
    """Orders for one bar.  ``held`` is the actual signed position, ``busy`` an order still in flight."""
    out: list[Intent] = []
    if busy:
        return out  # one order at a time per symbol: the in-flight one must settle first
    expected_cash = cash
    if held != 0 and (sig.exit_reason or sig.position == 0 or sig.position * held < 0):
        kind: Kind = "exit" if sig.exit_reason else "flatten"
        side: Literal["buy", "sell"] = "sell" if held > 0 else "buy"
        bar_exit = None
        if sig.exit_reason in INSIDE_THE_BAR and timeframe:
            bar_exit = BarExit(timeframe=timeframe, bar_time=bar_time,
                               stop=sig.exit_stop if math.isfinite(sig.exit_stop) else None,
                               target=sig.exit_target if math.isfinite(sig.exit_target) else None)
        out.append(Intent(kind, symbol, side, abs(held), close, client_order_id(prefix, symbol_index, bar_time, kind),
                          bar_time, reduce_only=True, reason=sig.exit_reason or "strategy is flat",
                          bar_exit=bar_exit))
        # the kernel's own fill (slippage in it) when the bar filled the exit, else the close's
        fill = sig.exit_price if bar_exit is not None else costs.fill_price(side, close, sizing.slippage)
        expected_cash += held * fill - costs.fee(held, fill, sizing.fee_rate)
        held = 0.0
    if sig.opened != 0 and held == 0 and expected_cash > 0 and sizing.multiplier > 0:
        side = "buy" if sig.opened > 0 else "sell"
        fill = costs.fill_price(side, close, sizing.slippage)
        qty = expected_cash * sizing.position_pct * sizing.multiplier / (1.0 + sizing.fee_rate) / fill
        stop = None
        if sizing.stop_loss_pct:
            stop = stoprule.fixed_level(1 if side == "buy" else -1, fill, sizing.stop_loss_pct)
        if qty > 0:
            coid = client_order_id(prefix, symbol_index, bar_time, "entry")
            out.append(Intent("entry", symbol, side, qty, close, coid, bar_time, stop_price=stop,
                              trailing_pct=sizing.trailing_stop_pct,
                              reason="long entry" if side == "buy" else "short entry"))
    return out
