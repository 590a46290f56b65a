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

from kubetrade.localstack.servers import free_port
from kubetrade.localstack.servers.processes import ManagedProcess
from kubetrade.localstack.services import kubetrade_argv
from tests.api.conftest import PEPPER, make_key

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


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("console-stack")
    state = work / "state"
    # COLUMNS: rich wraps at 80 columns without a terminal; a person's terminal shows each line whole
    env = {**os.environ, "KUBETRADE_API_KEY_PEPPER": PEPPER, "COLUMNS": "250"}
    env.pop("KUBECONFIG", None)
    env.pop("KUBERNETES_SERVICE_HOST", None)
    up = ManagedProcess("kubetrade-up", kubetrade_argv(
        "up", "-f", str(RESOURCES), "--state-dir", str(state), "--api-port", "0", "--live-days", "2",
        "--speed", "300", "--population", "32", "--generations", "2", "--max-evolved", "2"),
        work / "up.out", env=env)
    up.start()
    try:
        up.wait_ready(lambda: "/console/" in up.log_path.read_text(errors="replace"), timeout=600, interval=0.5)
        endpoints = json.loads((state / "endpoints.json").read_text())
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
    finally:
        up.stop(timeout=90, sig=signal.SIGINT)


class SecondApi:
    """The console's application served by this process over the stack's NATS and database."""

    def __init__(self, stack: Stack) -> None:
        from kubetrade.api import create_app
        from tests.api.conftest import settings_for

        self.stack = stack
        self.port = free_port()
        self.settings = settings_for(stack.dsn, stack.nats, namespace="default", alert_evaluation=False)
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
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition, message=f"waited for {what}")


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
            and not re.search(r"/console/live .*(ERR_|net::)", e["message"])]
