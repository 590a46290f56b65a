"""Alertmanager's configuration as the chart renders it: valid for amtool, routed by priority and by the
channels a rule names, and free of credentials until the pod renders them from the Secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubetrade.alerts.amconfig import ConfigError, render
from tests.alerts.conftest import RECEIVER_TOKEN, SMTP_PASSWORD, Stack
from tests.chart.conftest import Helm


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory, helm: Helm, alert_db: str, alert_nats) -> Stack:
    """The stack's configuration and Secret, without starting anything."""
    return Stack(tmp_path_factory.mktemp("config"), alert_db, alert_nats, helm)


def amtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["amtool", *map(str, args)], capture_output=True, text=True, timeout=60)


def test_the_chart_renders_a_valid_configuration_without_a_credential(offline: Stack) -> None:
    template = offline.chart_config()
    secrets = [p.read_text() for p in offline.secrets.iterdir()]
    leaked = [s for s in secrets if s.strip() and s.strip() in template]
    assert not leaked, "a Secret's value is in the ConfigMap"
    assert "kubetrade-secret:telegramBotToken" in template and "kubetrade-secret:discordWebhookUrl" in template
    rendered = offline.tmp / "rendered" / "alertmanager.yml"
    out = amtool("check-config", rendered)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "6 inhibit rules" in out.stdout and "8 receivers" in out.stdout
    config = yaml.safe_load(rendered.read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    # the rendered file has the values (it lives in the pod's memory emptyDir), the *_file fields stay files
    assert receivers["kubetrade-telegram"]["telegram_configs"][0]["bot_token"] == offline.providers.telegram.token
    assert receivers["kubetrade-slack"]["slack_configs"][0]["api_url_file"].endswith("/slackWebhookUrl")
    assert receivers["kubetrade-email"]["email_configs"][0]["auth_password_file"].endswith("/smtpPassword")
    ours = [h for r in receivers.values() for h in r.get("webhook_configs", []) if "/alerts/receiver/" in h["url"]]
    assert len(ours) == 7 and all(h["http_config"]["authorization"]["credentials_file"].endswith("/receiverToken")
                                  for h in ours)
    assert RECEIVER_TOKEN not in rendered.read_text() and SMTP_PASSWORD not in rendered.read_text()


@pytest.mark.parametrize(("labels", "receivers"), [
    # priority: critical reaches the phone; warning and info do not
    ("alertname=KubetradeCircuitBreakerTripped severity=critical",
     "kubetrade-record,kubetrade-sms,kubetrade-telegram,kubetrade-slack,kubetrade-email,kubetrade-webhook"),
    ("alertname=KubetradeLargeLoss severity=warning",
     "kubetrade-record,kubetrade-slack,kubetrade-telegram,kubetrade-email,kubetrade-webhook"),
    ("alertname=KubetradePromotedToLive severity=info",
     "kubetrade-record,kubetrade-discord,kubetrade-slack,kubetrade-webhook"),
    # a rule that names its channels gets exactly those, whatever its severity
    ("alertname=KubetradeUserAlert severity=info channels=email,sms", "kubetrade-record,kubetrade-email,kubetrade-sms"),
    ("alertname=KubetradeUserAlert severity=critical channels=telegram", "kubetrade-record,kubetrade-telegram"),
    # every channel it named is over its hourly limit: recorded, sent nowhere
    ("alertname=KubetradeUserAlert severity=warning channels=none", "kubetrade-record,kubetrade-null"),
    ("alertname=SomethingElse severity=none", "kubetrade-record"),  # no route but the record
])
def test_routes_by_priority_and_by_the_channels_a_rule_names(offline: Stack, labels: str, receivers: str) -> None:
    out = amtool("config", "routes", "test", "--config.file", offline.tmp / "rendered" / "alertmanager.yml",
                 *labels.split())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == receivers


def _render_cli(offline: Stack) -> subprocess.CompletedProcess[str]:
    return offline.render_config(check=False)


def test_a_missing_or_malformed_secret_key_is_a_clear_error_naming_the_key_not_a_value(offline: Stack) -> None:
    try:
        offline.write_secrets(telegramBotToken=None, smtpPassword=SMTP_PASSWORD + "\n")
        proc = _render_cli(offline)
        assert proc.returncode == 1
        assert "Secret key 'telegramBotToken' is missing or empty" in proc.stderr
        assert "telegram_configs.0.bot_token: " in proc.stderr
        assert "smtpPassword ends with a newline" in proc.stderr
        assert SMTP_PASSWORD not in proc.stderr and offline.providers.discord.token not in proc.stderr
        offline.write_secrets(slackWebhookUrl="")
        assert "slackWebhookUrl (a Secret key) is missing or empty" in _render_cli(offline).stderr
        check = subprocess.run([sys.executable, "-m", "kubetrade.cli", "alertmanager-config", "check",
                                f"--template={offline.tmp / 'template' / 'alertmanager.yml'}",
                                f"--secrets={offline.secrets}"], capture_output=True, text=True, timeout=120)
        assert check.returncode == 1 and "slackWebhookUrl" in check.stderr
    finally:
        offline.write_secrets()
    assert _render_cli(offline).returncode == 0


def test_render_refuses_what_is_not_a_configuration(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a mapping"):
        render("- just\n- a list\n", tmp_path)
