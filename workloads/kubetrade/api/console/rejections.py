"""The risk manager's refusals, as the console lists them beside the orders.

A refused signal has no order row: its record is the ``RiskRejection`` the risk manager publishes
on ``events.strategy.<strategy>.rejected``, kept by the EVENTS stream.  Each API process follows
that subject with an ordered consumer that starts with the last refusal of every strategy
(``DeliverPolicy.LAST_PER_SUBJECT``: bounded by the number of strategies, whatever the stream
holds) and then every new one, and keeps the newest :data:`KEEP` in memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import Any

from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import RiskRejection

log = logging.getLogger("kubetrade.api.console")

KEEP = 50


class RejectionLog:
    def __init__(self) -> None:
        self.items: collections.deque[RiskRejection] = collections.deque(maxlen=KEEP)
        self.seen: set[str] = set()

    def add(self, r: RiskRejection) -> None:
        if r.client_order_id in self.seen:
            return
        self.seen.add(r.client_order_id)
        if len(self.seen) > 10 * KEEP:
            self.seen = {x.client_order_id for x in self.items}
        self.items.append(r)

    def newest(self, n: int) -> list[RiskRejection]:
        return sorted(self.items, key=lambda r: r.time, reverse=True)[:n]

    async def follow(self, nc: Any) -> None:
        """Until cancelled: the last refusal per strategy, then each new one; resubscribes after errors."""
        from nats.js.api import DeliverPolicy

        async def on_msg(msg: Any) -> None:
            with contextlib.suppress(codec.BadMessage):
                self.add(codec.decode(RiskRejection, msg.data))

        while True:
            try:
                sub = await nc.jetstream().subscribe(subjects.risk_rejected("*"), cb=on_msg, ordered_consumer=True,
                                                     deliver_policy=DeliverPolicy.LAST_PER_SUBJECT)
                try:
                    await asyncio.Event().wait()
                finally:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the stream is not there yet, NATS is restarting
                log.info("rejection log waiting for the EVENTS stream", extra={"error": type(exc).__name__})
                await asyncio.sleep(2.0)
