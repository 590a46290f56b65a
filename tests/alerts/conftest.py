"""The alert delivery stack of the tests, every part real, on loopback.

* two real Alertmanagers (Debian's 0.25) in one gossip cluster, configured by the chart: the
  config is what ``helm template`` renders with ``alerting.alertmanager.enabled`` (values
  pointing the channels at the local providers), written into its final form by the real
  ``kubetrade alertmanager-config render`` - what the chart's init container runs - from a
  folder laid out like the mounted Secret;
* the kubetrade API (real uvicorn) with its evaluator, dispatcher and SMS notifier, over a
  database and a NATS server of the module's own;
* the providers of :mod:`tests.alerts.providers` (Slack, Discord, Telegram, Twilio, a
  webhook) and a real SMTP server with STARTTLS and AUTH, its certificate from a test CA.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetrade.api import create_app
from kubetrade.localstack.servers import NatsServer, PostgresServer
from kubetrade.localstack.servers.processes import ManagedProcess, free_port
from kubetrade.storage import migrate
from kubetrade_testbed.pki import CertificateAuthority
from tests.alerts.providers import Providers, SmtpServer
from tests.api.conftest import make_key, settings_for
from tests.chart.conftest import CHART, Helm, _script_output
from tests.observability.conftest import _binary
from tests.support.server import serving

REPO = Path(__file__).resolve().parents[2]
RECEIVER_TOKEN = "receiver-" + uuid.uuid4().hex
SMTP_USER, SMTP_PASSWORD = "kubetrade-alerts@example.org", "smtp-" + uuid.uuid4().hex[:12]
SMS_TO = ["+4915112345678", "+4915187654321"]


def http_json(url: str, data: Any = None, method: str | None = None) -> Any:
    req = urllib.request.Request(url, data=None if data is None else json.dumps(data).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def until(predicate: Any, timeout: float = 120.0, what: str = "condition", every: float = 0.25) -> Any:
    """Poll until truthy (a bound on a hang, not a timing claim)."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(every)


class Alertmanager:
    """One replica; its storage survives a restart (the notification log is on disk, alerts are not)."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = free_port()
        self.cluster_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.peers: list[Alertmanager] = []
        self.process: ManagedProcess | None = None
        self.config = self.workdir / "alertmanager.yml"

    def start(self) -> None:
        argv = [_binary("prometheus-alertmanager"), f"--config.file={self.config}",
                f"--storage.path={self.workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
                f"--cluster.listen-address=127.0.0.1:{self.cluster_port}",
                f"--cluster.advertise-address=127.0.0.1:{self.cluster_port}", "--cluster.settle-timeout=2s",
                "--cluster.peer-timeout=3s", "--log.level=debug",
                *(f"--cluster.peer=127.0.0.1:{p.cluster_port}" for p in self.peers)]
        self.process = ManagedProcess(f"alertmanager-{self.name}", argv, self.workdir / "alertmanager.log")
        self.process.start()
        self.process.wait_ready(lambda: http_json(f"{self.url}/api/v2/status") is not None, timeout=60)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def alerts(self, alertname: str | None = None) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = http_json(f"{self.url}/api/v2/alerts")
        return [a for a in got if alertname in (None, a["labels"].get("alertname"))]

    def metric(self, name: str, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total

    def log(self) -> str:
        path = self.workdir / "alertmanager.log"
        return path.read_text() if path.exists() else ""


class Stack:
    """Everything an alert passes through, for one test module."""

    def __init__(self, tmp: Path, dsn: str, nats: NatsServer, helm: Helm, **api_overrides: Any) -> None:
        self.tmp = tmp
        self.dsn = dsn
        self.nats = nats
        self.helm = helm
        self.providers = Providers()
        self.ca = CertificateAuthority(tmp / "pki")
        cert, key = self.ca.issue("smtp", "127.0.0.1", server=True, hosts=("127.0.0.1",))
        self.smtp = SmtpServer(cert, key, SMTP_USER, SMTP_PASSWORD)
        self.secrets = tmp / "secret-kubetrade-alerting"
        self.write_secrets()
        self.ams = [Alertmanager(tmp, "a"), Alertmanager(tmp, "b")]
        self.ams[0].peers, self.ams[1].peers = [self.ams[1]], [self.ams[0]]
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.api_overrides = api_overrides
        self._api: contextlib.ExitStack | None = None
        self.app: Any = None
        self.key = make_key(dsn, ["read", "trade", "admin"], "alerts-tests")[1]
        self.render_config()

    # --- the Secret and the chart's configuration ---------------------------------------------

    def write_secrets(self, **override: str | None) -> None:
        """The mounted Secret: one file per key (None removes a key)."""
        p = self.providers
        values: dict[str, str | None] = {
            "receiverToken": RECEIVER_TOKEN, "smtpPassword": SMTP_PASSWORD,
            "smtpCa": self.ca.cert_path.read_text(),
            "slackWebhookUrl": f"{p.url}{p.slack.secret_path}",
            "discordWebhookUrl": f"{p.url}{p.discord.path}",
            "telegramBotToken": p.telegram.token,
            "webhookUrl": f"{p.url}{p.webhook.path}",
        }
        values.update(override)
        self.secrets.mkdir(parents=True, exist_ok=True)
        for k, v in values.items():
            path = self.secrets / k
            if v is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(v)  # as `kubectl create secret --from-literal` stores it: no newline

    def chart_values(self) -> list[str]:
        p = self.providers
        sets = [
            "alerting.alertmanager.enabled=true",
            *(f"alerting.channels.{c}.enabled=true" for c in ("email", "slack", "discord", "telegram", "webhook",
                                                               "sms")),
            f"alerting.channels.email.smarthost=127.0.0.1:{self.smtp.port}",
            "alerting.channels.email.to=trader@example.org", "alerting.channels.email.from=kubetrade@example.org",
            f"alerting.channels.email.authUsername={SMTP_USER}", "alerting.channels.email.caKey=smtpCa",
            f"alerting.channels.telegram.chatId={p.telegram.chat_id}", f"alerting.channels.telegram.apiUrl={p.url}",
            f"alerting.secretsPath={self.secrets}", f"alerting.receiverUrl={self.api_url}",
            "alerting.routing.groupWait=1s", "alerting.routing.groupInterval=2s",
        ]
        for route in ("critical", "warning", "info", "userAlerts"):
            sets += [f"alerting.routing.{route}.groupWait=1s", f"alerting.routing.{route}.groupInterval=2s"]
        return sets

    def chart_config(self) -> str:
        """Alertmanager's configuration as the chart renders it (the ConfigMap's one file)."""
        args = ["template", "kt", str(CHART), "--namespace", "kubetrade", "-s", "templates/alertmanager.yaml",
                "--set-string", f"alerting.channels.sms.from={self.providers.twilio.sender}"]
        for s in self.chart_values():
            args += ["--set", s]
        docs = [d for d in yaml.safe_load_all(self.helm.run(*args).stdout) if d]
        config: str = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["alertmanager.yml"]
        return config

    def render_config(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        """What the init container does: ``kubetrade alertmanager-config render`` from the Secret's folder."""
        template = self.tmp / "template" / "alertmanager.yml"
        template.parent.mkdir(parents=True, exist_ok=True)
        template.write_text(self.chart_config())
        out = self.tmp / "rendered" / "alertmanager.yml"
        proc = subprocess.run([sys.executable, "-m", "kubetrade.cli", "alertmanager-config", "render",
                               f"--template={template}", f"--secrets={self.secrets}", f"--out={out}"],
                              capture_output=True, text=True, timeout=120)
        if check:
            assert proc.returncode == 0, proc.stderr
            for am in self.ams:
                am.config.write_text(out.read_text())
        return proc

    # --- processes ----------------------------------------------------------------------------

    def start_alertmanagers(self) -> None:
        for am in self.ams:
            am.start()
        until(lambda: all(len(http_json(f"{am.url}/api/v2/status")["cluster"]["peers"]) == 2 for am in self.ams),
              timeout=60, what="the two Alertmanagers joined one cluster")

    def settings(self, **overrides: Any) -> Any:
        t = self.providers.twilio
        base: dict[str, Any] = dict(
            alertmanager_urls=[am.url for am in self.ams], alert_receiver_token=RECEIVER_TOKEN,
            twilio_account_sid=t.account_sid, twilio_auth_token=t.auth_token, twilio_api_url=self.providers.url,
            sms_from=t.sender, sms_to=list(SMS_TO), sms_max_attempts=4, namespace="alerts",
        )
        base.update(self.api_overrides)
        base.update(overrides)
        return settings_for(self.dsn, self.nats.url, **base)

    def start_api(self, **overrides: Any) -> None:
        """Serve the API (on the same port each time: Alertmanager's webhooks point at it)."""
        stack = contextlib.ExitStack()
        self.app = create_app(self.settings(**overrides))
        stack.enter_context(serving(self.app, port=self.api_port))
        self._api = stack

    def restart_api(self, **overrides: Any) -> None:
        self.stop_api()
        self.start_api(**overrides)

    def stop_api(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    def api(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        resp = httpx.request(method, self.api_url + path, json=body, headers={"X-API-Key": self.key}, timeout=30)
        return resp

    def close(self) -> None:
        self.stop_api()
        for am in self.ams:
            am.stop()
        self.smtp.close()
        self.providers.close()


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    binary = _script_output("KUBETRADE_HELM_BIN", "build-helm.sh") / "helm"
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def alert_db(pg_server: PostgresServer) -> str:
    dsn = pg_server.create_database(f"kt_alerts_{uuid.uuid4().hex[:8]}")
    migrate.apply(dsn)
    return dsn


@pytest.fixture(scope="module")
def alert_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("alert-nats"))
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, alert_db: str, alert_nats: NatsServer, helm: Helm
          ) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("alerts"), alert_db, alert_nats, helm)
    try:
        s.start_alertmanagers()
        s.start_api()
        yield s
    finally:
        s.close()
