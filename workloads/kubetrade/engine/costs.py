"""Trading costs shared by the backtester, paper fills and the risk manager.

One formula, used everywhere, so that a paper result is comparable with a backtest of
the same strategy (the backtest kernel in :mod:`kubetrade.engine.backtest` inlines the
same arithmetic for speed; ``tests/orders/test_costs.py`` holds the two together):

* the fill price is the reference price moved *against* the trader by ``slippage``
  (a fraction): a buy pays ``ref * (1 + slippage)``, a sell receives ``ref * (1 - slippage)``;
* the fee is ``fee_rate`` times the filled notional, per side.
"""

from __future__ import annotations

from typing import Literal


def bps_to_fraction(bps: float) -> float:
    """Basis points (the Strategy resource's ``slippageBps``) to a fraction."""
    return bps / 10_000.0


def fill_price(side: Literal["buy", "sell"], reference: float, slippage: float) -> float:
    """The price a market order fills at, given the reference (last/close) price."""
    if reference <= 0:
        raise ValueError(f"reference price must be positive, got {reference}")
    if not 0 <= slippage < 0.5:
        raise ValueError(f"slippage {slippage} must be a fraction in [0, 0.5)")
    return reference * (1.0 + slippage) if side == "buy" else reference * (1.0 - slippage)


def fee(quantity: float, price: float, fee_rate: float) -> float:
    """Fee in quote currency for a fill of ``quantity`` at ``price``."""
    return abs(quantity) * price * fee_rate
