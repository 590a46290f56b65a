"""Each console page in a real browser against a running ``kubetrade up``: what it shows is what
the records say (the database, the API, the risk manager), nothing comes from another host, the
page logs no error, and a screenshot is kept."""

from __future__ import annotations

import re

import psycopg
from psycopg.rows import dict_row
from selenium.webdriver.common.by import By
from tests.console.conftest import click, console_errors, live, login, no_other_host, shoot, snapshot, wait_for


def _number(text: str) -> float:
    return float(text.replace(",", "").replace("+", ""))


def _clean(driver, stack, name: str, screenshots) -> None:
    assert no_other_host(driver, stack.api) == []
    assert console_errors(driver) == []
    shoot(driver, screenshots / f"{name}.png")


def test_up_prints_the_console_and_its_first_page_works_with_the_printed_key(stack, browser, screenshots) -> None:
    out = stack.output()
    summary = []
    for line in out[out.index("where to look"):].splitlines():  # up to the first progress line
        if re.match(r"^\S*\d\d:\d\d:\d\d", line):
            break
        if line.strip():
            summary.append(line)
    console_line = next(line for line in summary if line.strip().startswith("console"))
    url = re.search(r"(http://\S+/console/)", console_line).group(1)
    assert url == f"{stack.api}/console/" and str(stack.state / "api-key") in console_line
    assert summary[-1] == console_line  # the summary ends with it

    browser.get(f"{stack.api}/console/login")
    assert browser.find_element(By.ID, "api_key").get_attribute("type") == "password"
    _clean(browser, stack, "login", screenshots)
    login(browser, stack.api, stack.trade_key)
    assert stack.trade_key not in browser.current_url
    live(browser)
    assert browser.find_element(By.ID, "scopes").text == "read, trade"
    cookies = {c["name"]: c for c in browser.get_cookies()}
    assert cookies["kt_session"]["httpOnly"] and cookies["kt_session"]["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""  # the page's scripts cannot read it


def test_dashboard_shows_equity_breakers_orders_and_collectors(stack, browser, screenshots) -> None:
    login(browser, stack.api, stack.admin_key)
    live(browser)
    with psycopg.connect(stack.dsn, row_factory=dict_row) as db:
        ledgers = db.execute("SELECT count(*) AS n, sum(capital) AS c FROM ledgers WHERE environment = 'paper'"
                             ).fetchone()
        newest = db.execute("SELECT client_order_id FROM orders ORDER BY id DESC LIMIT 15").fetchall()
    figures = snapshot(browser, '#panel-equity [data-environment="paper"]')[0]["terms"]
    assert int(figures["strategies"]) == ledgers["n"]
    assert _number(figures["capital"]) == round(ledgers["c"], 2)
    equity = _number(figures["equity"])
    assert abs(equity - ledgers["c"] - _number(figures["PnL all"])) < 0.02  # all = equity - capital
    assert 0.5 * ledgers["c"] < equity < 1.5 * ledgers["c"]
    assert not snapshot(browser, '#panel-equity [data-environment="live"]')  # none here

    shown = [r["data"]["order"] for r in snapshot(browser, "#orders-table tbody tr[data-order]")]
    assert set(shown) & {r["client_order_id"] for r in newest}  # the newest orders (more may have come since)
    policies = {r["data"].get("policy") for r in snapshot(browser, "#panel-breakers tr")}
    assert {"default", "one-at-a-time"} <= policies
    collector = snapshot(browser, '#panel-collectors tr[data-collector="replay-binance"]')[0]
    assert "Running" in collector["text"] or "Suspended" in collector["text"]
    # Refusals come with the risk manager's rule and reason (one-at-a-time refuses the second strategy).
    refused = wait_for(browser, lambda d: [r for r in snapshot(d, "#rejections-table tbody tr[data-order]")
                                           if r["cols"]["by"] == "risk manager"], "a refusal", timeout=300)
    assert refused[0]["cols"]["rule"] not in ("", "-") and len(refused[0]["cols"]["reason"]) > 10
    _clean(browser, stack, "dashboard", screenshots)


def test_leaderboard_sorts_and_shows_what_each_strategy_reported(stack, browser, screenshots) -> None:
    login(browser, stack.api, stack.admin_key)
    browser.get(f"{stack.api}/console/strategies")
    live(browser)
    with stack.client() as api:
        items = api.get("/api/v1/strategies", params={"limit": 100}).json()["items"]
    listed = {s["metadata"]["name"]: s for s in items}
    rows = {r["data"]["strategy"]: r for r in snapshot(browser, "#leaderboard tbody tr[data-strategy]")}
    assert set(rows) == set(listed)
    assert "Failed" in rows["bad-genome"]["text"] and "Paper" in rows["btc-wide"]["text"]

    def column(name: str) -> list[float]:
        cells = [r["cols"][name] for r in snapshot(browser, "#leaderboard tbody tr[data-strategy]")]
        return [_number(c) for c in cells if c != "-"]

    click(browser, 'a[data-sort="trades"]')
    wait_for(browser, lambda d: "sort=trades" in d.current_url, "sorted by trades")
    assert column("trades") == sorted(column("trades"), reverse=True) and len(column("trades")) >= 3
    click(browser, 'a[data-sort="trades"]')
    wait_for(browser, lambda d: "dir=asc" in d.current_url, "ascending")
    assert column("trades") == sorted(column("trades"))
    click(browser, 'a[data-sort="pnl"]')
    wait_for(browser, lambda d: "sort=pnl" in d.current_url, "sorted by PnL")
    live(browser)
    assert column("pnl") == sorted(column("pnl"), reverse=True)
    _clean(browser, stack, "strategies", screenshots)


def test_strategy_page_draws_candles_trades_and_curves(stack, browser, screenshots) -> None:
    login(browser, stack.api, stack.admin_key)
    browser.get(f"{stack.api}/console/strategies/btc-wide")
    live(browser)
    wait_for(browser, lambda d: d.execute_script("return document.body.dataset.charts") == "drawn", "the charts")
    for chart in ("candles", "equity", "drawdown"):
        assert browser.find_elements(By.CSS_SELECTOR, f"#{chart} canvas"), chart
    data = browser.execute_script("return JSON.parse(document.getElementById('chart-data').textContent)")
    from kubetrade.runner.intents import bar_time_of

    with psycopg.connect(stack.dsn, row_factory=dict_row) as db:
        fills = db.execute("SELECT client_order_id, side, price FROM fills WHERE strategy = 'btc-wide' "
                           "AND symbol = 'BTC/USDT' ORDER BY time, id").fetchall()
    assert len(data["candles"]) > 100 and data["markers"]
    # each fill sits on the bar its order was decided on (the runner's id names it), at its price
    # (the risk manager's stop orders carry no bar; under a replay their wall-clock time is off the chart)
    expected = sorted((bar // 1000, f["side"], f["price"]) for f in fills
                      if (bar := bar_time_of(f["client_order_id"])) is not None)
    shown = sorted((m["time"], m["side"], m["price"]) for m in data["markers"])
    assert shown == expected[:len(shown)] and len(shown) >= len(expected) - 2  # a fill may land between reads
    first, last = data["candles"][0]["time"], data["candles"][-1]["time"]
    assert all(first <= m["time"] <= last for m in data["markers"])
    rows = snapshot(browser, "#trades-table tbody tr[data-fill]")
    assert len(rows) >= min(len(fills), 200) - 5 and rows  # a fill or two may land between the reads
    compare = snapshot(browser, "#compare")[0]["text"]
    assert "backtest" in compare and "paper" in compare
    _clean(browser, stack, "strategy", screenshots)


def test_goals_page_shows_progress_sizing_and_the_evolution_verdicts(stack, browser, screenshots) -> None:
    login(browser, stack.api, stack.admin_key)
    browser.get(f"{stack.api}/console/goals")
    live(browser)
    with stack.client() as api:
        summary = next(g for g in api.get("/api/v1/goals/summary").json() if g["name"] == "monthly-8pct")
    shown = snapshot(browser, '[data-goal="monthly-8pct"] [data-figure="multiplier"]')[0]["text"]
    assert abs(float(shown) - summary["sizingMultiplier"]) < 0.05  # equity moves between the two reads
    assert snapshot(browser, '[data-goal="monthly-8pct"] [role=meter]')
    with psycopg.connect(stack.dsn, row_factory=dict_row) as db:
        run = db.execute("SELECT id, trials FROM evolution_runs WHERE goal = 'monthly-8pct'").fetchone()
        results = db.execute("SELECT strategy_name FROM evolution_results WHERE run_id = %s ORDER BY rank",
                             (run["id"],)).fetchall()
    summary_text = snapshot(browser, '[data-goal="monthly-8pct"] details.run summary')[0]["text"]
    assert f"{run['trials']} genomes tried" in summary_text
    verdicts = [r["data"]["result"] for r in snapshot(browser, '[data-goal="monthly-8pct"] table.verdicts tbody tr')]
    assert verdicts == [r["strategy_name"] for r in results] and verdicts
    _clean(browser, stack, "goals", screenshots)


def test_alerts_and_data_sources_pages_render(stack, browser, screenshots) -> None:
    login(browser, stack.api, stack.admin_key)
    browser.get(f"{stack.api}/console/alerts")
    live(browser)
    assert browser.find_element(By.ID, "alert-form")
    assert browser.find_element(By.ID, "history-table")
    _clean(browser, stack, "alerts", screenshots)
    browser.get(f"{stack.api}/console/datasources")
    live(browser)
    row = snapshot(browser, '#collectors-table tr[data-collector="replay-binance"]')[0]
    assert "replay/bundled" in row["text"] and "BTC/USDT" in row["text"]
    assert snapshot(browser, '#collectors-table tr[data-collector="replay-binance"] [data-action="stop"]')
    _clean(browser, stack, "datasources", screenshots)
