"""Positions, PnL and each strategy's spending limit (pure arithmetic).

Average-cost accounting, linear in price like the backtester: buying ``q`` at ``p`` costs
``q * p + fee`` from the ledger's cash, selling returns ``q * p - fee``.  Equity is cash
plus the signed position valued at market.  A fill that reduces a position realises
``q * (exit - average entry)`` (sign-adjusted for shorts); a fill that flips a position
closes the old one first and opens the rest at the fill price.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Position:
    quantity: float = 0.0
    """Signed base quantity (negative: short)."""
    average_price: float = 0.0
    realised_pnl: float = 0.0
    fees: float = 0.0


def apply_fill(pos: Position, side: str, quantity: float, price: float, fee: float) -> tuple[Position, float]:
    """The position after one fill, and the PnL this fill realised (before fees)."""
    signed = quantity if side == "buy" else -quantity
    q0, avg = pos.quantity, pos.average_price
    realised = 0.0
    if q0 == 0 or (q0 > 0) == (signed > 0):
        q1 = q0 + signed
        avg1 = (abs(q0) * avg + quantity * price) / abs(q1)
    else:
        closing = min(abs(signed), abs(q0))
        direction = 1.0 if q0 > 0 else -1.0
        realised = closing * (price - avg) * direction
        q1 = q0 + signed
        if abs(q1) < 1e-12 * max(1.0, abs(q0)):
            q1, avg1 = 0.0, 0.0
        elif (q1 > 0) == (q0 > 0):
            avg1 = avg
        else:
            avg1 = price
    return Position(q1, avg1, pos.realised_pnl + realised, pos.fees + fee), realised


def cash_after_fill(cash: float, side: str, quantity: float, price: float, fee: float) -> float:
    return cash - quantity * price - fee if side == "buy" else cash + quantity * price - fee


def spend_check(
    cash: float,
    reserved: float,
    side: str,
    quantity: float,
    price: float,
    fee_rate: float,
    position: float,
    spot: bool,
    reduce_only: bool,
) -> str | None:
    """Why this strategy may not place the order with its own allocation, or None.

    ``reserved`` is what the strategy's open buy orders may still spend.  Spot buys must be
    paid from the strategy's cash; spot sells cannot sell more than the strategy holds,
    whatever else the shared account holds.
    """
    if reduce_only:
        reducing = (position > 0 and side == "sell") or (position < 0 and side == "buy")
        if not reducing or quantity > abs(position) * (1 + 1e-9):
            return f"reduce-only {side} {quantity:g} but the strategy's position is {position:g}"
    if spot and side == "buy":
        need = quantity * price * (1 + fee_rate)
        if need > cash - reserved + 1e-9:
            return f"needs {need:.8g} but the strategy's ledger has {cash - reserved:.8g} available"
    if spot and side == "sell" and quantity > position * (1 + 1e-9) + 1e-12:
        return f"sells {quantity:g} but the strategy holds {position:g}"
    return None
