"""Before ``kubetrade up`` stops it drains the order path: approved orders the executor has not
processed are found - in the ORDERS stream, and as live orders in the record - and reported,
and once an executor has taken them the drain comes back clean.  A real executor process,
real NATS and PostgreSQL."""

from __future__ import annotations

import signal

from kubetrade.ledger import allocation, connection, queries
from kubetrade.localstack.services import start_executor
from kubetrade.localstack.supervisor import drain_orders, order_backlog
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.streams import ensure_order_streams
from tests.orders.conftest import order, tick, wait_for


async def test_unprocessed_orders_are_found_and_a_restarted_executor_clears_them(orders_dsn, own_nats, nc,
                                                                                   tmp_path) -> None:
    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "paper", "alpha", 100_000.0)
    js = nc.jetstream()
    await ensure_order_streams(js)
    executor = start_executor(own_nats.url, orders_dsn, tmp_path)

    async def submit(coid: str) -> None:
        await js.publish(subjects.order_submit("paper"), codec.encode(order(coid, qty=0.001)),
                         headers={"Nats-Msg-Id": coid})

    async def filled(coid: str) -> bool:
        await tick(nc, 50_000.0)
        row = await queries.order(conn, coid)
        return row is not None and row["status"] == "filled"

    try:
        await submit("d-0")
        await wait_for(lambda: filled("d-0"), limit=60)
        assert (await drain_orders(js, orders_dsn, within=5)).clean

        executor.send_signal(signal.SIGKILL)  # the executor dies; the risk manager keeps approving
        executor.proc.wait(10)
        await submit("d-1")
        await submit("d-2")
        left = await drain_orders(js, orders_dsn, within=2)
        assert not left.clean and left.pending_in_stream == 2
        assert "2 approved order(s) never processed by the executor" in left.describe()

        executor.stop()
        executor = start_executor(own_nats.url, orders_dsn, tmp_path)
        await wait_for(lambda: filled("d-1"), limit=60)
        await wait_for(lambda: filled("d-2"), limit=60)
        after = await drain_orders(js, orders_dsn, within=30)
        assert after.clean, after.describe()
        assert await order_backlog(js) == 0
    finally:
        executor.stop()
        await conn.close()
