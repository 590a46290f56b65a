"""The console follows the platform live: the strategy page's charts take new candles and fills,
a new fill appears on the dashboard without a reload, and a lost event stream shows
"reconnecting" and resumes by itself."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import psycopg
from psycopg.rows import dict_row
from selenium.webdriver.common.by import By
from tests.console.conftest import live, login, shoot, wait_for


def _order(stack, strategy: str, key: str | None = None) -> str:
    """A small manual paper order through the API (risk manager, executor, a fill at the last price)."""
    coid = f"console-{uuid.uuid4().hex[:12]}"
    with stack.client(key) as api:
        latest = api.get("/api/v1/market-data", params={"symbols": "BTC/USDT", "timeframe": "5m"}).json()
        price = latest[0]["candle"]["close"]
        got = api.post("/api/v1/orders", json={"strategy": strategy, "symbol": "BTC/USDT", "side": "buy",
                                               "quantity": 0.0005, "price": price, "clientOrderId": coid})
    assert got.status_code == 202 and got.json()["decision"]["approved"], got.text
    return coid


def _row_status(driver, coid: str) -> str | None:
    rows = driver.find_elements(By.CSS_SELECTOR, f'#orders-table tr[data-order="{coid}"] .status')
    return rows[0].text if rows else None


def _chart(driver) -> dict:
    return json.loads(driver.execute_script("return document.getElementById('chart-data').textContent"))


def test_the_strategy_charts_take_new_candles_and_fills_without_a_reload(stack, browser) -> None:
    """The replay closes a 5m bar about every second: the strategy page's candle chart must grow with
    it, its newest bar the one stored, and a fill the strategy makes meanwhile must appear as a marker,
    the markers being the strategy's fills on the bars drawn."""
    login(browser, stack.api, stack.admin_key)
    browser.get(f"{stack.api}/console/strategies/btc-fast")
    live(browser)
    wait_for(browser, lambda d: d.execute_script("return document.body.dataset.charts") == "drawn", "the charts")
    browser.execute_script("window.__sameDocument = 'yes'")
    drawn = _chart(browser)
    first, marked = drawn["candles"][-1]["time"], len(drawn["markers"])
    wait_for(browser, lambda d: int(d.execute_script("return document.body.dataset.chartLast") or 0) >= first + 3 * 300,
             "three newer 5m bars on the candle chart", 90)
    wait_for(browser, lambda d: int(d.execute_script("return document.body.dataset.chartMarkers") or 0) > marked,
             "a new fill marked on the candle chart", 420)
    assert browser.execute_script("return window.__sameDocument") == "yes"  # no reload happened
    assert browser.execute_script("return performance.getEntriesByType('navigation').length") == 1
    assert int(browser.execute_script("return document.body.dataset.chartUpdates")) >= 1
    data = _chart(browser)
    newest = data["candles"][-1]
    assert int(browser.execute_script("return document.body.dataset.chartLast")) == newest["time"]
    from kubetrade.runner.intents import bar_time_of

    with psycopg.connect(stack.dsn, row_factory=dict_row) as db:
        stored = db.execute("SELECT open, high, low, close FROM candles WHERE exchange = 'binance' AND "
                            "symbol = 'BTC/USDT' AND timeframe = '5m' AND time = %s",
                            (datetime.fromtimestamp(newest["time"], UTC),)).fetchone()
        fills = db.execute("SELECT client_order_id, side, price FROM fills WHERE strategy = 'btc-fast' "
                           "AND symbol = 'BTC/USDT' ORDER BY time, id").fetchall()
    assert stored == {k: newest[k] for k in ("open", "high", "low", "close")}
    times = [c["time"] for c in data["candles"]]
    assert times == sorted(set(times)) and len(times) > 100
    # the markers are the fills decided on the bars drawn, as of the data's read (a fill may land after it)
    expected = sorted((bar // 1000, f["side"], f["price"]) for f in fills
                      if (bar := bar_time_of(f["client_order_id"])) is not None and bar // 1000 <= newest["time"])
    shown = sorted((m["time"], m["side"], m["price"]) for m in data["markers"])
    assert shown == expected[:len(shown)] and len(shown) >= len(expected) - 2 and shown
    assert len(data["equity"]) >= 1 and len(data["drawdown"]) == len(data["equity"])
    for chart in ("candles", "equity", "drawdown"):
        assert browser.find_elements(By.CSS_SELECTOR, f"#{chart} canvas"), chart


def test_a_new_fill_appears_on_the_dashboard_without_a_reload(stack, manual_ledger, browser, screenshots) -> None:
    login(browser, stack.api, stack.trade_key)
    live(browser)
    browser.execute_script("window.__sameDocument = 'yes'")
    coid = _order(stack, manual_ledger, stack.trade_key)
    wait_for(browser, lambda d: _row_status(d, coid) == "filled", f"order {coid} filled on the dashboard")
    assert browser.execute_script("return window.__sameDocument") == "yes"  # no reload happened
    assert browser.execute_script("return performance.getEntriesByType('navigation').length") == 1
    row = browser.find_element(By.CSS_SELECTOR, f'#orders-table tr[data-order="{coid}"]')
    assert manual_ledger in row.text and "BTC/USDT" in row.text and "buy" in row.text


def test_a_lost_live_connection_shows_reconnecting_and_resumes(stack, manual_ledger, second_api, browser,
                                                               screenshots) -> None:
    login(browser, second_api.url, stack.trade_key)
    live(browser)
    browser.execute_script("window.__sameDocument = 'yes'")
    second_api.stop()  # the server goes away, and with it the event stream
    wait_for(browser, lambda d: d.find_element(By.ID, "live-state").text == "reconnecting…", "reconnecting", 30)
    badge = browser.find_element(By.ID, "live-state")
    assert badge.is_displayed() and "reconnecting" in badge.get_attribute("class")
    shoot(browser, screenshots / "dashboard-reconnecting.png")
    coid = _order(stack, manual_ledger, stack.trade_key)  # happens while the browser cannot hear about it
    second_api.start()  # same port: EventSource reconnects by itself
    live(browser)
    wait_for(browser, lambda d: _row_status(d, coid) == "filled", "the fill made while disconnected")
    coid = _order(stack, manual_ledger, stack.trade_key)  # and the stream goes on after the reconnect
    wait_for(browser, lambda d: _row_status(d, coid) == "filled", "a fill after the reconnect")
    assert browser.execute_script("return window.__sameDocument") == "yes"
