"""Where orders go: the paper venue (simulated fills against live NATS prices) or an
exchange through ccxt.

The executor only ever asks four things of a venue - submit, look up by client order id,
cancel, list fills - and gets back a :class:`VenueOrder` or one of two errors that say how
sure we are: :class:`Rejected` (the venue said no: the order does not exist) and
:class:`Uncertain` (timeout, dropped connection, rate limit, 5xx: it may or may not exist;
look it up before doing anything else).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kubetrade.ccxtclient import point_ccxt
from kubetrade.engine import costs
from kubetrade.executor import lifecycle

Row = dict[str, Any]


class Uncertain(Exception):
    """The venue's answer was lost; the order may exist.  Never treat as a rejection."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Rejected(Exception):
    """The venue refused the order; it does not exist there."""


@dataclass
class VenueOrder:
    status: str
    exchange_order_id: str | None = None
    filled: float = 0.0
    fills: list[dict[str, Any]] = field(default_factory=list)


class Venue(Protocol):
    name: str

    async def submit(self, order: Row) -> VenueOrder: ...

    async def lookup(self, order: Row) -> VenueOrder | None: ...

    async def cancel(self, order: Row) -> VenueOrder | None: ...

    async def close(self) -> None: ...


# --- paper -------------------------------------------------------------------------------


class PaperVenue:
    """Fills at the last price seen on NATS, moved by the strategy's slippage, with its fee rate.

    The cost model is :mod:`kubetrade.engine.costs`, the backtester's, so a paper fill is
    the fill the backtest would have assumed at that price.  Market orders fill at once when
    a price is known, otherwise they rest until the first price arrives; limit orders fill
    at their limit when the market trades through it.  Trade ids are derived from the
    client order id, so replaying a paper fill after a crash records nothing twice.
    """

    name = "paper"

    def __init__(self) -> None:
        self.prices: dict[tuple[str, str], float] = {}

    def on_price(self, exchange: str, symbol: str, price: float) -> None:
        self.prices[(exchange, symbol)] = price

    def fill_for(self, order: Row, time_ms: int) -> dict[str, Any] | None:
        last = self.prices.get((order["exchange"], order["symbol"]))
        if last is None:
            return None
        remaining = float(order["quantity"]) - float(order["filled_quantity"])
        if remaining <= 0:
            return None
        if order["type"] == "market":
            price = costs.fill_price(order["side"], last, costs.bps_to_fraction(float(order["slippage_bps"])))
        else:
            limit = float(order["price"])
            crossed = last <= limit if order["side"] == "buy" else last >= limit
            if not crossed:
                return None
            price = limit
        return {
            "trade_id": f"{order['client_order_id']}-1",
            "quantity": remaining,
            "price": price,
            "fee": costs.fee(remaining, price, float(order["fee_rate"])),
            "fee_currency": "USDT",
            "time": time_ms,
        }

    async def submit(self, order: Row) -> VenueOrder:
        import time

        fill = self.fill_for(order, int(time.time() * 1000))
        if fill is None:
            return VenueOrder("open", order["client_order_id"])
        return VenueOrder("filled", order["client_order_id"], fill["quantity"], [fill])

    async def lookup(self, order: Row) -> VenueOrder | None:
        # The paper venue's book is the database itself: nothing can exist that is not recorded.
        return None

    async def cancel(self, order: Row) -> VenueOrder | None:
        return VenueOrder("cancelled", order["client_order_id"], float(order["filled_quantity"]))

    async def close(self) -> None:
        return None


# --- ccxt ---------------------------------------------------------------------------------


def credentials_from_env() -> tuple[str, str]:
    """API key and secret from env vars, or from files of a mounted Secret; never logged."""
    folder = os.environ.get("KUBETRADE_EXCHANGE_CREDENTIALS_DIR")
    if folder:
        base = Path(folder)
        return (base / "apiKey").read_text().strip(), (base / "secret").read_text().strip()
    key = os.environ.get("KUBETRADE_EXCHANGE_API_KEY")
    secret = os.environ.get("KUBETRADE_EXCHANGE_SECRET")
    if not key or not secret:
        raise RuntimeError(
            "live mode needs exchange credentials: set KUBETRADE_EXCHANGE_API_KEY and KUBETRADE_EXCHANGE_SECRET "
            "or KUBETRADE_EXCHANGE_CREDENTIALS_DIR (a mounted Secret with apiKey and secret)"
        )
    return key, secret


class CcxtVenue:
    """An exchange through ccxt's async client (Binance first), client order id as ``newClientOrderId``."""

    def __init__(self, exchange_id: str = "binance", base_url: str | None = None, timeout_ms: int = 10_000) -> None:
        import ccxt.async_support as ccxt_async

        key, secret = credentials_from_env()
        cls = getattr(ccxt_async, exchange_id)
        self.client = cls(
            {
                "apiKey": key,
                "secret": secret,
                "enableRateLimit": True,
                "timeout": timeout_ms,
                "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
            }
        )
        if base_url:
            point_ccxt(self.client, base_url)
        self.name = exchange_id

    async def _call(self, what: str, coro: Any) -> Any:
        import ccxt

        try:
            return await coro
        except (ccxt.RequestTimeout, ccxt.NetworkError) as exc:  # incl. rate limits and 5xx
            retry = 0.0
            headers = getattr(self.client, "last_response_headers", None) or {}
            if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
                retry = float(headers.get("Retry-After") or headers.get("retry-after") or 1.0)
            raise Uncertain(f"{what}: {type(exc).__name__}: {str(exc)[:200]}", retry) from exc
        except ccxt.OrderNotFound:
            raise
        except ccxt.AuthenticationError as exc:
            raise Uncertain(f"{what}: authentication failed ({type(exc).__name__})", 5.0) from exc
        except ccxt.ExchangeError as exc:
            if "duplicate" in str(exc).lower():
                raise Uncertain(f"{what}: exchange reports a duplicate client order id", 0.0) from exc
            raise Rejected(f"{what}: {type(exc).__name__}: {str(exc)[:300]}") from exc

    def _venue_order(self, o: dict[str, Any], order: Row) -> VenueOrder:
        filled = float(o.get("filled") or 0.0)
        status = lifecycle.from_exchange(o.get("status"), filled, float(o.get("amount") or order["quantity"]))
        return VenueOrder(status, str(o.get("id")) if o.get("id") is not None else None, filled)

    async def _with_fills(self, vo: VenueOrder, order: Row) -> VenueOrder:
        if vo.filled > 0 and vo.exchange_order_id:
            trades = await self._call(
                "fetch_my_trades",
                self.client.fetch_my_trades(order["symbol"], params={"orderId": vo.exchange_order_id}),
            )
            vo.fills = [lifecycle.ccxt_fill(t) for t in trades if str(t.get("order")) == vo.exchange_order_id]
        return vo

    async def submit(self, order: Row) -> VenueOrder:
        price = float(order["price"]) if order["type"] == "limit" else None
        o = await self._call(
            "create_order",
            self.client.create_order(
                order["symbol"],
                order["type"],
                order["side"],
                float(order["quantity"]),
                price,
                params={"newClientOrderId": order["client_order_id"]},
            ),
        )
        return await self._with_fills(self._venue_order(o, order), order)

    async def lookup(self, order: Row) -> VenueOrder | None:
        import ccxt

        try:
            o = await self._call(
                "fetch_order",
                self.client.fetch_order("", order["symbol"], params={"origClientOrderId": order["client_order_id"]}),
            )
        except ccxt.OrderNotFound:
            return None
        return await self._with_fills(self._venue_order(o, order), order)

    async def cancel(self, order: Row) -> VenueOrder | None:
        import ccxt

        with contextlib.suppress(ccxt.OrderNotFound):
            await self._call(
                "cancel_order",
                self.client.cancel_order("", order["symbol"], params={"origClientOrderId": order["client_order_id"]}),
            )
        return await self.lookup(order)

    async def open_orders(self, symbols: list[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for symbol in symbols:
            found += await self._call("fetch_open_orders", self.client.fetch_open_orders(symbol))
        return found

    async def balances(self) -> dict[str, float]:
        bal = await self._call("fetch_balance", self.client.fetch_balance())
        return {k: float(v) for k, v in (bal.get("total") or {}).items() if v}

    async def close(self) -> None:
        await self.client.close()
