"""How approved orders reach the executor: a durable JetStream *push* consumer feeding a batching inbox.

A pull consumer costs a request/response round trip with the server per fetch, and a
fetch that finds the stream empty parks a lingering request whose first message then waits
for the rest of the batch.  A push consumer has the server deliver each order the moment
the risk manager's publish is stored; the client's callback only queues it here, and the
executor's loop takes whatever has queued up while it was busy as the next batch.  The
batch size adapts by itself: one order when the executor is idle (lowest latency), many
when it is behind (one commit for the lot).

Delivery guarantees are the consumer's, unchanged: explicit acks, ``ack_wait`` redelivery,
``max_ack_pending`` bounding what can be in flight.  The executor is a singleton (the
database lease), so exactly one subscriber is ever bound to the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

log = logging.getLogger("kubetrade.executor.intake")


class Inbox:
    """Messages queued by the subscription's callback, taken by the executor in batches."""

    def __init__(self) -> None:
        self._queue: deque[Any] = deque()
        self._arrived = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    async def put(self, msg: Any) -> None:
        """The subscription callback: queue and return at once (the work happens in the executor's loop)."""
        self._queue.append(msg)
        self._arrived.set()

    async def take(self, limit: int, wait: float) -> list[Any]:
        """Up to ``limit`` queued messages, oldest first; waits up to ``wait`` seconds for the first one."""
        if not self._queue:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), wait)
        n = min(limit, len(self._queue))
        return [self._queue.popleft() for _ in range(n)]

    def drain(self) -> list[Any]:
        """Everything still queued (to give back to the stream when the executor stops serving)."""
        out = list(self._queue)
        self._queue.clear()
        return out


async def subscribe(
    js: Any, subject: str, stream: str, durable: str, inbox: Inbox, *, ack_wait: float, max_ack_pending: int
) -> Any:
    """Bind ``inbox`` to the durable push consumer ``durable`` (created if missing) and return the subscription.

    A pull consumer left by an earlier version (``durable`` without the ``-push`` suffix) is
    replaced without losing or replaying history: the push consumer starts right after the
    old one's ack floor (anything delivered but unacknowledged is delivered again, which the
    client order ids make harmless), then the old one is deleted.
    """
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError

    name = f"{durable}-push"
    config = ConsumerConfig(
        durable_name=name,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=-1,
        max_ack_pending=max_ack_pending,
        filter_subject=subject,
    )
    try:
        await js.consumer_info(stream, name)
    except NotFoundError:
        try:
            old = await js.consumer_info(stream, durable)
        except NotFoundError:
            old = None
        if old is not None and old.ack_floor is not None and old.ack_floor.stream_seq:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = old.ack_floor.stream_seq + 1
            log.info(
                "replacing the pull consumer with a push consumer",
                extra={"consumer": durable, "start_sequence": config.opt_start_seq},
            )
        sub = await js.subscribe(subject, durable=name, stream=stream, config=config, cb=inbox.put, manual_ack=True)
        if old is not None:
            with contextlib.suppress(NotFoundError):
                await js.delete_consumer(stream, durable)
        return sub
    return await js.subscribe(subject, durable=name, stream=stream, cb=inbox.put, manual_ack=True)
