"""SIGKILL the paper executor (a process, as deployed) in the middle of a burst, restart it:
every order is filled exactly once and every book adds up (batches in flight included)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from kubetrade.ledger import allocation, connection
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.streams import ensure_order_streams as ensure_streams
from tests.orders.conftest import order, paper_books, tick, wait_for


def _spawn(dsn: str, url: str, log) -> subprocess.Popen[bytes]:
    env = dict(os.environ, KUBETRADE_DATABASE_URL=dsn, KUBETRADE_NATS_URL=url)
    return subprocess.Popen(
        [sys.executable, "-m", "kubetrade.executor", "executor", "--environment", "paper", "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=log,
    )


async def test_sigkill_in_a_burst_loses_and_doubles_nothing(orders_dsn, own_nats, nc, tmp_path) -> None:
    conn = await connection.connect(orders_dsn)
    strategies = [f"k{i:02d}" for i in range(12)]
    for s in strategies:
        await allocation.allocate(conn, "paper", s, 1_000_000.0)
    log = open(tmp_path / "executor.log", "ab")  # noqa: SIM115, ASYNC230 - handed to the children
    js = nc.jetstream()
    await ensure_streams(js)
    n, kills = 1200, 3
    proc = _spawn(orders_dsn, own_nats.url, log)
    try:

        async def filled() -> int:
            row = await (await conn.execute("SELECT count(*) AS n FROM orders WHERE status = 'filled'")).fetchone()
            return int(row["n"]) if row else 0

        await tick(nc, 50_000.0)
        # the executor is up (and has a price) once a first order fills
        first = order("warm-0", strategy=strategies[0], qty=0.001)
        await js.publish(subjects.order_submit("paper"), codec.encode(first), headers={"Nats-Msg-Id": "warm-0"})

        async def priced_and_filled() -> int:
            await tick(nc, 50_000.0)  # (a price the executor saw before it subscribed is lost to it)
            return await filled()

        await wait_for(priced_and_filled, limit=60)
        sent = 0
        for k in range(kills + 1):
            burst = n // (kills + 1)
            for i in range(sent, sent + burst):  # ~2,000 a second, not waiting for fills
                req = order(f"kill-{i:05d}", strategy=strategies[i % 12], qty=0.001 * (1 + i % 3))
                await js.publish(
                    subjects.order_submit("paper"), codec.encode(req), headers={"Nats-Msg-Id": f"kill-{i:05d}"}
                )
                if i % 20 == 0:
                    await asyncio.sleep(0.01)
                    await tick(nc, 50_000.0)
            sent += burst
            if k < kills:  # mid-burst: batches are being written and acked
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                proc = _spawn(orders_dsn, own_nats.url, log)
                await tick(nc, 50_000.0)
        await wait_for(lambda: _at_least(priced_and_filled, sent + 1), limit=120)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    by_status = await (await conn.execute("SELECT status, count(*) AS n FROM orders GROUP BY status")).fetchall()
    assert {r["status"]: r["n"] for r in by_status} == {"filled": sent + 1}
    dup = await (await conn.execute("SELECT count(*) - count(DISTINCT client_order_id) AS d FROM fills")).fetchone()
    assert dup is not None and dup["d"] == 0
    for r in await paper_books(conn):
        assert r["fills"] == r["filled_events"] == r["orders"]
    await conn.close()


async def _at_least(counter, n: int) -> bool:
    return await counter() >= n
