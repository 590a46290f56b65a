"""The HTTP API of orders and risk over a real uvicorn, NATS, PostgreSQL, risk manager and paper executor."""

from __future__ import annotations

import asyncio

import httpx

from kubetrade.api import create_app
from kubetrade.ledger import allocation, connection
from tests.api.conftest import make_key, settings_for
from tests.orders.conftest import now_ms, tick, wait_for
from tests.orders.test_risk_service import stack
from tests.support.server import serving


async def test_orders_and_risk_routes(orders_dsn, own_nats, nc, monkeypatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "paper", "alpha", 10_000.0, risk_policy="default")
    await conn.close()
    app = create_app(settings_for(orders_dsn, own_nats.url))
    _, key = await asyncio.to_thread(make_key, orders_dsn, ["read", "trade", "admin"], "orders-test")
    with serving(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=15, headers={"X-API-Key": key}) as http:
            r = await http.put(
                "/api/v1/risk/limits", json={"name": "default", "spec": {"strategyLimits": {"maxPositionPct": 0.1}}}
            )
            assert r.status_code == 200 and r.json()["revision"] >= 1
            bad = await http.put(
                "/api/v1/risk/limits", json={"name": "default", "spec": {"strategyLimits": {"maxPositionPct": 3}}}
            )
            assert bad.status_code == 422 and "maxPositionPct" in bad.json()["detail"]
            listed = (await http.get("/api/v1/risk/limits")).json()
            assert listed[0]["spec"]["strategyLimits"]["maxPositionPct"] == 0.1
            async with stack(orders_dsn, own_nats.url) as (rm, _ex):
                await tick(nc, 50_000.0)
                await wait_for(lambda: _has(rm))
                signal = {
                    "strategy": "alpha",
                    "clientOrderId": "api-1",
                    "exchange": "binance",
                    "symbol": "BTC/USDT",
                    "side": "buy",
                    "quantity": 1,
                    "price": 50_000,
                    "time": now_ms(),
                }
                # /risk/check is a dry run: the answer, nothing submitted, nothing reserved
                d = (await http.post("/api/v1/risk/check", json=signal)).json()
                assert d["approved"] and d["quantity"] < 1 and d["rule"] == "maxPositionPct"
                assert (await http.post("/api/v1/risk/check", json={"strategy": "alpha"})).status_code == 422
                assert (await http.get("/api/v1/orders/api-1")).status_code == 404
                # an order is placed through /orders, and passes the same checks
                r = await http.post(
                    "/api/v1/orders",
                    json={
                        "strategy": "alpha",
                        "symbol": "BTC/USDT",
                        "side": "buy",
                        "quantity": 1,
                        "price": 50_000,
                        "clientOrderId": "api-1",
                    },
                )
                assert r.status_code == 202 and r.json()["decision"]["quantity"] == d["quantity"]
                await wait_for(lambda: _status(http, "api-1", "filled"))
                order = (await http.get("/api/v1/orders/api-1")).json()
                assert len(order["fills"]) == 1 and [e["status"] for e in order["events"]] == ["pending", "filled"]
                # a manual limit order passes the same risk checks, rests, and is cancelled
                r = await http.post(
                    "/api/v1/orders",
                    json={
                        "strategy": "alpha",
                        "symbol": "BTC/USDT",
                        "side": "sell",
                        "type": "limit",
                        "quantity": 0.001,
                        "price": 60_000,
                        "clientOrderId": "api-2",
                    },
                )
                assert r.status_code == 202 and r.json()["decision"]["approved"]
                await wait_for(lambda: _status(http, "api-2", "open"))
                assert (await http.delete("/api/v1/orders/api-2")).status_code == 202
                await wait_for(lambda: _status(http, "api-2", "cancelled"))
                assert (await http.delete("/api/v1/orders/api-2")).status_code == 409
                assert (await http.get("/api/v1/orders/nope")).status_code == 404
                orders = (await http.get("/api/v1/orders", params={"strategy": "alpha"})).json()
                assert {o["client_order_id"] for o in orders} == {"api-1", "api-2"}
                pos = (await http.get("/api/v1/positions", params={"environment": "paper"})).json()
                assert len(pos) == 1 and pos[0]["quantity"] == order["filled_quantity"]
                trades = (await http.get("/api/v1/trades")).json()
                assert [t["client_order_id"] for t in trades] == ["api-1"]
                m = (await http.get("/api/v1/risk/metrics")).json()
                assert m["source"] == "risk-manager" and m["portfolios"][0]["openPositions"] == 1
            # with the risk manager gone, metrics come from what it saved
            m = (await http.get("/api/v1/risk/metrics")).json()
            assert m["source"] == "database" and m["portfolios"][0]["policy"] == "default"
            assert (await http.post("/api/v1/risk/breaker/reset", json={})).status_code == 503


async def _has(rm):
    return "BTC/USDT" in rm.feed.symbols


async def _status(http, coid, status):
    r = await http.get(f"/api/v1/orders/{coid}")
    await asyncio.sleep(0)
    return r.status_code == 200 and r.json()["status"] == status


async def test_a_manual_reduce_only_order_closes_a_fill_the_risk_book_has_not_read(orders_dsn, own_nats, nc,
                                                                                   monkeypatch) -> None:
    """A person closes a position through ``POST /orders`` with ``reduceOnly``.  Its entry was approved by a
    risk manager that has since restarted, and filled after the new one read the ledger (a replica's approval
    is the same case): the risk book holds nothing.  The API sends the position the order record holds as
    the order's basis, so the risk manager re-reads the ledger and approves the close whole (without it:
    "reduce-only sell but position is 0", and the position stays open).  A second reduce-only close, once
    flat, is refused and says what the ledger holds."""
    from kubetrade.risk.manager import RiskManager
    from tests.orders.test_risk_service import ask, publish_policy, signal

    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "paper", "alpha", 10_000.0, risk_policy="default")
    await publish_policy(nc, {"stopLoss": {"defaultStopPct": 0.02}})
    first = RiskManager(orders_dsn, own_nats.url, refresh_seconds=3600)
    run = asyncio.create_task(first.run())
    await wait_for(lambda: _started(first, run))
    await tick(nc, 50_000.0)
    await wait_for(lambda: _has(first))
    entry = await ask(nc, signal("m-1", 0.03))  # in the ORDERS stream; no executor runs yet
    assert entry.approved and entry.quantity == 0.03
    first.stopping.set()
    await asyncio.wait_for(run, 30)

    app = create_app(settings_for(orders_dsn, own_nats.url))
    _, key = await asyncio.to_thread(make_key, orders_dsn, ["read", "trade"], "reduce-only-test")
    close = {"strategy": "alpha", "symbol": "BTC/USDT", "side": "sell", "quantity": 0.03, "price": 50_100,
             "reduceOnly": True}
    with serving(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=15, headers={"X-API-Key": key}) as http, \
                stack(orders_dsn, own_nats.url, refresh_seconds=3600) as (rm, _ex):
            await tick(nc, 50_100.0)
            await wait_for(lambda: _status(http, "m-1", "filled"))
            await wait_for(lambda: _has(rm))
            book = rm.book.portfolio_of("paper", "default", "alpha")
            assert book is not None and book.state.position("alpha", "BTC/USDT") == 0.0 and not book.reservations
            r = await http.post("/api/v1/orders", json=close | {"clientOrderId": "m-2"})
            assert r.status_code == 202, r.text
            d = r.json()["decision"]
            assert d["approved"] and d["quantity"] == 0.03 and "rule" not in d, d
            await wait_for(lambda: _status(http, "m-2", "filled"))
            pos = (await http.get("/api/v1/positions", params={"environment": "paper", "include_flat": "true"})).json()
            assert [(p["strategy"], p["quantity"]) for p in pos] == [("alpha", 0.0)], pos
            rm.poke.set()
            r = await http.post("/api/v1/orders", json=close | {"clientOrderId": "m-3"})
            d = r.json()["decision"]
            assert r.status_code == 202 and not d["approved"] and d["rule"] == "reduceOnly", d
            assert (await http.get("/api/v1/orders/m-3")).status_code == 404
    await conn.close()


async def _started(rm, task):
    if task.done():
        task.result()
    return rm.ready.is_set()
