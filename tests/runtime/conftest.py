"""Fixtures of the strategy-runtime tests: a NATS server and a migrated database of each test's own.

The runtime tests start the real risk manager and paper executor (their CLIs), whose
durable consumers and advisory locks must not leak from one test into the next.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from kubetrade.localstack.servers import NatsServer, PostgresServer
from kubetrade.storage import migrate


@pytest.fixture
def runtime_dsn(pg_server: PostgresServer) -> str:
    dsn = pg_server.create_database(f"kt_runtime_{uuid.uuid4().hex[:8]}")
    migrate.apply(dsn)
    return dsn


@pytest.fixture
def runtime_nats(tmp_path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
async def rnc(runtime_nats: NatsServer) -> AsyncIterator[Any]:
    import nats

    from kubetrade.messaging.streams import ensure_streams

    client = await nats.connect(runtime_nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    await ensure_streams(client.jetstream())
    yield client
    await client.drain()


async def eventually(predicate, timeout: float = 60.0, interval: float = 0.05):  # noqa: ASYNC109 - a bound
    """Poll an async predicate until it is truthy (a bound on a hang, not a timing claim)."""
    deadline = time.monotonic() + timeout
    while True:
        got = await predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
