"""The console tests' world: a real ``kubetrade up`` and a real browser.

``stack``: the CLI itself (``kubetrade up``) on the runtime tests' resources
(``tests/runtime/e2e_resources``: three paper strategies trading replayed real candles, three
refused for a reason, a Goal that evolves two more, two RiskPolicies) - real NATS, PostgreSQL,
risk manager, paper executor, runners, replay collector and the API that serves the console.
The replay is slowed down (``--speed``) so that the runners keep trading while the tests run.
Keys are made straight in its database (an admin and a read-only one) next to the read+trade
key ``kubetrade up`` wrote to ``.kubetrade/api-key``.

``second_api``: the same application served by this test process over the stack's NATS and
database, which a test can stop and start again on the same port (a lost live connection).

``browser``: Debian's Chromium, headless, driven by Selenium through Debian's chromedriver
(``scripts/testbed/install-chromium.sh`` installs both), with a fresh profile and the flags that
keep it from calling out on this closed network.

Screenshots of each page go to ``KUBETRADE_CONSOLE_SCREENSHOTS`` when it is set
(``scripts/console-screenshots.sh`` points it at ``docs/console``), else to a temp folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.conftest import PEPPER, make_key

from kubetrade.localstack.servers import free_port
from kubetrade.localstack.servers.processes import ManagedProcess
from kubetrade.localstack.services import kubetrade_argv
from kubetrade.messaging import auth

RESOURCES = Path(__file__).resolve().parents[1] / "runtime" / "e2e_resources"
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1440,1000", "--force-device-scale-factor=1")


@dataclass
class Stack:
    api: str
    nats: str
    dsn: str
    state: Path
    up: ManagedProcess
    trade_key: str
    """What ``kubetrade up`` wrote to .kubetrade/api-key (read, trade)."""
    admin_key: str
    read_key: str

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.api, headers={"X-API-Key": key or self.admin_key}, timeout=30)

    def output(self) -> str:
        return self.up.log_path.read_text(errors="replace")


def _attached(state: Path) -> Stack:
    """A stack someone started by hand with the same options (``KUBETRADE_CONSOLE_ATTACH=<state dir>``,
    for working on the tests; never used by scripts/test.sh): nothing is started or stopped here."""
    endpoints = json.loads((state / "endpoints.json").read_text())
    auth.use_local(json.loads((state / "nats-users.json").read_text()))
    up = ManagedProcess("kubetrade-up", ["true"], state.parent / "up.out")
    return Stack(endpoints["api"], endpoints["nats"], endpoints["database"], state, up,
                 (state / "api-key").read_text().strip(),
                 make_key(endpoints["database"], ["read", "trade", "admin"], "console-admin")[1],
                 make_key(endpoints["database"], ["read"], "console-viewer")[1])


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if os.environ.get("KUBETRADE_CONSOLE_ATTACH"):
        yield _attached(Path(os.environ["KUBETRADE_CONSOLE_ATTACH"]))
        return
    work = tmp_path_factory.mktemp("console-stack")
    state = work / "state"
    # COLUMNS: rich wraps at 80 columns without a terminal; a person's terminal shows each line whole
    env = {**os.environ, "KUBETRADE_API_KEY_PEPPER": PEPPER, "COLUMNS": "250"}
    env.pop("KUBECONFIG", None)
    env.pop("KUBERNETES_SERVICE_HOST", None)
    up = ManagedProcess("kubetrade-up", kubetrade_argv(
        "up", "-f", str(RESOURCES), "--state-dir", str(state), "--api-port", "0", "--live-days", "3",
        "--speed", "300", "--population", "32", "--generations", "2", "--max-evolved", "2"),
        work / "up.out", env=env)
    up.start()
    try:
        up.wait_ready(lambda: "/console/" in up.log_path.read_text(errors="replace"), timeout=600, interval=0.5)
        endpoints = json.loads((state / "endpoints.json").read_text())
        # NATS has one identity per role under kubetrade up: this process's clients (the second API, the
        # manual ledger's setup) connect with the roles' passwords it wrote, as local tools do
        auth.use_local(json.loads((state / "nats-users.json").read_text()))
        trade_key = (state / "api-key").read_text().strip()
        s = Stack(endpoints["api"], endpoints["nats"], endpoints["database"], state, up, trade_key,
                  make_key(endpoints["database"], ["read", "trade", "admin"], "console-admin")[1],
                  make_key(endpoints["database"], ["read"], "console-viewer")[1])
        deadline = time.monotonic() + 120
        while True:  # the API answers and the runners have filled something
            try:
                with s.client() as c:
                    if c.get("/health").status_code == 200 and c.get("/api/v1/trades", params={"limit": 1}).json():
                        break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, s.output()[-3000:]
            time.sleep(0.5)
        yield s
        # Ctrl-C with a console page still open (an event stream that never ends by itself): the stop
        # is clean and bounded, the summary written.
        with _open_stream(s):
            up.send_signal(signal.SIGINT)
            assert up.proc is not None and up.proc.wait(120) == 0, s.output()[-3000:]
        assert "stopped cleanly" in s.output() and (state / "summary.json").is_file()
    finally:
        up.stop(timeout=90, sig=signal.SIGINT)


class _open_stream:
    """A logged-in client holding /console/live open (in a thread) while the block runs."""

    def __init__(self, s: Stack) -> None:
        import threading

        self.s = s
        self.opened = threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        with httpx.Client(base_url=self.s.api, timeout=30) as c:
            page = c.get("/console/login")
            token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
            c.post("/console/login", data={"login_token": token, "api_key": self.s.read_key})
            try:
                with c.stream("GET", "/console/live", params={"page": "dashboard"}, timeout=None) as stream:
                    for _ in stream.iter_lines():
                        self.opened.set()
            except httpx.HTTPError:
                pass  # the server went away: that is the point

    def __enter__(self) -> None:
        self.thread.start()
        assert self.opened.wait(30), "the event stream did not open"

    def __exit__(self, *exc: object) -> None:
        self.thread.join(30)


MANUAL = "console-manual"
"""The strategy the live tests place their small manual orders for: its own ledger and RiskPolicy, so
they never run into the runners' limits (nor change them)."""


@pytest.fixture(scope="session")
def manual_ledger(stack: Stack) -> str:
    """A ledger and a RiskPolicy for manual orders, set up as ``kubetrade executor allocate`` and the
    operator would (the risk manager picks both up by itself)."""
    import asyncio

    async def setup() -> None:
        import nats

        from kubetrade.ledger import allocation, connection
        from kubetrade.localstack.services import publish_policy, risk_metrics

        nc = await nats.connect(stack.nats, **auth.credentials("operator"))  # as the operator publishes policies
        try:
            await publish_policy(nc, "default", MANUAL, {"strategyLimits": {"maxPositionPct": 0.9}})
            conn = await connection.connect(stack.dsn)
            try:
                await allocation.allocate(conn, "paper", MANUAL, 5000.0, "default", MANUAL, "USDT")
            finally:
                await conn.close()
            deadline = time.monotonic() + 60
            while True:
                reply = await risk_metrics(nc)
                if any(MANUAL in p.strategies for p in reply.portfolios):
                    return
                assert time.monotonic() < deadline, "the risk manager did not pick up the manual ledger"
                await asyncio.sleep(0.3)
        finally:
            await nc.drain()

    asyncio.run(setup())
    return MANUAL


class SecondApi:
    """The console's application served by this process over the stack's NATS and database."""

    def __init__(self, stack: Stack) -> None:
        from tests.api.conftest import settings_for

        from kubetrade.api import create_app

        self.stack = stack
        self.port = free_port()
        # the stack API's own rate limits: two processes with different limits leasing from the same
        # database window would starve each other's clients
        self.settings = settings_for(stack.dsn, stack.nats, namespace="default", alert_evaluation=False,
                                     rate_limit_per_key=600, rate_limit_per_address=1200)
        self.create_app = create_app
        self.server: Any = None
        self.thread: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import threading

        import uvicorn

        config = uvicorn.Config(self.create_app(self.settings), host="127.0.0.1", port=self.port, log_config=None,
                                access_log=False, lifespan="on", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self.server.force_exit = True  # open event streams must not hold the stop
            self.thread.join(30)
            assert not self.thread.is_alive()
            self.server = None


@pytest.fixture
def second_api(stack: Stack) -> Iterator[SecondApi]:
    api = SecondApi(stack)
    api.start()
    yield api
    api.stop()


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver, "chromium and chromedriver are installed by scripts/testbed/install-chromium.sh"
    return browser, driver


@pytest.fixture
def browser(chromium: tuple[str, str], tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium[0]
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromium[1], log_output=str(tmp_path / "chromedriver.log")),
                              options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("KUBETRADE_CONSOLE_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def login(driver: Any, base: str, key: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/console/login")
    field = driver.find_element(By.ID, "api_key")
    field.send_keys(key)
    field.submit()
    wait_for(driver, lambda d: d.current_url.rstrip("/").endswith("/console"), "the dashboard after login")


def wait_for(driver: Any, condition: Any, what: str, timeout: float = 60.0) -> Any:
    from selenium.common.exceptions import (
        NoAlertPresentException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    # a live panel may be swapped between finding an element and reading it: look again
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException,
                                             NoAlertPresentException)
                         ).until(condition, message=f"waited for {what}")


def live(driver: Any) -> None:
    """The page's event stream is open (its badge says so)."""
    wait_for(driver, lambda d: d.find_element("id", "live-state").text == "live", "the live stream")


def no_other_host(driver: Any, base: str) -> list[str]:
    """Every resource the page loaded, if any came from another origin (there must be none)."""
    entries = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [e for e in entries if not e.startswith(base)]


def console_errors(driver: Any) -> list[str]:
    """Errors the page logged (a script error, a refused resource, a CSP violation)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
            and not re.search(r"/console/live .*(ERR_|net::)", e["message"])
            and "the server responded with a status of 422" not in e["message"]]  # a refused form: expected


def acting(driver: Any, css: str, confirm: bool = False) -> None:
    """Click a control whose success loads the page again, and wait for the new page's live stream."""
    driver.execute_script("window.__beforeAction = true")
    click(driver, css)
    if confirm:
        wait_for(driver, lambda d: d.switch_to.alert, "the confirmation", 10).accept()
    wait_for(driver, lambda d: d.execute_script("return window.__beforeAction") is None, f"the page after {css}")
    live(driver)


def click(driver: Any, css: str, what: str = "") -> None:
    """Click an element that a live panel swap may replace at any moment (find it again if so)."""
    from selenium.common.exceptions import StaleElementReferenceException

    def once(d: Any) -> bool:
        try:
            d.find_element("css selector", css).click()
            return True
        except StaleElementReferenceException:
            return False

    wait_for(driver, once, what or css, timeout=30)


def snapshot(driver: Any, css: str) -> list[dict[str, Any]]:
    """The elements matching ``css`` read in one script run - text, data attributes and the text of
    their ``[data-col]``/``dt``+``dd`` parts - so a live swap cannot change the page mid-read."""
    return list(driver.execute_script(
        """return [...document.querySelectorAll(arguments[0])].map(e => ({
             text: e.innerText, data: Object.assign({}, e.dataset),
             cols: Object.fromEntries([...e.querySelectorAll('[data-col]')].map(c => [c.dataset.col, c.innerText])),
             terms: Object.fromEntries([...e.querySelectorAll('dt')].map(t => [t.innerText,
                      t.nextElementSibling ? t.nextElementSibling.innerText : null]))}))""", css))


def shoot(driver: Any, path: Path) -> None:
    """A screenshot of the whole page (the window grown to the document's height for it)."""
    width, height = driver.get_window_size()["width"], driver.get_window_size()["height"]
    full = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, min(max(full + 120, height), 5000))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(width, height)
