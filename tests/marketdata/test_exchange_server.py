"""The local Binance-compatible server, seen through ccxt's real Binance client over loopback HTTP."""

from __future__ import annotations

import ccxt
import ccxt.async_support as ccxta
import pytest

from kubetrade.candles import Candles
from kubetrade_testbed.exchange import Fault, LocalExchange

from .conftest import START


async def test_markets_carry_binance_filters_as_ccxt_parses_them(client: ccxta.binance) -> None:
    markets = await client.load_markets()
    assert set(markets) == {"BTC/USDT", "ETH/USDT"}
    m = markets["BTC/USDT"]
    assert m["id"] == "BTCUSDT" and m["spot"] and m["active"]
    assert m["precision"]["price"] == 0.01 and m["precision"]["amount"] == 0.00001
    assert m["limits"]["cost"]["min"] == 5.0 and m["limits"]["amount"]["min"] == 0.00001


async def test_klines_are_the_real_candles_and_the_open_one_is_partial(
        client: ccxta.binance, exchange: LocalExchange, btc_5m: Candles) -> None:
    rows = await client.fetch_ohlcv("BTC/USDT", "5m", since=START, limit=5)
    assert [r[0] for r in rows] == [int(t) for t in btc_5m.time[:5]]
    assert rows[3][1:] == [float(btc_5m.open[3]), float(btc_5m.high[3]), float(btc_5m.low[3]),
                           float(btc_5m.close[3]), float(btc_5m.volume[3])]
    latest = await client.fetch_ohlcv("BTC/USDT", "5m", limit=2)
    now = exchange.state.clock.now_ms()
    i = int((latest[-1][0] - START) // 300_000)
    assert latest[-1][0] <= now < latest[-1][0] + 300_000, "the newest kline is the one in progress"
    assert latest[-1][5] < float(btc_5m.volume[i]), "an open candle shows only part of its volume"
    ticker = await client.fetch_ticker("BTC/USDT")
    assert ticker["last"] == pytest.approx(latest[-1][4])


def _header(client: ccxta.binance, name: str) -> str:
    return {k.lower(): v for k, v in client.last_response_headers.items()}[name.lower()]


async def test_request_weight_429_then_418_map_to_ccxt_errors(client: ccxta.binance, exchange: LocalExchange) -> None:
    await client.load_markets()
    limits = exchange.state.limits
    limits.weight_per_minute = limits.used + 2  # room for exactly one klines request (weight 2)
    await client.fetch_ohlcv("BTC/USDT", "5m", limit=2)
    assert int(_header(client, "X-MBX-USED-WEIGHT-1M")) == limits.used
    with pytest.raises(ccxt.DDoSProtection, match="429"):  # ccxt maps both 429 and 418 to DDoSProtection
        await client.fetch_ohlcv("BTC/USDT", "5m", limit=2)
    assert int(_header(client, "Retry-After")) >= 1
    with pytest.raises(ccxt.DDoSProtection, match="418"):  # calling again before Retry-After: banned
        await client.fetch_ohlcv("BTC/USDT", "5m", limit=2)
    assert (limits.rejected_429, limits.rejected_418) == (1, 1)


async def test_injected_errors_reach_ccxt_as_its_own_exceptions(client: ccxta.binance, exchange: LocalExchange) -> None:
    await client.load_markets()
    faults = exchange.state.faults
    faults.inject(Fault("/api/v3/klines", status=503, body="Service Unavailable."))
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await client.fetch_ohlcv("BTC/USDT", "5m", limit=2)
    faults.inject(Fault("/api/v3/klines", delay=client.timeout / 1000 + 1))
    with pytest.raises(ccxt.RequestTimeout):
        await client.fetch_ohlcv("BTC/USDT", "5m", limit=2)
    with pytest.raises(ccxt.BadSymbol):
        await client.fetch_ohlcv("DOGE/USDT", "5m", limit=2)
    assert len(await client.fetch_ohlcv("BTC/USDT", "5m", limit=2)) == 2, "faults are used up"
