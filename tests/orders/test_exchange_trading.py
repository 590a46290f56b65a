"""ccxt's real Binance client trading against the local exchange: signed endpoints,
filters, client order ids, and the faults the executor has to survive."""

from __future__ import annotations

import hashlib
import hmac
import time

import ccxt
import httpx
import pytest

from kubetrade_testbed.exchange import Fault
from tests.orders.conftest import ccxt_client


async def test_orders_by_client_id_fills_and_balances(exchange) -> None:
    client = ccxt_client(exchange)
    try:
        o = await client.create_order("BTC/USDT", "market", "buy", 0.01, params={"newClientOrderId": "cid-1"})
        assert o["status"] == "closed" and o["clientOrderId"] == "cid-1" and o["filled"] == 0.01
        got = await client.fetch_order("", "BTC/USDT", params={"origClientOrderId": "cid-1"})
        assert got["id"] == o["id"] and got["average"] == 50_000.0
        trades = await client.fetch_my_trades("BTC/USDT", params={"orderId": o["id"]})
        assert len(trades) == 1 and trades[0]["fee"]["cost"] == pytest.approx(0.5)
        bal = await client.fetch_balance()
        assert bal["BTC"]["total"] == 0.01 and bal["USDT"]["total"] == pytest.approx(100_000 - 500 - 0.5)
        # a resting limit order: open, listed, cancelled by client id, then unknown to cancel again
        lim = await client.create_order("BTC/USDT", "limit", "buy", 0.001, 40_000, params={"newClientOrderId": "cid-2"})
        assert lim["status"] == "open"
        assert [x["clientOrderId"] for x in await client.fetch_open_orders("BTC/USDT")] == ["cid-2"]
        assert (await client.fetch_balance())["USDT"]["used"] == pytest.approx(40.0)
        await client.cancel_order("", "BTC/USDT", params={"origClientOrderId": "cid-2"})
        assert (await client.fetch_order("", "BTC/USDT", params={"origClientOrderId": "cid-2"}))["status"] == "canceled"
        with pytest.raises(ccxt.OrderNotFound):
            await client.cancel_order("", "BTC/USDT", params={"origClientOrderId": "cid-2"})
        with pytest.raises(ccxt.OrderNotFound):
            await client.fetch_order("", "BTC/USDT", params={"origClientOrderId": "never"})
        # a limit order fills when the market trades through it
        await client.create_order("BTC/USDT", "limit", "sell", 0.005, 51_000, params={"newClientOrderId": "cid-3"})
        exchange.trading.set_price("BTCUSDT", "51500")
        assert (await client.fetch_order("", "BTC/USDT", params={"origClientOrderId": "cid-3"}))["status"] == "closed"
        # the same client order id twice is refused, even after the first filled
        with pytest.raises(ccxt.InvalidOrder, match="Duplicate"):
            await client.create_order("BTC/USDT", "market", "buy", 0.01, params={"newClientOrderId": "cid-1"})
    finally:
        await client.close()


async def test_filters_and_balance_are_enforced(exchange) -> None:
    client = ccxt_client(exchange)
    try:
        await client.load_markets()
        # ccxt rounds amounts to the step itself, so send raw requests past its rounding
        client.options["createMarketBuyOrderRequiresPrice"] = False
        for qty, rule in (("0.000015", "LOT_SIZE"), ("0.00001", "NOTIONAL")):
            with pytest.raises(ccxt.ExchangeError, match=rule):
                await client.privatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": qty})
        with pytest.raises(ccxt.ExchangeError, match="PRICE_FILTER"):
            await client.privatePostOrder(
                {
                    "symbol": "BTCUSDT",
                    "side": "BUY",
                    "type": "LIMIT",
                    "quantity": "0.001",
                    "price": "40000.005",
                    "timeInForce": "GTC",
                }
            )
        with pytest.raises(ccxt.InsufficientFunds):
            await client.create_order("BTC/USDT", "market", "buy", 5, params={"newClientOrderId": "big"})
        with pytest.raises(ccxt.InsufficientFunds):
            await client.create_order("BTC/USDT", "market", "sell", 0.01, params={"newClientOrderId": "nothing"})
    finally:
        await client.close()


async def test_signatures_and_recv_window_are_checked(exchange) -> None:
    bad = ccxt_client(exchange, secret="0" * 64)
    try:
        with pytest.raises(ccxt.AuthenticationError):
            await bad.fetch_balance()
    finally:
        await bad.close()

    def signed(params: str) -> str:
        sig = hmac.new(exchange.secret.encode(), params.encode(), hashlib.sha256).hexdigest()
        return f"{params}&signature={sig}"

    stale = f"timestamp={int(time.time() * 1000) - 60_000}&recvWindow=5000"
    async with httpx.AsyncClient(base_url=exchange.url, headers={"X-MBX-APIKEY": exchange.api_key}) as h:
        r = await h.get(f"/api/v3/account?{signed(stale)}")
        assert r.status_code == 400 and r.json()["code"] == -1021
        r = await h.get(f"/api/v3/account?timestamp={int(time.time() * 1000)}")
        assert r.status_code == 400 and r.json()["code"] == -1102
        r = await h.get(f"/api/v3/account?{signed(f'timestamp={int(time.time() * 1000)}')}")
        assert r.status_code == 200 and r.json()["canTrade"]
        r = await h.get(
            f"/api/v3/account?{signed(f'timestamp={int(time.time() * 1000)}')}",
            headers={"X-MBX-APIKEY": "someone-else"},
        )
        assert r.status_code == 401 and r.json()["code"] == -2015


async def test_faults_timeout_after_accept_partial_fill_rate_limit(exchange) -> None:
    client = ccxt_client(exchange, timeout_ms=500)
    try:
        await client.load_markets()
        exchange.trading.faults.hang_after_accept = 1
        exchange.trading.faults.hang_seconds = 2.0
        with pytest.raises(ccxt.RequestTimeout):
            await client.create_order("BTC/USDT", "market", "buy", 0.01, params={"newClientOrderId": "t-1"})
        # the timeout was not a rejection: the order exists and filled
        got = await client.fetch_order("", "BTC/USDT", params={"origClientOrderId": "t-1"})
        assert got["status"] == "closed"
        exchange.trading.faults.partial = 1
        o = await client.create_order("BTC/USDT", "market", "buy", 0.01, params={"newClientOrderId": "t-2"})
        assert o["status"] == "open" and o["filled"] == pytest.approx(0.005)
        exchange.trading.complete_partials()
        assert (await client.fetch_order("", "BTC/USDT", params={"origClientOrderId": "t-2"}))["filled"] == 0.01
        exchange.state.faults.inject(Fault("/api/v3/order", status=429, body={"code": -1003, "msg": "Too many"}))
        with pytest.raises((ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
            await client.create_order("BTC/USDT", "market", "buy", 0.01, params={"newClientOrderId": "t-3"})
        exchange.state.faults.inject(Fault("/api/v3/order", status=418, body={"code": -1003, "msg": "banned"}))
        with pytest.raises(ccxt.DDoSProtection):
            await client.create_order("BTC/USDT", "market", "buy", 0.01, params={"newClientOrderId": "t-3"})
        exchange.trading.faults.reject = 1
        with pytest.raises(ccxt.InvalidOrder):
            await client.create_order("BTC/USDT", "market", "buy", 0.01, params={"newClientOrderId": "t-3"})
        # nothing of t-3 reached the book
        with pytest.raises(ccxt.OrderNotFound):
            await client.fetch_order("", "BTC/USDT", params={"origClientOrderId": "t-3"})
    finally:
        await client.close()


async def test_a_dropped_connection_is_not_a_rejection(exchange) -> None:
    from kubetrade.ccxtclient import point_ccxt
    from kubetrade_testbed.exchange.proxy import DroppingProxy

    with DroppingProxy(exchange.port) as proxy:
        client = ccxt_client(exchange)
        point_ccxt(client, proxy.url)
        try:
            await client.load_markets()
            proxy.drop_responses = 1
            with pytest.raises(ccxt.NetworkError):
                await client.create_order("BTC/USDT", "market", "buy", 0.01, params={"newClientOrderId": "drop-1"})
            got = await client.fetch_order("", "BTC/USDT", params={"origClientOrderId": "drop-1"})
            assert got["status"] == "closed" and proxy.dropped == 1
        finally:
            await client.close()
