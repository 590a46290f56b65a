"""The ccxt venue speaks ccxt's unified API, not Binance's: the client order id goes in as
``clientOrderId`` (ccxt turns it into the exchange's own field), lookups use the exchange id,
the client id, or a search of open and closed orders, and an exchange whose ccxt client lacks
what live trading needs is refused at start, by name, from ccxt's own ``has``."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import ccxt
import pytest

from kubetrade.executor.venues import REQUIRED_CAPABILITIES, CcxtVenue, VenueUnsupported, check_capabilities


@pytest.fixture
def keys(exchange, monkeypatch):
    monkeypatch.setenv("KUBETRADE_EXCHANGE_API_KEY", exchange.api_key)
    monkeypatch.setenv("KUBETRADE_EXCHANGE_SECRET", exchange.secret)


def row(coid: str, **kw) -> dict:
    return {"client_order_id": coid, "symbol": "BTC/USDT", "type": "limit", "side": "buy", "quantity": 0.01,
            "price": 40_000.0, "filled_quantity": 0.0, "exchange_order_id": None, **kw}


def sent(exchange, method: str, path: str) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(p).query) for m, p in exchange.state.requests if m == method
            and urlsplit(p).path == path]


async def test_unified_client_order_id_and_every_lookup_path(exchange, keys) -> None:
    venue = CcxtVenue("binance", exchange.url, timeout_ms=3000)
    try:
        resting = await venue.submit(row("kt-rest-1"))  # a limit under the market: it rests
        assert resting.status == "open" and resting.exchange_order_id
        # ccxt turned the unified clientOrderId into Binance's own field (the server reads newClientOrderId only)
        assert exchange.trading.by_client_id[(exchange.api_key, "kt-rest-1")] is not None

        # 1. by client id (no exchange id known yet: the answer to the submit was lost)
        found = await venue.lookup(row("kt-rest-1"))
        assert found is not None and found.exchange_order_id == resting.exchange_order_id
        assert sent(exchange, "GET", "/api/v3/order")[-1].get("origClientOrderId") == ["kt-rest-1"]
        # 2. by exchange id when the row has it
        found = await venue.lookup(row("kt-rest-1", exchange_order_id=resting.exchange_order_id))
        assert found is not None and sent(exchange, "GET", "/api/v3/order")[-1].get("orderId") == [
            resting.exchange_order_id]
        # 3. by searching open and closed orders, as on an exchange that cannot look up client ids
        venue.lookup_by_client_id = False
        before = len(sent(exchange, "GET", "/api/v3/order"))
        found = await venue.lookup(row("kt-rest-1"))
        assert found is not None and found.exchange_order_id == resting.exchange_order_id
        assert len(sent(exchange, "GET", "/api/v3/order")) == before  # no fetch_order at all
        assert sent(exchange, "GET", "/api/v3/allOrders")  # ccxt's fetch_orders, one request for all
        assert await venue.lookup(row("kt-never-sent")) is None

        cancelled = await venue.cancel(row("kt-rest-1"))
        assert cancelled is not None and cancelled.status == "cancelled"
        filled = await venue.submit(row("kt-fill-1", type="market", price=None))
        assert filled.status == "filled" and filled.fills and filled.fills[0]["quantity"] == pytest.approx(0.01)
    finally:
        await venue.close()


def test_capabilities_come_from_ccxt_has() -> None:
    """Every exchange ccxt ships is either accepted or refused naming what it lacks; some are refused."""
    refused = {}
    for exchange_id in ccxt.exchanges:
        has = getattr(ccxt, exchange_id)().has
        try:
            check_capabilities(exchange_id, has)
        except VenueUnsupported as exc:
            refused[exchange_id] = str(exc)
            lacking = [name for name in REQUIRED_CAPABILITIES if not has.get(name)]
            assert all(name in str(exc) for name in lacking), exc
    assert "binance" not in refused and "okx" not in refused and "kraken" not in refused
    assert refused, "no ccxt exchange lacks a capability: the check would be untested"


def test_an_exchange_without_what_live_trading_needs_is_refused_at_start(monkeypatch) -> None:
    monkeypatch.setenv("KUBETRADE_EXCHANGE_API_KEY", "k")
    monkeypatch.setenv("KUBETRADE_EXCHANGE_SECRET", "s")
    lacking = next(e for e in ccxt.exchanges if not getattr(ccxt, e)().has.get("fetchMyTrades"))
    with pytest.raises(VenueUnsupported, match=rf"exchange '{lacking}' cannot be traded live .*fetchMyTrades"):
        CcxtVenue(lacking)
    with pytest.raises(VenueUnsupported, match="unknown exchange 'binanse'"):
        CcxtVenue("binanse")
