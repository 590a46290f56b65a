"""What a person does in the console, in a real browser: each action lands where the API would put
it (the resource store, the alert rules, the backtests) and a refusal is shown next to its field;
a read-only key is offered no write control and cannot use one."""

from __future__ import annotations

import time

import psycopg
from psycopg.rows import dict_row
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from tests.console.conftest import acting, click, console_errors, live, login, shoot, wait_for


def _fill(driver, form_id: str, values: dict[str, str]) -> None:
    form = driver.find_element(By.ID, form_id)
    for name, value in values.items():
        field = form.find_element(By.NAME, name)
        if field.tag_name == "select":
            Select(field).select_by_value(value)
        elif field.get_attribute("type") == "checkbox":
            if field.is_selected() != (value == "on"):
                field.click()
        else:
            field.clear()
            field.send_keys(value)


def _submit(driver, form_id: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f"#{form_id} button[type=submit]").click()


def _post_from_page(driver, path: str, body: str) -> int:
    """A form post made by the page's own script, with its session cookie and CSRF token."""
    return driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
           const csrf = document.querySelector('input[name=csrf]').value;
           fetch(arguments[0], {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                                body: 'csrf=' + encodeURIComponent(csrf) + '&' + arguments[1]})
             .then(r => done(r.status)).catch(e => done(String(e)));""", path, body)


def test_a_read_only_key_sees_no_write_control_and_cannot_use_one(stack, browser) -> None:
    login(browser, stack.api, stack.read_key)
    for path in ("/console/", "/console/strategies", "/console/strategies/btc-wide", "/console/goals",
                 "/console/alerts", "/console/datasources"):
        browser.get(f"{stack.api}{path}")
        live(browser)
        assert browser.find_elements(By.CSS_SELECTOR, ".write, [data-action]") == [], path
        assert browser.find_elements(By.CSS_SELECTOR, "form[method=post]:not([action='/console/logout'])") == [], path
    with stack.client() as api:
        before = api.get("/api/v1/strategies/btc-wide").json()["spec"]
    assert _post_from_page(browser, "/console/strategies/btc-wide/pause", "") == 403
    assert _post_from_page(browser, "/console/strategies/btc-wide/backtest", "initialCash=100") == 403
    assert _post_from_page(browser, "/console/alerts", "name=x&metric=price&target=binance:BTC/USDT&operator=%3E"
                                                       "&threshold=1") == 403
    assert _post_from_page(browser, "/console/datasources/replay-binance/stop", "") == 403
    with stack.client() as api:
        assert api.get("/api/v1/strategies/btc-wide").json()["spec"] == before
        assert api.get("/api/v1/collectors/replay-binance").json()["spec"].get("suspend") is not True
    with psycopg.connect(stack.dsn) as db:
        assert db.execute("SELECT count(*) FROM alert_rules WHERE name = 'x'").fetchone()[0] == 0


def test_an_alert_rule_made_in_the_console_is_stored_and_fires(stack, browser, screenshots) -> None:
    login(browser, stack.api, stack.trade_key)
    browser.get(f"{stack.api}/console/alerts")
    live(browser)
    # Bad input first: the model's refusal, next to its field, and nothing stored.
    _fill(browser, "alert-form", {"name": "btc above one", "metric": "price", "target": "BTC/USDT",
                                  "operator": ">", "threshold": "NaN"})
    _submit(browser, "alert-form")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#alert-form [data-field="threshold"]'),
             "the threshold's error")
    assert "finite" in browser.find_element(By.CSS_SELECTOR, '#alert-form [data-field="threshold"]').text
    shoot(browser, screenshots / "alerts-form-error.png")
    _fill(browser, "alert-form", {"threshold": "1"})
    _submit(browser, "alert-form")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#alert-form [data-field="target"]'),
             "the target's error")
    assert "exchange:BASE/QUOTE" in browser.find_element(By.CSS_SELECTOR, '#alert-form [data-field="target"]').text
    with psycopg.connect(stack.dsn) as db:
        assert db.execute("SELECT count(*) FROM alert_rules WHERE name = 'btc above one'").fetchone()[0] == 0

    _fill(browser, "alert-form", {"target": "binance:BTC/USDT", "cooldownSeconds": "60", "severity": "info"})
    _submit(browser, "alert-form")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#rules-table tr[data-rule="btc above one"]'),
             "the new rule in the list")
    with psycopg.connect(stack.dsn, row_factory=dict_row) as db:
        rule = db.execute("SELECT * FROM alert_rules WHERE name = 'btc above one'").fetchone()
    assert (rule["metric"], rule["target"], rule["operator"], rule["threshold"], rule["severity"]) == \
        ("price", "binance:BTC/USDT", ">", 1.0, "info")
    live(browser)
    # The evaluator (the stack's API) sees the replayed price above 1 and fires; the page hears of it.
    wait_for(browser, lambda d: "firing" in d.find_element(
        By.CSS_SELECTOR, '#rules-table tr[data-rule="btc above one"]').text, "the rule firing", timeout=120)
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#history-table tr[data-name="btc above one"]'),
             "the firing in the history")
    with psycopg.connect(stack.dsn) as db:
        fired = db.execute("SELECT status FROM alert_history WHERE rule_id = %s", (rule["id"],)).fetchall()
    assert ("firing",) in fired
    shoot(browser, screenshots / "alerts.png")

    # Silence, edit and delete it, each through the API's own route.
    acting(browser, '#rules-table tr[data-rule="btc above one"] [data-action="silence"]')
    wait_for(browser, lambda d: "silenced" in d.find_element(
        By.CSS_SELECTOR, '#rules-table tr[data-rule="btc above one"]').text, "silenced")
    click(browser, '#rules-table tr[data-rule="btc above one"] [data-action="edit"]')
    wait_for(browser, lambda d: "edit=" in d.current_url, "the edit form")
    _fill(browser, "alert-form", {"threshold": "2.5", "enabled": "on"})
    _submit(browser, "alert-form")
    wait_for(browser, lambda d: "edit=" not in d.current_url, "saved")
    with psycopg.connect(stack.dsn, row_factory=dict_row) as db:
        edited = db.execute("SELECT threshold, enabled FROM alert_rules WHERE id = %s", (rule["id"],)).fetchone()
    assert edited == {"threshold": 2.5, "enabled": True}
    acting(browser, '#rules-table tr[data-rule="btc above one"] [data-action="delete"]', confirm=True)
    wait_for(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, '#rules-table tr[data-rule="btc above one"]'),
             "deleted")
    with psycopg.connect(stack.dsn) as db:
        assert db.execute("SELECT count(*) FROM alert_rules WHERE id = %s", (rule["id"],)).fetchone()[0] == 0
    assert console_errors(browser) == []


def test_a_backtest_started_in_the_console_shows_its_result(stack, browser, screenshots) -> None:
    login(browser, stack.api, stack.trade_key)
    browser.get(f"{stack.api}/console/strategies/btc-wide")
    live(browser)
    _fill(browser, "backtest-form", {"initialCash": "-5"})
    _submit(browser, "backtest-form")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#backtest-form [data-field="initialCash"]'),
             "the cash's error")
    assert "greater than 0" in browser.find_element(By.CSS_SELECTOR, '#backtest-form [data-field="initialCash"]').text
    _fill(browser, "backtest-form", {"initialCash": "5000"})
    _submit(browser, "backtest-form")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#panel-backtests article"), "the backtest listed")
    live(browser)
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#panel-backtests article.status-succeeded table"),
             "the backtest's result", timeout=300)
    result = browser.find_element(By.CSS_SELECTOR, "#panel-backtests article.status-succeeded")
    with psycopg.connect(stack.dsn, row_factory=dict_row) as db:
        row = db.execute("SELECT id, result, request FROM backtests WHERE strategy = 'btc-wide' "
                         "ORDER BY created_at DESC LIMIT 1").fetchone()
    assert result.get_attribute("data-backtest") == str(row["id"])
    assert row["request"]["initialCash"] == 5000
    trades = int(row["result"]["BTC/USDT"]["trades"])
    assert f"{trades}" in result.find_element(By.CSS_SELECTOR, "tbody tr").text
    shoot(browser, screenshots / "strategy-backtest.png")


def test_pause_and_resume_go_through_the_strategy_api(stack, browser) -> None:
    login(browser, stack.api, stack.trade_key)
    browser.get(f"{stack.api}/console/strategies/eth-fast")
    live(browser)
    acting(browser, '[data-action="pause"]')
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-action="resume"]'), "the resume button")
    with stack.client() as api:
        assert api.get("/api/v1/strategies/eth-fast").json()["spec"]["paused"] is True
    acting(browser, '[data-action="resume"]')
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-action="pause"]'), "the pause button")
    with stack.client() as api:
        assert api.get("/api/v1/strategies/eth-fast").json()["spec"]["paused"] is False
    # Promote to live is refused by the API (no credentials anywhere): its sentence is shown, nothing changes.
    click(browser, '[data-action="promote"]')
    wait_for(browser, lambda d: d.switch_to.alert, "the confirmation", 10).accept()
    wait_for(browser, lambda d: d.find_element(By.ID, "flash").text, "the refusal")
    assert "promote refused" in browser.find_element(By.ID, "flash").text
    with stack.client() as api:
        assert api.get("/api/v1/strategies/eth-fast").json()["spec"]["mode"] == "paper"


def test_collectors_are_made_edited_stopped_and_deleted_in_the_console(stack, browser, screenshots) -> None:
    login(browser, stack.api, stack.admin_key)
    browser.get(f"{stack.api}/console/datasources")
    live(browser)
    _fill(browser, "collector-form", {"name": "replay-extra", "source": "replay", "provider": "bundled",
                                      "exchange": "binance", "symbols": "btc", "timeframes": "5m"})
    _submit(browser, "collector-form")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#collector-form [data-field="symbols"]'),
             "the symbols' error")
    shoot(browser, screenshots / "datasources-form-error.png")
    with stack.client() as api:
        assert api.get("/api/v1/collectors/replay-extra").status_code == 404
    _fill(browser, "collector-form", {"symbols": "BTC/USDT, ETH/USDT"})
    _submit(browser, "collector-form")
    row = '#collectors-table tr[data-collector="replay-extra"]'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the new collector")
    with stack.client() as api:
        made = api.get("/api/v1/collectors/replay-extra").json()
    assert made["spec"]["symbols"] == ["BTC/USDT", "ETH/USDT"] and made["spec"]["replay"]["speed"] == 60

    acting(browser, f'{row} [data-action="stop"]')
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'{row} [data-action="start"]'), "stopped")
    with stack.client() as api:
        assert api.get("/api/v1/collectors/replay-extra").json()["spec"]["suspend"] is True
    click(browser, f'{row} [data-action="edit"]')
    wait_for(browser, lambda d: "edit=replay-extra" in d.current_url, "the edit form")
    _fill(browser, "collector-form", {"backfillDays": "3"})
    _submit(browser, "collector-form")
    wait_for(browser, lambda d: "edit=" not in d.current_url, "saved")
    with stack.client() as api:
        assert api.get("/api/v1/collectors/replay-extra").json()["spec"]["backfillDays"] == 3
    acting(browser, f'{row} [data-action="delete"]', confirm=True)
    wait_for(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, row), "deleted")
    time.sleep(0.2)
    with stack.client() as api:
        assert api.get("/api/v1/collectors/replay-extra").status_code == 404
    assert console_errors(browser) == []
