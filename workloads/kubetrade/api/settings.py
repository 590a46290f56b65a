"""API settings, from environment variables (12-factor; Secrets arrive as env vars)."""

from __future__ import annotations

import os
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

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("KUBETRADE_DATABASE_URL"),
            nats_url=os.environ.get("KUBETRADE_NATS_URL"),
            cors_origins=_list(os.environ.get("KUBETRADE_CORS_ORIGINS")),
        )
