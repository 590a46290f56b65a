"""Binance spot public market-data endpoints (``/api/v3/...``), answered from real candles.

Shapes follow Binance's REST documentation closely enough for ccxt's own parser: klines as
arrays of strings, exchangeInfo with LOT_SIZE / PRICE_FILTER / NOTIONAL filters, errors as
``{"code": -1121, "msg": "Invalid symbol."}`` with HTTP 400.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kubetrade_testbed.exchange.state import ExchangeState, Market, Series

router = APIRouter(prefix="/api/v3")

_INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")


class BinanceError(Exception):
    """An error answered the Binance way: HTTP status plus ``{"code", "msg"}``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def state_of(request: Request) -> ExchangeState:
    st: ExchangeState = request.app.state.exchange
    return st


def charge(request: Request, weight: int) -> ExchangeState:
    """Charge the request's weight (raises RateLimited) and return the state."""
    st = state_of(request)
    request.state.used_weight = st.limits.charge(weight)
    return st


def _market(st: ExchangeState, symbol: str | None) -> Market:
    if not symbol or symbol not in st.markets:
        raise BinanceError(400, -1121, "Invalid symbol.")
    return st.markets[symbol]


async def _json(request: Request, data: Any) -> JSONResponse:
    return JSONResponse(await state_of(request).faults.apply_rewrite(request.url.path, data))


@router.get("/ping")
async def ping(request: Request) -> JSONResponse:
    charge(request, 1)
    return await _json(request, {})


@router.get("/time")
async def server_time(request: Request) -> JSONResponse:
    st = charge(request, 1)
    return await _json(request, {"serverTime": st.clock.now_ms()})


def market_info(m: Market) -> dict[str, Any]:
    return {
        "symbol": m.symbol,
        "status": m.status,
        "baseAsset": m.base,
        "baseAssetPrecision": 8,
        "quoteAsset": m.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": m.tick_size, "maxPrice": "1000000.00", "tickSize": m.tick_size},
            {"filterType": "LOT_SIZE", "minQty": m.min_qty, "maxQty": m.max_qty, "stepSize": m.step_size},
            {
                "filterType": "NOTIONAL",
                "minNotional": m.min_notional,
                "applyMinToMarket": True,
                "maxNotional": "9000000.00",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.0", "maxQty": m.max_qty, "stepSize": "0.0"},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


@router.get("/exchangeInfo")
async def exchange_info(request: Request) -> JSONResponse:
    st = charge(request, 20)
    limits = st.limits
    return await _json(
        request,
        {
            "timezone": "UTC",
            "serverTime": st.clock.now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": limits.weight_per_minute,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [market_info(m) for m in st.markets.values()],
        },
    )


def _fmt(x: float) -> str:
    return f"{x:.8f}"


def kline_rows(series: Series, now_ms: int, start: int | None, end: int | None, limit: int) -> list[list[Any]]:
    """Binance kline rows visible at ``now_ms``; the newest one may still be in progress."""
    c = series.candles
    n = series.visible(now_ms)
    lo = int(np.searchsorted(c.time, start, side="left")) if start is not None else None
    hi = min(n, int(np.searchsorted(c.time, end, side="right"))) if end is not None else n
    if lo is None:
        lo = max(0, hi - limit)
    hi = min(hi, lo + limit)
    rows: list[list[Any]] = []
    for i in range(lo, hi):
        t, o, h, low, cl, v = series.bar(i, now_ms)
        rows.append(
            [
                t,
                _fmt(o),
                _fmt(h),
                _fmt(low),
                _fmt(cl),
                _fmt(v),
                t + series.interval_ms - 1,
                _fmt(v * cl),
                100,
                _fmt(v / 2),
                _fmt(v * cl / 2),
                "0",
            ]
        )
    return rows


@router.get("/klines")
async def klines(
    request: Request,
    symbol: str | None = None,
    interval: str | None = None,
    startTime: int | None = None,
    endTime: int | None = None,
    limit: int = 500,
) -> JSONResponse:
    st = charge(request, 2)
    m = _market(st, symbol)
    if interval not in _INTERVALS:
        raise BinanceError(400, -1120, "Invalid interval.")
    if not 1 <= limit <= 1000:
        raise BinanceError(400, -1130, "Data sent for parameter 'limit' is not valid.")
    series = st.series.get((m.symbol, interval))
    rows = [] if series is None else kline_rows(series, st.clock.now_ms(), startTime, endTime, limit)
    return await _json(request, rows)


def ticker_24hr(st: ExchangeState, m: Market) -> dict[str, Any]:
    now = st.clock.now_ms()
    series = min((s for (mid, _), s in st.series.items() if mid == m.symbol), key=lambda s: s.interval_ms, default=None)
    base: dict[str, Any] = {
        "symbol": m.symbol,
        "openTime": now - 86_400_000,
        "closeTime": now,
        "firstId": 0,
        "lastId": 0,
        "count": 0,
    }
    if series is None or series.visible(now) == 0:
        return base | {k: "0.00000000" for k in ("lastPrice", "openPrice", "highPrice", "lowPrice", "volume")}
    c = series.candles
    hi = series.visible(now)
    lo = int(np.searchsorted(c.time, now - 86_400_000, side="left"))
    last, first = series.bar(hi - 1, now)[4], float(c.open[lo])
    vol = float(c.volume[lo:hi].sum())
    return base | {
        "priceChange": _fmt(last - first),
        "priceChangePercent": f"{(last - first) / first * 100:.3f}",
        "weightedAvgPrice": _fmt(float((c.close[lo:hi] * c.volume[lo:hi]).sum()) / vol if vol else last),
        "prevClosePrice": _fmt(float(c.close[lo - 1]) if lo else first),
        "lastPrice": _fmt(last),
        "lastQty": "0.01000000",
        "bidPrice": _fmt(last - float(m.tick_size)),
        "bidQty": "1.00000000",
        "askPrice": _fmt(last + float(m.tick_size)),
        "askQty": "1.00000000",
        "openPrice": _fmt(first),
        "highPrice": _fmt(float(c.high[lo:hi].max())),
        "lowPrice": _fmt(float(c.low[lo:hi].min())),
        "volume": _fmt(vol),
        "quoteVolume": _fmt(vol * last),
        "firstId": lo * 4,
        "lastId": hi * 4 - 1,
        "count": (hi - lo) * 4,
    }


@router.get("/ticker/24hr")
async def ticker(request: Request, symbol: str | None = None) -> JSONResponse:
    if symbol is None:
        st = charge(request, 80)
        return await _json(request, [ticker_24hr(st, m) for m in st.markets.values()])
    st = charge(request, 2)
    return await _json(request, ticker_24hr(st, _market(st, symbol)))


@router.get("/ticker/price")
async def ticker_price(request: Request, symbol: str | None = None) -> JSONResponse:
    st = charge(request, 2 if symbol else 4)
    markets = [_market(st, symbol)] if symbol else list(st.markets.values())
    rows = [{"symbol": m.symbol, "price": _fmt(st.last_price(m.symbol) or 0.0)} for m in markets]
    return await _json(request, rows[0] if symbol else rows)


def recent_trades(st: ExchangeState, m: Market, limit: int) -> list[dict[str, Any]]:
    """Recent public trades: four per bar of the finest series (open, high, low, close prints).

    The exchange has no order flow of its own, so public trades are derived from the candles;
    fills of the trading router are added from ``extensions['public_trades']`` if present.
    """
    now = st.clock.now_ms()
    series = min((s for (mid, _), s in st.series.items() if mid == m.symbol), key=lambda s: s.interval_ms, default=None)
    rows: list[dict[str, Any]] = []
    if series is not None:
        c = series.candles
        hi = series.visible(now)
        for i in range(max(0, hi - (limit + 3) // 4), hi):
            t = int(c.time[i])
            qty = float(c.volume[i]) / 4
            for j, price in enumerate((c.open[i], c.high[i], c.low[i], c.close[i])):
                ts = t + j * series.interval_ms // 4
                if ts > now:
                    break
                rows.append(
                    {
                        "id": i * 4 + j,
                        "price": _fmt(float(price)),
                        "qty": _fmt(qty),
                        "quoteQty": _fmt(qty * float(price)),
                        "time": ts,
                        "isBuyerMaker": j % 2 == 1,
                        "isBestMatch": True,
                    }
                )
    rows.extend(st.extensions.get("public_trades", {}).get(m.symbol, []))
    rows.sort(key=lambda r: (r["time"], r["id"]))
    return rows[-limit:]


@router.get("/trades")
async def trades(request: Request, symbol: str | None = None, limit: int = 500) -> JSONResponse:
    st = charge(request, 25)
    return await _json(request, recent_trades(st, _market(st, symbol), limit))


@router.get("/aggTrades")
async def agg_trades(request: Request, symbol: str | None = None, limit: int = 500,
                     startTime: int | None = None, endTime: int | None = None) -> JSONResponse:
    """Aggregate trades (ccxt's default for fetch_trades): one aggregate per print here."""
    st = charge(request, 4)
    rows = recent_trades(st, _market(st, symbol), 100_000 if startTime is not None else limit)
    rows = [r for r in rows if (startTime is None or r["time"] >= startTime)
            and (endTime is None or r["time"] <= endTime)][:limit]
    return await _json(
        request,
        [
            {
                "a": r["id"],
                "p": r["price"],
                "q": r["qty"],
                "f": r["id"],
                "l": r["id"],
                "T": r["time"],
                "m": r["isBuyerMaker"],
                "M": True,
            }
            for r in rows
        ],
    )


@router.get("/depth")
async def depth(request: Request, symbol: str | None = None, limit: int = 100) -> JSONResponse:
    st = charge(request, 5 if limit <= 100 else 25)
    m = _market(st, symbol)
    last = st.last_price(m.symbol) or 0.0
    tick = float(m.tick_size)
    levels = min(limit, 20)
    bids = [[_fmt(last - tick * (i + 1)), "1.00000000"] for i in range(levels)] if last else []
    asks = [[_fmt(last + tick * (i + 1)), "1.00000000"] for i in range(levels)] if last else []
    return await _json(request, {"lastUpdateId": st.clock.now_ms(), "bids": bids, "asks": asks})
