"""The dashboard follows the platform live: a new fill appears without a reload, and a lost event
stream shows "reconnecting" and resumes by itself."""

from __future__ import annotations

import uuid

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
