"""Stop-loss rules (pure): every position has a stop, trailing where configured.

The stop of a long position is ``entry * (1 - stop%)`` unless the strategy set one;
with trailing it follows the best price since entry at ``trailing%`` (never loosening).
The levels are :mod:`kubetrade.engine.stoprule`'s, the backtest kernel's own.
A position whose mark crosses its stop is closed by a reduce-only market order with a
client order id derived from the position's stop generation, so a retried or doubled
trigger submits the same order, not a second one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from kubetrade.engine import stoprule
from kubetrade.resources.riskpolicy import StopLossSettings


@dataclass(frozen=True)
class Stop:
    strategy: str
    symbol: str
    quantity: float
    """Signed position size the stop protects."""
    entry: float
    stop: float
    best: float
    """Best price since entry (highest for a long, lowest for a short)."""
    trailing_pct: float | None
    generation: int = 0
    """Bumped each time a stop is triggered, part of the closing order's id."""


def initial(
    settings: StopLossSettings,
    strategy: str,
    symbol: str,
    quantity: float,
    entry: float,
    stop_price: float | None = None,
    trailing_pct: float | None = None,
    best: float | None = None,
    generation: int = 0,
) -> Stop:
    """The stop a new position gets: the strategy's, or the policy default (``best`` and
    ``generation`` as recorded, for a position reloaded from the database)."""
    pct = settings.default_stop_pct
    if stop_price is None:
        stop_price = stoprule.fixed_level(_side(quantity), entry, pct)
    trail = (
        trailing_pct if trailing_pct is not None else ((settings.trailing_pct or pct) if settings.trailing else None)
    )
    return Stop(strategy, symbol, quantity, entry, stop_price, entry if best is None else best, trail, generation)


def _side(quantity: float) -> int:
    return 1 if quantity > 0 else -1


def on_price(stop: Stop, price: float) -> Stop:
    """Move the best price and, when trailing, tighten the stop behind it."""
    side = _side(stop.quantity)
    best = stoprule.best_price(side, stop.best, price)
    level = stoprule.trailed_level(side, stop.stop, best, stop.trailing_pct) if stop.trailing_pct else stop.stop
    if best == stop.best and level == stop.stop:
        return stop
    return replace(stop, best=best, stop=level)


def triggered(stop: Stop, price: float) -> bool:
    return stoprule.crossed(_side(stop.quantity), price, stop.stop)


def close_order_id(stop: Stop) -> str:
    """A deterministic client order id for the stop's closing order (<= 36 chars)."""
    digest = hashlib.sha256(f"{stop.strategy}|{stop.symbol}|{stop.entry}|{stop.generation}".encode()).hexdigest()
    return f"stop-{digest[:31]}"
