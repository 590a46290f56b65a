"""API settings, from environment variables (12-factor; Secrets arrive as env vars)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubetrade import settings
from kubetrade.alerts.conditions import CHANNELS


def _list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    """PostgreSQL DSN (KUBETRADE_DATABASE_URL)."""
    nats_url: str | None = None
    """NATS server URL (KUBETRADE_NATS_URL)."""
    cors_origins: list[str] = field(default_factory=list)
    """Origins allowed by CORS (KUBETRADE_CORS_ORIGINS, comma-separated)."""
    service: str = "api"
    api_key_pepper: str = field(default="", repr=False)
    """Server-side secret mixed into every API-key hash (KUBETRADE_API_KEY_PEPPER, from a Secret)."""
    rate_limit_per_key: int = 600
    """Requests per key per rate window (KUBETRADE_RATE_LIMIT_PER_KEY); a key may carry its own."""
    rate_limit_per_address: int = 1200
    """Requests per client address per rate window (KUBETRADE_RATE_LIMIT_PER_ADDRESS)."""
    rate_window_seconds: int = 60
    """Length of a rate-limit window (KUBETRADE_RATE_WINDOW_SECONDS)."""
    namespace: str = "default"
    """Namespace of resources when a request names none (KUBETRADE_NAMESPACE; in a pod: its own)."""
    image: str = "kubetrade:latest"
    """Image of Jobs the API starts, e.g. backtests (KUBETRADE_IMAGE)."""
    database_secret: str | None = None
    """Secret (key ``url``) the Jobs the API starts read the database DSN from (KUBETRADE_DATABASE_SECRET)."""
    job_env_secret: str | None = None
    """Secret whose keys become the environment of Jobs the API starts (KUBETRADE_JOB_ENV_SECRET)."""
    max_body_bytes: int = 1024 * 1024
    """Largest request body accepted; a larger one gets 413 before it is read (KUBETRADE_API_MAX_BODY_BYTES)."""
    alert_evaluation: bool = True
    """Evaluate user-defined alert conditions in this process (KUBETRADE_ALERT_EVALUATION=0 turns it off)."""
    alertmanager_urls: list[str] = field(default_factory=list)
    """Alertmanagers every alert is posted to (KUBETRADE_ALERTMANAGER_URL, comma-separated: each replica of a
    cluster); none keeps alerts in the history only."""
    alert_receiver_token: str = field(default="", repr=False)
    """Bearer token Alertmanager's webhooks present to /api/v1/alerts/receiver/* (KUBETRADE_ALERT_RECEIVER_TOKEN,
    from a Secret); empty refuses every webhook."""
    alert_channel_limits: dict[str, int] = field(default_factory=dict)
    """Notifications per channel per hour beyond which warning and info alerts skip it
    (KUBETRADE_ALERT_CHANNEL_LIMITS, e.g. ``sms=10,slack=60``; critical alerts are never limited)."""
    twilio_account_sid: str = ""
    """Twilio account (KUBETRADE_TWILIO_ACCOUNT_SID)."""
    twilio_auth_token: str = field(default="", repr=False)
    """Twilio auth token or API key secret (KUBETRADE_TWILIO_AUTH_TOKEN, from a Secret)."""
    twilio_api_key_sid: str = ""
    """An API key's SID to authenticate with instead of the account SID (KUBETRADE_TWILIO_API_KEY_SID)."""
    twilio_api_url: str = "https://api.twilio.com"
    """Twilio's API (KUBETRADE_TWILIO_API_URL)."""
    sms_from: str = ""
    """Sender: a Twilio number (E.164) or a Messaging Service SID ``MG...`` (KUBETRADE_SMS_FROM)."""
    sms_to: list[str] = field(default_factory=list, repr=False)
    """Recipients in E.164 (KUBETRADE_SMS_TO, comma-separated, from a Secret: phone numbers are personal)."""
    sms_max_attempts: int = 8
    """Attempts of one SMS before it fails and the channel's failing alert is raised (KUBETRADE_SMS_MAX_ATTEMPTS)."""
    candle_cache_rows: int = 500_000
    """Stored candles kept encoded for /api/v1/historical (KUBETRADE_API_CANDLE_CACHE_ROWS; 0: no cache)."""

    @classmethod
    def from_env(cls) -> Settings:
        """From the typed environment (:mod:`kubetrade.settings`): a bad value names its variable."""
        env = settings.load()
        return cls(
            database_url=env.database_url,
            nats_url=env.nats_url,
            cors_origins=_list(env.cors_origins),
            api_key_pepper=env.api_key_pepper.get_secret_value(),
            rate_limit_per_key=env.rate_limit_per_key,
            rate_limit_per_address=env.rate_limit_per_address,
            rate_window_seconds=env.rate_window_seconds,
            namespace=env.namespace or _pod_namespace() or "default",
            image=env.image,
            database_secret=env.database_secret,
            job_env_secret=env.job_env_secret,
            max_body_bytes=env.api_max_body_bytes,
            alert_evaluation=env.alert_evaluation,
            alertmanager_urls=[u.rstrip("/") for u in _list(env.alertmanager_url)],
            alert_receiver_token=env.alert_receiver_token.get_secret_value(),
            alert_channel_limits=channel_limits(env.alert_channel_limits),
            twilio_account_sid=env.twilio_account_sid,
            twilio_auth_token=env.twilio_auth_token.get_secret_value(),
            twilio_api_key_sid=env.twilio_api_key_sid,
            twilio_api_url=env.twilio_api_url,
            sms_from=env.sms_from,
            sms_to=_list(env.sms_to),
            sms_max_attempts=env.sms_max_attempts,
            candle_cache_rows=env.api_candle_cache_rows,
        )

    @property
    def sms_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.sms_from and self.sms_to)


def channel_limits(value: str | None) -> dict[str, int]:
    """``sms=10,slack=60`` -> {"sms": 10, "slack": 60}; a bad entry is an error naming it."""

    out: dict[str, int] = {}
    for item in _list(value):
        channel, _, number = item.partition("=")
        channel = channel.strip()
        if channel not in CHANNELS or not number.strip().isdigit():
            raise ValueError(f"KUBETRADE_ALERT_CHANNEL_LIMITS: {item!r} is not <channel>=<messages per hour> "
                             f"with a channel of {', '.join(CHANNELS)}")
        out[channel] = int(number)
    return out


def _pod_namespace() -> str | None:
    """The pod's own namespace, from its service account, when running in Kubernetes."""
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None
