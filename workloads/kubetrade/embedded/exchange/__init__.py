"""A local Binance-compatible exchange on loopback, for tests and the local default.

ccxt's real Binance client is pointed at it with :func:`point_ccxt` (which rewrites the
client's ``urls['api']`` entries), so everything ccxt does - request building, signing,
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
``app.py``     :func:`create_app`, :class:`LocalExchange` (uvicorn in a thread) and :func:`point_ccxt`.

Adding the signed trading endpoints
-----------------------------------
Create ``trading.py`` with ``router = APIRouter(prefix="/api/v3")`` and add
``"kubetrade.embedded.exchange.trading"`` to ``app.ROUTER_MODULES``.  In each handler:

- get the shared state with ``st = charge(request, weight)`` (from ``public``), which also
  applies the rate limit and sets the ``X-MBX-USED-WEIGHT`` headers;
- keep balances, orders and fills in ``st.extensions["trading"]`` (your own dataclass), and
  append public prints of fills to ``st.extensions["public_trades"][market_id]`` (dicts in
  the ``/api/v3/trades`` shape) so they show up in the public trade feed;
- price fills from ``st.last_price(market_id)`` so orders fill where the klines say;
- raise ``public.BinanceError(status, code, msg)`` for Binance-style errors
  (e.g. ``BinanceError(400, -2013, "Order does not exist.")``);
- verify the HMAC-SHA256 ``signature`` over the query string / body with the secret of the
  ``X-MBX-APIKEY`` header; fault injection (:class:`Fault`) applies to your paths unchanged.
"""

from kubetrade.embedded.exchange.app import ROUTER_MODULES, LocalExchange, create_app, point_ccxt, running
from kubetrade.embedded.exchange.public import BinanceError, charge
from kubetrade.embedded.exchange.state import Clock, ExchangeState, Fault, Faults, Limits, Market, RateLimited

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
    "point_ccxt",
    "running",
]
