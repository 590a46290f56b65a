"""The order lifecycle and how an exchange's view of an order maps onto it (pure).

::

    pending ─► open ─► partially_filled ─► filled
       │         │            │
       │         └────────────┴─► cancelled / expired
       └─► rejected / expired / filled (market orders fill at once)

``pending`` means decided and recorded, maybe not yet on the exchange; it is the only
state in which the executor may still submit.  A terminal state never changes again.
"""

from __future__ import annotations

from typing import Any

from kubetrade.messaging.schemas import TERMINAL_STATUSES

_ORDER = {"pending": 0, "open": 1, "partially_filled": 2}

ALLOWED: dict[str, frozenset[str]] = {
    "pending": frozenset({"open", "partially_filled", "filled", "cancelled", "rejected", "expired"}),
    "open": frozenset({"partially_filled", "filled", "cancelled", "expired"}),
    "partially_filled": frozenset({"filled", "cancelled", "expired"}),
}


class IllegalTransition(ValueError):
    pass


def can_move(current: str, new: str) -> bool:
    return current == new or new in ALLOWED.get(current, frozenset())


def check(current: str, new: str) -> None:
    if not can_move(current, new):
        raise IllegalTransition(f"order cannot go from {current} to {new}")


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


def from_exchange(status: str | None, filled: float, amount: float) -> str:
    """Our status for a ccxt unified order status plus its filled amount."""
    if status == "closed" or (amount > 0 and filled >= amount * (1 - 1e-9)):
        return "filled"
    if status == "canceled":
        return "cancelled"
    if status == "rejected":
        return "rejected"
    if status == "expired":
        return "expired"
    return "partially_filled" if filled > 0 else "open"


def merge(current: str, observed: str) -> str:
    """Never move backwards: a late, stale observation of an order cannot reopen it."""
    if is_terminal(current):
        return current
    if is_terminal(observed):
        return observed
    return observed if _ORDER.get(observed, 0) >= _ORDER.get(current, 0) else current


def ccxt_fill(trade: dict[str, Any]) -> dict[str, Any]:
    """The fields of a ccxt unified trade the executor records."""
    fee = trade.get("fee") or {}
    return {
        "trade_id": str(trade["id"]),
        "quantity": float(trade["amount"]),
        "price": float(trade["price"]),
        "fee": float(fee.get("cost") or 0.0),
        "fee_currency": str(fee.get("currency") or ""),
        "time": int(trade.get("timestamp") or 0),
    }
