"""A local Binance-compatible exchange on loopback, for tests and benchmarks.

ccxt's real Binance client is pointed at it with :func:`kubetrade.ccxtclient.point_ccxt`
(which rewrites the client's ``urls['api']`` entries), so everything ccxt does - request building, signing,
parsing, its rate limiter and its error mapping - runs for real against HTTP on 127.0.0.1.

Layout
------
``state.py``   :class:`ExchangeState`, the one object every router shares (``app.state.exchange``):
               markets, real candles per (market, interval), a controllable :class:`Clock`,
               request-weight :class:`Limits` (429, then 418 bans, ``Retry-After``) and
               :class:`Faults` (status, delay, rewritten payloads) for fault tests.
``public.py``  the public ``/api/v3`` market-data endpoints (ping, time, exchangeInfo, klines,
               ticker/24hr, ticker/price, trades, aggTrades, depth).
``streams.py`` the websocket market streams (``/ws/<n>``, kline events) that ccxt.pro subscribes to.
``trading.py`` the signed ``/api/v3`` trading endpoints (orders, fills, balances), kept in
               ``st.extensions["trading"]``, fills printed to the public trade feed.
``proxy.py``   :class:`DroppingProxy`, a TCP proxy that cuts answers off after the request went through.
``app.py``     :func:`create_app` (the routers of ``ROUTER_MODULES``) and :class:`LocalExchange`
               (uvicorn in a thread).

A handler gets the shared state with ``st = charge(request, weight)`` (from ``public``), which
also applies the rate limit and sets the ``X-MBX-USED-WEIGHT`` headers; it raises
``public.BinanceError(status, code, msg)`` for Binance-style errors; fault injection
(:class:`Fault`) applies to every path.
"""

from kubetrade_testbed.exchange.app import ROUTER_MODULES, LocalExchange, create_app, running
from kubetrade_testbed.exchange.public import BinanceError, charge
from kubetrade_testbed.exchange.state import Clock, ExchangeState, Fault, Faults, Limits, Market, RateLimited

__all__ = [
    "ROUTER_MODULES",
    "BinanceError",
    "Clock",
    "ExchangeState",
    "Fault",
    "Faults",
    "Limits",
    "LocalExchange",
    "Market",
    "RateLimited",
    "charge",
    "create_app",
    "running",
]
