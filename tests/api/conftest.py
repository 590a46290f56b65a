"""The API served by real uvicorn over the session's PostgreSQL and NATS, and keys to call it with."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import nats
import psycopg
import pytest

from kubetrade.api import create_app, keys
from kubetrade.api.settings import Settings
from kubetrade.messaging.subjects import RISK_CONTROL
from tests.support.server import serving

PEPPER = "test-pepper-not-a-secret"


def make_key(dsn: str, scopes: list[str], name: str = "test", rate_limit: int | None = None) -> tuple[str, str]:
    """(key id, key) created straight in the database, as ``kubetrade api-keys create`` does."""

    async def create() -> tuple[str, str]:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            stored, key = await keys.create(conn, name, scopes, PEPPER, rate_limit)
            return stored.id, key

    return asyncio.run(create())


def revoke_key(dsn: str, key_id: str) -> None:
    async def revoke() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await keys.revoke(conn, key_id)

    asyncio.run(revoke())


@dataclass
class Api:
    url: str
    dsn: str
    admin: str
    """A key with every scope."""

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"X-API-Key": key or self.admin}


@pytest.fixture
def local_env(monkeypatch):
    """No cluster: strategies live in the database (the local stack)."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


def settings_for(dsn: str, nats_url: str | None, **overrides) -> Settings:
    base = dict(database_url=dsn, nats_url=nats_url, api_key_pepper=PEPPER, rate_limit_per_key=1_000_000,
                rate_limit_per_address=1_000_000, namespace=f"ns-{uuid.uuid4().hex[:8]}",
                alert_receiver_token="receiver-" + uuid.uuid4().hex)  # Alertmanager's routes answer 401, not 503
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def own_db(fresh_db) -> str:
    """A migrated database of this test's own (shared counters such as the address limit start at zero)."""
    from kubetrade.storage import migrate

    migrate.apply(fresh_db)
    return fresh_db


@pytest.fixture
def api(pg_dsn, nats_url, local_env) -> Iterator[Api]:
    with serving(create_app(settings_for(pg_dsn, nats_url))) as url:
        yield Api(url, pg_dsn, make_key(pg_dsn, ["read", "trade", "admin"], "admin")[1])
    # This app's limits are a million, but its requests count in the shared per-address window
    # (addr:127.0.0.1 in api_rate_windows): after the fuzz's thousands, a later test's app with the
    # default 1,200 in the same minute answered 429 (tests/chart/test_install_jobs.py did).
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("DELETE FROM api_rate_windows WHERE bucket LIKE 'addr:%'")


@pytest.fixture
def risk_manager(pg_dsn, nats_url) -> Iterator[None]:
    """The real risk manager, so risk checks and orders are answered rather than refused with 503."""
    proc = subprocess.Popen([sys.executable, "-m", "kubetrade.cli", "risk-manager", "--database-url", pg_dsn,
                             "--nats-url", nats_url, "--log-level", "warning"])

    async def answers() -> bool:
        nc = await nats.connect(nats_url)
        try:
            await nc.request(RISK_CONTROL, json.dumps({"action": "metrics"}).encode(), timeout=1)
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    try:
        deadline = time.monotonic() + 120
        while not asyncio.run(answers()):
            assert proc.poll() is None and time.monotonic() < deadline, "the risk manager did not start"
            time.sleep(0.5)
        yield
    finally:
        proc.terminate()
        proc.wait(30)
