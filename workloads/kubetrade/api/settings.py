"""API settings, from environment variables (12-factor; Secrets arrive as env vars)."""

from __future__ import annotations

from dataclasses import dataclass, field


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

    @classmethod
    def from_env(cls) -> Settings:
        """From the typed environment (:mod:`kubetrade.settings`): a bad value names its variable."""
        from kubetrade import settings

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
        )


def _pod_namespace() -> str | None:
    """The pod's own namespace, from its service account, when running in Kubernetes."""
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None
