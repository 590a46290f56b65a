"""Binance spot signed trading endpoints: account, order (new / query / cancel by
``origClientOrderId``), openOrders, myTrades - with HMAC-SHA256 signatures and
``recvWindow`` checked, the LOT_SIZE / PRICE_FILTER / NOTIONAL filters enforced, and
order-level fault injection for the executor's fault tests.

State lives in ``ExchangeState.extensions["trading"]`` (:class:`TradingState`); use
:func:`trading_state` to get it and add accounts (``add_account``), set prices
(``set_price``, which also matches resting limit orders) and plan faults (``faults``).

Simplifications, on purpose: commission is charged in the quote asset at ``fee_rate``
(Binance charges the received asset unless BNB pays); a MARKET order fills in one trade
at the last price; a LIMIT order that is marketable fills at the last price, otherwise it
rests until :meth:`TradingState.set_price` crosses it.  By default ``newClientOrderId``
must be unique over *all* orders of the account; with ``unique_ids_among_open_only`` it is
Binance's own rule (only open orders' ids are refused), so a client that resends a filled
order's id creates a second order - and ``accepted`` counts it, which is what the fault
tests check.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kubetrade_testbed.exchange.public import BinanceError, charge
from kubetrade_testbed.exchange.state import ExchangeState, Market

router = APIRouter(prefix="/api/v3")


@dataclass
class OrderFaults:
    """Order-level misbehaviour, consumed one use at a time by POST /api/v3/order."""

    hang_after_accept: int = 0
    """Accept (and fill) the next N orders, then answer only after ``hang_seconds`` (client timeout)."""
    hang_seconds: float = 30.0
    reject: int = 0
    """Reject the next N orders with -2010 before accepting them."""
    partial: int = 0
    """Fill only ``partial_fraction`` of the next N market orders; the rest fills on :meth:`complete_partials`."""
    partial_fraction: float = 0.5


@dataclass
class Account:
    api_key: str
    secret: str
    balances: dict[str, Decimal] = field(default_factory=dict)
    locked: dict[str, Decimal] = field(default_factory=dict)


@dataclass
class ExOrder:
    order_id: int
    account: str
    symbol: str
    client_order_id: str
    side: str
    type: str
    orig_qty: Decimal
    price: Decimal
    time: int
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    status: str = "NEW"
    update_time: int = 0
    hold_rest: bool = False


@dataclass
class TradingState:
    accounts: dict[str, Account] = field(default_factory=dict)
    orders: dict[int, ExOrder] = field(default_factory=dict)
    by_client_id: dict[tuple[str, str], int] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    prices: dict[str, Decimal] = field(default_factory=dict)
    faults: OrderFaults = field(default_factory=OrderFaults)
    fee_rate: Decimal = Decimal("0.001")
    unique_ids_among_open_only: bool = False
    """Binance's own rule (a filled order's id may be reused); the default refuses any reuse."""
    accepted: dict[str, int] = field(default_factory=dict)
    """How many orders were accepted per client order id (a double submission shows here)."""
    lock: threading.RLock = field(default_factory=threading.RLock)
    next_order_id: int = 1
    next_trade_id: int = 1
    exchange: ExchangeState | None = None

    def add_account(self, api_key: str, secret: str, balances: dict[str, float | str]) -> Account:
        acct = Account(api_key, secret, {k: Decimal(str(v)) for k, v in balances.items()})
        self.accounts[api_key] = acct
        return acct

    def last_price(self, symbol: str) -> Decimal | None:
        if symbol in self.prices:
            return self.prices[symbol]
        if self.exchange is not None:
            p = self.exchange.last_price(symbol)
            return None if p is None else Decimal(str(p))
        return None

    def set_price(self, symbol: str, price: float | str) -> None:
        """Move the market; resting limit orders it crosses fill at their limit."""
        with self.lock:
            self.prices[symbol] = Decimal(str(price))
            for o in list(self.orders.values()):
                if o.symbol == symbol and o.type == "LIMIT" and o.status in ("NEW", "PARTIALLY_FILLED"):
                    p = self.prices[symbol]
                    if (o.side == "BUY" and p <= o.price) or (o.side == "SELL" and p >= o.price):
                        self._fill(o, o.orig_qty - o.executed, o.price)

    def complete_partials(self) -> int:
        """Fill the rest of every partially filled market order (the fault's second half)."""
        with self.lock:
            n = 0
            for o in self.orders.values():
                if o.hold_rest and o.status == "PARTIALLY_FILLED":
                    o.hold_rest = False
                    price = self.last_price(o.symbol) or o.price
                    self._fill(o, o.orig_qty - o.executed, price)
                    n += 1
            return n

    def _market(self, symbol: str) -> Market:
        assert self.exchange is not None
        m = self.exchange.markets.get(symbol)
        if m is None:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return m

    def _fill(self, o: ExOrder, qty: Decimal, price: Decimal) -> None:
        acct = self.accounts[o.account]
        m = self._market(o.symbol)
        quote = qty * price
        fee = (quote * self.fee_rate).quantize(Decimal("0.00000001"))
        if o.side == "BUY":
            acct.balances[m.quote] = acct.balances.get(m.quote, Decimal(0)) - quote - fee
            acct.balances[m.base] = acct.balances.get(m.base, Decimal(0)) + qty
        else:
            acct.balances[m.base] = acct.balances.get(m.base, Decimal(0)) - qty
            acct.balances[m.quote] = acct.balances.get(m.quote, Decimal(0)) + quote - fee
        now = int(time.time() * 1000)
        trade = {
            "symbol": o.symbol,
            "id": self.next_trade_id,
            "orderId": o.order_id,
            "orderListId": -1,
            "price": _s(price),
            "qty": _s(qty),
            "quoteQty": _s(quote),
            "commission": _s(fee),
            "commissionAsset": m.quote,
            "time": now,
            "isBuyer": o.side == "BUY",
            "isMaker": o.type == "LIMIT",
            "isBestMatch": True,
            "_account": o.account,
        }
        self.next_trade_id += 1
        self.trades.append(trade)
        o.executed += qty
        o.quote += quote
        o.update_time = now
        o.status = "FILLED" if o.executed >= o.orig_qty else "PARTIALLY_FILLED"
        if self.exchange is not None:
            prints = self.exchange.extensions.setdefault("public_trades", {}).setdefault(o.symbol, [])
            prints.append(
                {
                    "id": trade["id"],
                    "price": trade["price"],
                    "qty": trade["qty"],
                    "quoteQty": trade["quoteQty"],
                    "time": now,
                    "isBuyerMaker": o.side == "SELL",
                    "isBestMatch": True,
                }
            )


def trading_state(st: ExchangeState) -> TradingState:
    ts = st.extensions.get("trading")
    if ts is None:
        ts = TradingState(exchange=st)
        st.extensions["trading"] = ts
    assert isinstance(ts, TradingState)
    return ts


def _s(x: Decimal) -> str:
    return f"{x:.8f}"


async def _signed(request: Request, weight: int) -> tuple[TradingState, Account, dict[str, str]]:
    """Check the API key, the HMAC-SHA256 signature over query + body, and the recvWindow."""
    st = charge(request, weight)
    ts = trading_state(st)
    key = request.headers.get("X-MBX-APIKEY")
    if not key:
        raise BinanceError(401, -2014, "API-key format invalid.")
    acct = ts.accounts.get(key)
    if acct is None:
        raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    body = (await request.body()).decode()
    total = "&".join(p for p in (request.url.query, body) if p)
    parts = total.split("&")
    sig = [p for p in parts if p.startswith("signature=")]
    if len(sig) != 1:
        raise BinanceError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    payload = "&".join(p for p in parts if not p.startswith("signature="))
    expected = hmac.new(acct.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, sig[0].removeprefix("signature=")):
        raise BinanceError(400, -1022, "Signature for this request is not valid.")
    params = dict(parse_qsl(payload, keep_blank_values=True))
    try:
        stamp = int(params["timestamp"])
        window = int(params.get("recvWindow", "5000"))
    except (KeyError, ValueError) as exc:
        raise BinanceError(
            400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
        ) from exc
    if window > 60_000:
        raise BinanceError(400, -1131, "recvWindow must be less than 60000")
    now = int(time.time() * 1000)
    if stamp > now + 1000 or now - stamp > window:
        raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    return ts, acct, params


def _dec(params: dict[str, str], name: str) -> Decimal | None:
    if name not in params or params[name] == "":
        return None
    try:
        value = Decimal(params[name])
    except InvalidOperation as exc:
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'.") from exc
    if not value.is_finite() or value <= 0:
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'.")
    return value


def check_filters(m: Market, qty: Decimal, price: Decimal) -> None:
    """Binance's LOT_SIZE, PRICE_FILTER and NOTIONAL filters (-1013 Filter failure)."""
    step, lo, hi = Decimal(m.step_size), Decimal(m.min_qty), Decimal(m.max_qty)
    if qty < lo or qty > hi or (qty - lo) % step != 0:
        raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
    if price % Decimal(m.tick_size) != 0:
        raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
    if qty * price < Decimal(m.min_notional):
        raise BinanceError(400, -1013, "Filter failure: NOTIONAL")


def order_view(o: ExOrder, full: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_order_id,
        "price": _s(o.price if o.type == "LIMIT" else Decimal(0)),
        "origQty": _s(o.orig_qty),
        "executedQty": _s(o.executed),
        "cummulativeQuoteQty": _s(o.quote),
        "status": o.status,
        "timeInForce": "GTC",
        "type": o.type,
        "side": o.side,
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": o.time,
        "updateTime": o.update_time or o.time,
        "isWorking": o.status in ("NEW", "PARTIALLY_FILLED"),
        "workingTime": o.time,
        "origQuoteOrderQty": "0.00000000",
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }
    if full:
        view["transactTime"] = o.update_time or o.time
    return view


@router.post("/order")
async def new_order(request: Request) -> JSONResponse:
    ts, acct, p = await _signed(request, 1)
    hang = 0.0
    with ts.lock:
        m = ts._market(p.get("symbol", ""))
        side, otype = p.get("side", ""), p.get("type", "")
        if side not in ("BUY", "SELL") or otype not in ("MARKET", "LIMIT"):
            raise BinanceError(400, -1116 if otype not in ("MARKET", "LIMIT") else -1117, "Invalid side or order type.")
        qty = _dec(p, "quantity")
        if qty is None:
            raise BinanceError(400, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
        coid = p.get("newClientOrderId") or f"auto-{ts.next_order_id}"
        if ts.faults.reject > 0:
            ts.faults.reject -= 1
            raise BinanceError(400, -2010, "Order would trigger immediately.")
        prior = ts.by_client_id.get((acct.api_key, coid))
        if prior is not None and (
            not ts.unique_ids_among_open_only or ts.orders[prior].status in ("NEW", "PARTIALLY_FILLED")
        ):
            raise BinanceError(400, -2010, "Duplicate order sent.")
        last = ts.last_price(m.symbol)
        if otype == "LIMIT":
            price = _dec(p, "price")
            if price is None:
                raise BinanceError(
                    400, -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed."
                )
        else:
            if last is None:
                raise BinanceError(400, -2010, "Market is closed.")
            price = last
        check_filters(m, qty, price if otype == "LIMIT" else last or price)
        cost = qty * price * (1 + ts.fee_rate)
        if side == "BUY" and acct.balances.get(m.quote, Decimal(0)) < cost:
            raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
        if side == "SELL" and acct.balances.get(m.base, Decimal(0)) < qty:
            raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
        now = int(time.time() * 1000)
        o = ExOrder(ts.next_order_id, acct.api_key, m.symbol, coid, side, otype, qty, price, now)
        ts.next_order_id += 1
        ts.orders[o.order_id] = o
        ts.by_client_id[(acct.api_key, coid)] = o.order_id
        ts.accepted[coid] = ts.accepted.get(coid, 0) + 1
        marketable = last is not None and (
            otype == "MARKET" or (side == "BUY" and last <= price) or (side == "SELL" and last >= price)
        )
        if marketable and last is not None:
            if otype == "MARKET" and ts.faults.partial > 0:
                ts.faults.partial -= 1
                part = (qty * Decimal(str(ts.faults.partial_fraction)) / Decimal(m.step_size)).to_integral_value()
                part = max(part * Decimal(m.step_size), Decimal(m.step_size))
                ts._fill(o, min(part, qty), last)
                o.hold_rest = o.executed < o.orig_qty
            else:
                ts._fill(o, qty, last)
        fills = [
            {
                "price": t["price"],
                "qty": t["qty"],
                "commission": t["commission"],
                "commissionAsset": t["commissionAsset"],
                "tradeId": t["id"],
            }
            for t in ts.trades
            if t["orderId"] == o.order_id
        ]
        view = order_view(o, full=True) | {"fills": fills}
        if ts.faults.hang_after_accept > 0:
            ts.faults.hang_after_accept -= 1
            hang = ts.faults.hang_seconds
    if hang:
        await asyncio.sleep(hang)  # accepted and filled; the client times out and must look it up
    return JSONResponse(view)


def _find(ts: TradingState, acct: Account, p: dict[str, str]) -> ExOrder:
    ts._market(p.get("symbol", ""))
    oid: int | None = None
    if p.get("origClientOrderId"):
        oid = ts.by_client_id.get((acct.api_key, p["origClientOrderId"]))
    elif p.get("orderId"):
        try:
            oid = int(p["orderId"])
        except ValueError as exc:
            raise BinanceError(400, -1100, "Illegal characters found in parameter 'orderId'.") from exc
    else:
        raise BinanceError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    o = ts.orders.get(oid) if oid is not None else None
    if o is None or o.account != acct.api_key or o.symbol != p.get("symbol"):
        raise BinanceError(400, -2013, "Order does not exist.")
    return o


@router.get("/order")
async def query_order(request: Request) -> JSONResponse:
    ts, acct, p = await _signed(request, 4)
    with ts.lock:
        return JSONResponse(order_view(_find(ts, acct, p)))


@router.delete("/order")
async def cancel_order(request: Request) -> JSONResponse:
    ts, acct, p = await _signed(request, 1)
    with ts.lock:
        try:
            o = _find(ts, acct, p)
        except BinanceError as exc:
            if exc.code == -2013:
                raise BinanceError(400, -2011, "Unknown order sent.") from exc
            raise
        if o.status not in ("NEW", "PARTIALLY_FILLED"):
            raise BinanceError(400, -2011, "Unknown order sent.")
        o.status = "CANCELED"
        o.hold_rest = False
        o.update_time = int(time.time() * 1000)
        return JSONResponse(order_view(o) | {"origClientOrderId": o.client_order_id})


@router.get("/openOrders")
async def open_orders(request: Request) -> JSONResponse:
    ts, acct, p = await _signed(request, 6 if p_symbol(request) else 80)
    with ts.lock:
        rows = [
            order_view(o)
            for o in ts.orders.values()
            if o.account == acct.api_key
            and o.status in ("NEW", "PARTIALLY_FILLED")
            and (not p.get("symbol") or o.symbol == p["symbol"])
        ]
        return JSONResponse(rows)


def p_symbol(request: Request) -> bool:
    return "symbol=" in request.url.query


@router.get("/allOrders")
async def all_orders(request: Request) -> JSONResponse:
    ts, acct, p = await _signed(request, 20)
    with ts.lock:
        ts._market(p.get("symbol", ""))
        rows = [order_view(o) for o in ts.orders.values() if o.account == acct.api_key and o.symbol == p["symbol"]]
        return JSONResponse(rows[-int(p.get("limit", "500")) :])


@router.get("/myTrades")
async def my_trades(request: Request) -> JSONResponse:
    ts, acct, p = await _signed(request, 20)
    with ts.lock:
        ts._market(p.get("symbol", ""))
        rows = [t for t in ts.trades if t["_account"] == acct.api_key and t["symbol"] == p["symbol"]]
        if p.get("orderId"):
            rows = [t for t in rows if str(t["orderId"]) == p["orderId"]]
        if p.get("fromId"):
            rows = [t for t in rows if t["id"] >= int(p["fromId"])]
        limit = min(int(p.get("limit", "500")), 1000)
        return JSONResponse([{k: v for k, v in t.items() if not k.startswith("_")} for t in rows[:limit]])


@router.get("/account")
async def account(request: Request) -> JSONResponse:
    ts, acct, _ = await _signed(request, 20)
    with ts.lock:
        locked: dict[str, Decimal] = {}
        for o in ts.orders.values():
            if o.account == acct.api_key and o.status in ("NEW", "PARTIALLY_FILLED"):
                m = ts._market(o.symbol)
                rest = o.orig_qty - o.executed
                asset, amount = (m.quote, rest * o.price) if o.side == "BUY" else (m.base, rest)
                locked[asset] = locked.get(asset, Decimal(0)) + amount
        balances = [
            {"asset": a, "free": _s(v - locked.get(a, Decimal(0))), "locked": _s(locked.get(a, Decimal(0)))}
            for a, v in acct.balances.items()
        ]
        return JSONResponse(
            {
                "makerCommission": 10,
                "takerCommission": 10,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": "0.00100000",
                    "taker": "0.00100000",
                    "buyer": "0.00000000",
                    "seller": "0.00000000",
                },
                "canTrade": True,
                "canWithdraw": False,
                "canDeposit": False,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": int(time.time() * 1000),
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
                "uid": 1,
            }
        )
