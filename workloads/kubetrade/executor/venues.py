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
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubetrade import settings
from kubetrade.ccxtclient import point_ccxt
from kubetrade.engine import costs, stoprule
from kubetrade.ledger import orderstatus
from kubetrade.retrying import retry_after_header

log = logging.getLogger("kubetrade.executor.paper")
BARS_KEPT = 2000
"""Candles the paper venue keeps per market and timeframe, to fill exits decided on them."""

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
    at their limit when the market trades through it.  A reduce-only market order that
    carries a ``bar_exit`` (an exit the backtest fills inside the bar: a stop-loss, trailing
    stop or take-profit) takes its price from that bar, as this venue received the candle on
    NATS, by the kernel's rule (:func:`kubetrade.engine.stoprule.bar_fill`), so paper exits
    happen where the backtest's do; the order names the bar and the levels, never a price.
    Until the candle is here the order waits; a level the bar did not reach (or a bar that
    never came while later ones did) fills at the last price, as any market order.  Trade ids
    are derived from the client order id, so replaying a paper fill after a crash records
    nothing twice.
    """

    name = "paper"

    def __init__(self) -> None:
        self.prices: dict[tuple[str, str], float] = {}
        self.bars: dict[tuple[str, str, str], dict[int, tuple[float, float, float]]] = {}
        """(exchange, symbol, timeframe) -> bar open time -> (open, high, low), the last BARS_KEPT bars"""

    def on_price(self, exchange: str, symbol: str, price: float) -> None:
        self.prices[(exchange, symbol)] = price

    def on_candle(self, exchange: str, symbol: str, timeframe: str, time: int, o: float, h: float, lo: float) -> None:
        bars = self.bars.setdefault((exchange, symbol, timeframe), {})
        bars[time] = (o, h, lo)
        while len(bars) > BARS_KEPT:
            del bars[next(iter(bars))]

    def _bar_reference(self, order: Row, last: float) -> float | None:
        """The price a bar exit fills at (before slippage), or None while its bar has not arrived."""
        be = order["bar_exit"]
        bars = self.bars.get((order["exchange"], order["symbol"], str(be.get("timeframe"))), {})
        bar = bars.get(int(be.get("barTime", -1)))
        if bar is None:
            if bars and max(bars) > int(be.get("barTime", -1)):
                log.warning("the bar of a paper exit never arrived; filled at the last price",
                            extra={"client_order_id": order["client_order_id"], "bar_time": be.get("barTime")})
                return last
            return None
        side = 1 if order["side"] == "sell" else -1  # selling closes a long
        stop, target = be.get("stop"), be.get("target")
        kind, raw = stoprule.bar_fill(side, math.nan if stop is None else float(stop),
                                      math.nan if target is None else float(target), *bar)
        if kind == stoprule.NO_FILL:
            log.warning("a paper exit's levels were not reached by its bar; filled at the last price",
                        extra={"client_order_id": order["client_order_id"], "bar_time": be.get("barTime")})
            return last
        return raw

    def fill_for(self, order: Row, time_ms: int) -> dict[str, Any] | None:
        last = self.prices.get((order["exchange"], order["symbol"]))
        if last is None:
            return None
        remaining = float(order["quantity"]) - float(order["filled_quantity"])
        if remaining <= 0:
            return None
        if order["type"] == "market":
            reference = last
            if order.get("bar_exit") and order.get("reduce_only"):
                from_bar = self._bar_reference(order, last)
                if from_bar is None:
                    return None  # wait for the bar's candle
                reference = from_bar
            price = costs.fill_price(order["side"], reference, costs.bps_to_fraction(float(order["slippage_bps"])))
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
    env = settings.current()
    if env.exchange_credentials_dir:
        base = env.exchange_credentials_dir
        return (base / "apiKey").read_text().strip(), (base / "secret").read_text().strip()
    if not env.exchange_api_key or not env.exchange_secret:
        raise RuntimeError(
            "live mode needs exchange credentials: set KUBETRADE_EXCHANGE_API_KEY and KUBETRADE_EXCHANGE_SECRET "
            "or KUBETRADE_EXCHANGE_CREDENTIALS_DIR (a mounted Secret with apiKey and secret)"
        )
    return env.exchange_api_key.get_secret_value(), env.exchange_secret.get_secret_value()


REQUIRED_CAPABILITIES: dict[str, str] = {
    "createOrder": "to send orders",
    "cancelOrder": "to cancel them",
    "fetchOpenOrders": "to reconcile open orders at start",
    "fetchMyTrades": "to record fills",
    "fetchBalance": "to reconcile balances",
}
"""ccxt ``has`` entries a live venue cannot work without, and why (``'emulated'`` counts as offered)."""


class VenueUnsupported(RuntimeError):
    """The exchange (as ccxt offers it) lacks what live trading needs; the message says what and why."""


def check_capabilities(exchange_id: str, has: dict[str, Any]) -> None:
    """Refuse, at start, an exchange whose ccxt client cannot do what the executor relies on."""
    missing = [f"{name} ({why})" for name, why in REQUIRED_CAPABILITIES.items() if not has.get(name)]
    if not has.get("fetchOrder") and not (has.get("fetchOpenOrders") and has.get("fetchClosedOrders")):
        missing.append("fetchOrder, or fetchOpenOrders with fetchClosedOrders (to look an order up after a timeout)")
    if missing:
        raise VenueUnsupported(f"exchange {exchange_id!r} cannot be traded live through ccxt: it lacks "
                               f"{'; '.join(missing)}")


class CcxtVenue:
    """An exchange through ccxt's async client, with ccxt's unified client order id.

    Orders carry the executor's id as ``params={"clientOrderId": ...}`` (ccxt maps it to
    each exchange's own field: Binance's ``newClientOrderId``, OKX's ``clOrdId``, Kraken's
    ``cl_ord_id``...).  An order is looked up by its exchange id when that is known, else by
    ``fetch_order`` with the client id (where the exchange answers that), else by searching
    the open and closed orders for the client id.  ``has`` is checked when the venue is made.
    """

    def __init__(self, exchange_id: str = "binance", base_url: str | None = None, timeout_ms: int = 10_000) -> None:
        import ccxt.async_support as ccxt_async

        if exchange_id not in ccxt_async.exchanges:
            raise VenueUnsupported(f"unknown exchange {exchange_id!r}: not a ccxt exchange id (e.g. binance, okx)")
        key, secret = credentials_from_env()
        cls = getattr(ccxt_async, exchange_id)
        options: dict[str, Any] = {"fetchCurrencies": False}
        if exchange_id == "binance":
            options |= {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False}
        self.client = cls({"apiKey": key, "secret": secret, "enableRateLimit": True, "timeout": timeout_ms,
                           "options": options})
        check_capabilities(exchange_id, dict(self.client.has))
        if base_url:
            point_ccxt(self.client, base_url)
        self.name = exchange_id
        self.lookup_by_client_id = bool(self.client.has.get("fetchOrder"))
        """Whether ``fetch_order`` with ``clientOrderId`` works here; turned off when the exchange says it does not."""

    async def _call(self, what: str, coro: Any) -> Any:
        import ccxt

        try:
            return await coro
        except (ccxt.RequestTimeout, ccxt.NetworkError) as exc:  # incl. rate limits and 5xx
            retry = 0.0
            if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
                retry = retry_after_header(getattr(self.client, "last_response_headers", None)) or 1.0
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
        status = orderstatus.from_exchange(o.get("status"), filled, float(o.get("amount") or order["quantity"]))
        return VenueOrder(status, str(o.get("id")) if o.get("id") is not None else None, filled)

    async def _with_fills(self, vo: VenueOrder, order: Row) -> VenueOrder:
        if vo.filled > 0 and vo.exchange_order_id:
            oid = vo.exchange_order_id
            if self.client.has.get("fetchOrderTrades"):
                trades = await self._call("fetch_order_trades", self.client.fetch_order_trades(oid, order["symbol"]))
            else:
                trades = await self._call("fetch_my_trades", self.client.fetch_my_trades(order["symbol"]))
            vo.fills = [orderstatus.ccxt_fill(t) for t in trades if str(t.get("order")) == oid]
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
                params={"clientOrderId": order["client_order_id"]},
            ),
        )
        return await self._with_fills(self._venue_order(o, order), order)

    async def _find(self, order: Row) -> dict[str, Any] | None:
        """The exchange's order for this row: by exchange id, by client id, else by a search; None if none."""
        import ccxt

        coid, symbol = order["client_order_id"], order["symbol"]
        with contextlib.suppress(ccxt.OrderNotFound):
            if order.get("exchange_order_id"):
                found: dict[str, Any] = await self._call("fetch_order",
                                                         self.client.fetch_order(order["exchange_order_id"], symbol))
                return found
            if self.lookup_by_client_id:
                try:
                    found = await self._call("fetch_order", self.client.fetch_order(
                        "", symbol, params={"clientOrderId": coid}))
                    return found
                except Rejected as exc:  # the exchange wants its own id: search instead from now on
                    if not isinstance(exc.__cause__, ccxt.ArgumentsRequired | ccxt.BadRequest | ccxt.NotSupported):
                        raise
                    self.lookup_by_client_id = False
        for o in await self._search(symbol):
            if o.get("clientOrderId") == coid:
                return o
        return None

    async def _search(self, symbol: str) -> list[dict[str, Any]]:
        """Every order of ``symbol`` the exchange still lists: all at once where it can, else open,
        then closed and cancelled (ccxt's closed orders leave the cancelled ones out)."""
        has, c = self.client.has, self.client
        if has.get("fetchOrders"):
            return list(await self._call("fetch_orders", c.fetch_orders(symbol)))
        found: list[dict[str, Any]] = list(await self._call("fetch_open_orders", c.fetch_open_orders(symbol)))
        if has.get("fetchCanceledAndClosedOrders"):
            found += await self._call("fetch_canceled_and_closed_orders", c.fetch_canceled_and_closed_orders(symbol))
        else:
            if has.get("fetchClosedOrders"):
                found += await self._call("fetch_closed_orders", c.fetch_closed_orders(symbol))
            if has.get("fetchCanceledOrders"):
                found += await self._call("fetch_canceled_orders", c.fetch_canceled_orders(symbol))
        return found

    async def lookup(self, order: Row) -> VenueOrder | None:
        o = await self._find(order)
        if o is None:
            return None
        return await self._with_fills(self._venue_order(o, order), order)

    async def cancel(self, order: Row) -> VenueOrder | None:
        import ccxt

        o = await self._find(order)
        if o is None:
            return None
        with contextlib.suppress(ccxt.OrderNotFound):
            await self._call("cancel_order", self.client.cancel_order(str(o["id"]), order["symbol"]))
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
