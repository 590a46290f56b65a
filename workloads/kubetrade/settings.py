"""The platform's settings from the environment, typed (a pydantic model).

Every ``KUBETRADE_*`` variable the workloads read is declared here once, with its type and
meaning.  ``kubetrade`` validates them all before any command runs, so a bad value stops
the process at once with one line that names the variable and what is wrong with it
(``KUBETRADE_METRICS_PORT='abc': not a whole number``) instead of a traceback from deep
inside a role minutes later.  Read them with :func:`current`.  Secrets (exchange keys, the
API-key pepper) are typed as ``SecretStr``: never printed, never in a repr.

The variables are read here (:func:`environ`: ``KUBETRADE_<FIELD>``, the name in any case) and
validated by pydantic, as pydantic-settings did with this configuration (prefix, case-insensitive,
others ignored), without importing pydantic-settings: its 93 modules (every settings source, dotenv,
the cloud secret stores) were 4 MB of every process, and a node runs hundreds of runner processes
(bench runner_footprint).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

PREFIX = "KUBETRADE_"
Port = Annotated[int, Field(ge=0, le=65535)]


class SettingsError(ValueError):
    """One or more environment variables hold a value that is not valid; the message names each."""


class Settings(BaseModel):
    """``KUBETRADE_<NAME>`` for each field (``database_url`` is ``KUBETRADE_DATABASE_URL``)."""

    model_config = ConfigDict(extra="ignore", use_attribute_docstrings=True, validate_default=True)

    def __init__(self, **values: Any) -> None:
        """Without arguments, from the environment (:func:`environ`); with them, from them only."""
        super().__init__(**(values or environ()))

    database_url: str | None = None
    """PostgreSQL DSN of the platform's database."""
    nats_url: str | None = None
    """NATS server URL (commands that need one default to nats://127.0.0.1:4222)."""
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    """Log level of every role."""
    metrics_port: Port | None = None
    """Serve Prometheus /metrics on this port (roles that serve it themselves ignore it); unset: off."""
    environment: Literal["paper", "live"] | None = None
    """Trading environment of a runner."""
    namespace: str | None = None
    """Namespace of resources when a request names none (in a pod: its own)."""
    exchange_url: str | None = None
    """Send ccxt clients to this base URL (a proxy, the local test exchange)."""
    exchange_api_key: SecretStr | None = None
    """Live exchange API key (from a Secret)."""
    exchange_secret: SecretStr | None = None
    """Live exchange API secret (from a Secret)."""
    exchange_credentials_dir: Path | None = None
    """Folder of a mounted Secret with files apiKey and secret (instead of the two above)."""
    api_key_pepper: SecretStr = SecretStr("")
    """Server-side secret mixed into every API-key hash."""
    cors_origins: str = ""
    """Origins allowed by CORS, comma-separated."""
    rate_limit_per_key: Annotated[int, Field(ge=1)] = 600
    """API requests per key per rate window."""
    rate_limit_per_address: Annotated[int, Field(ge=1)] = 1200
    """API requests per client address per rate window."""
    rate_window_seconds: Annotated[int, Field(ge=1, le=86_400)] = 60
    """Length of an API rate-limit window."""
    image: str = "kubetrade:latest"
    """Image of the Jobs the API starts (backtests)."""
    job_env_secret: str | None = None
    """Secret whose keys become the environment of Jobs the API starts."""
    database_secret: str | None = None
    """Secret (key url) the Jobs the API starts, and the operator's children, read the database DSN from."""
    api_max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    """Largest request body the API accepts; a larger one gets 413 before it is read."""
    nats_user: str | None = None
    """This process's NATS identity: its role (operator, api, risk-manager, runner, collector, executor-ENV)."""
    nats_password: SecretStr | None = None
    """The role's NATS password (from the role's Secret)."""
    nats_secret_prefix: str | None = None
    """Operator: runners and collectors read their NATS password from Secret <prefix><role>."""
    order_signing_key: SecretStr | None = None
    """The key the risk manager signs orders with and executors check (from a Secret)."""
    alert_evaluation: bool = True
    """Evaluate user-defined alert conditions in this API process."""
    alertmanager_url: str = ""
    """Alertmanagers every alert is posted to, comma-separated (each replica of a cluster); empty: alerts stay in
    the history only."""
    alert_receiver_token: SecretStr = SecretStr("")
    """Bearer token Alertmanager's webhooks present to the API (/api/v1/alerts/receiver/*), from a Secret."""
    alert_channel_limits: str = ""
    """Notifications per channel per hour beyond which warning and info alerts skip it, e.g. ``sms=10,slack=60``."""
    twilio_account_sid: str = ""
    """Twilio account of the SMS notifier."""
    twilio_auth_token: SecretStr = SecretStr("")
    """Twilio auth token (or an API key's secret), from a Secret."""
    twilio_api_key_sid: str = ""
    """An API key's SID to authenticate to Twilio with instead of the account SID."""
    twilio_api_url: str = "https://api.twilio.com"
    """Twilio's API."""
    sms_from: str = ""
    """SMS sender: a Twilio number (E.164) or a Messaging Service SID (MG...)."""
    sms_to: str = ""
    """SMS recipients in E.164, comma-separated (from a Secret: phone numbers are personal)."""
    sms_max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    """Attempts of one SMS before it fails and the channel's failing alert is raised."""
    runner_signal: Literal["auto", "kernel"] = "auto"
    """How a runner computes its genome's signal: ``auto`` streams it in plain Python when every indicator can
    be streamed (no numba in the pod), ``kernel`` always steps the numba kernel over a bounded window."""
    api_candle_cache_rows: Annotated[int, Field(ge=0)] = 500_000
    """Stored candles an API process keeps encoded for /api/v1/historical (0: no cache); about 200 bytes each."""
    health_report_seconds: Annotated[float, Field(gt=0)] = 10.0
    """How often a collector reports its health."""
    collector_config: Path | None = None
    """The Collector resource a collector runs (default: the operator's mounted ConfigMap)."""
    paper_lanes: Annotated[int, Field(ge=1, le=64)] = 2
    """Parallel lanes of the paper executor's fast path."""
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    """Event loop of the services."""
    api_url: str | None = None
    """The API that ``kubetrade trades``/``strategies`` ask (default http://127.0.0.1:8000)."""
    api_key: SecretStr | None = None
    """The API key those commands send (else the file ``.kubetrade/api-key``)."""
    shared_data: Path | None = None
    """Folder of the real candles the benchmarks read (not shipped: see bench/README.md)."""

    @field_validator("database_url", "exchange_url", "job_env_secret", "namespace", "api_url", "database_secret",
                     "nats_user", "nats_secret_prefix", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", "event_loop", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _blank_port(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("alert_channel_limits")
    @classmethod
    def _limits(cls, value: str) -> str:
        channels = ("email", "sms", "telegram", "discord", "slack", "webhook")
        for item in (i.strip() for i in value.split(",") if i.strip()):
            channel, _, number = item.partition("=")
            if channel.strip() not in channels or not number.strip().isdigit():
                raise ValueError(f"{item!r} is not <channel>=<messages per hour>, a channel of {', '.join(channels)}")
        return value

    @field_validator("alert_evaluation", mode="before")
    @classmethod
    def _no(cls, value: object) -> object:
        return False if isinstance(value, str) and value.strip().lower() in ("no", "off") else value


_WHY = {
    "int_parsing": "not a whole number",
    "int_from_float": "not a whole number",
    "float_parsing": "not a number",
    "bool_parsing": "not true/false (1/0, yes/no)",
}
SECRETS = frozenset({"exchange_api_key", "exchange_secret", "api_key_pepper", "api_key", "nats_password",
                     "order_signing_key", "alert_receiver_token", "twilio_auth_token", "sms_to"})


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        msg = str(err["msg"])
        why = _WHY.get(err["type"]) or ("must be " + msg.removeprefix("Input should be ")
                                        if msg.startswith("Input should be ") else msg)
        shown = "(hidden)" if field in SECRETS else repr(err.get("input"))
        parts.append(f"{PREFIX}{field.upper()}={shown}: {why}")
    return "; ".join(parts)


def environ(env: dict[str, str] | None = None) -> dict[str, str]:
    """The ``KUBETRADE_*`` variables that name a field, by field (``KUBETRADE_LOG_LEVEL`` -> ``log_level``).

    The name may be in any case; where two spellings of one name are set, the upper-case one wins."""
    found: dict[str, str] = {}
    for key, value in sorted((os.environ if env is None else env).items(), key=lambda kv: kv[0].isupper()):
        if key.upper().startswith(PREFIX) and (name := key[len(PREFIX):].lower()) in Settings.model_fields:
            found[name] = value
    return found


def load() -> Settings:
    """Read and check every variable now; :class:`SettingsError` names each bad one."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def current() -> Settings:
    """The settings as the environment has them now (cheap: read each time, so a test's changes count)."""
    return load()
