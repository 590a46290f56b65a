"""Who may use the executor's database state at once: paper batches together, anything else alone.

Paper fast-path batches of *different* strategies may be in flight together, each on its
own connection: their writes are guarded (:mod:`kubetrade.ledger.paperbatch`), and the
executor never lets two batches that share a strategy run at once.  Everything else - the
general per-order path, cancels, reconciliation, closing a strategy, resting paper orders -
takes the gate alone, after the batches in flight have finished.  A waiting exclusive
holder goes first: new batches wait behind it, so a cancel is not starved by a steady
stream of orders.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Gate:
    def __init__(self) -> None:
        self._shared = 0
        self._exclusive = False
        self._waiting_exclusive = 0
        self._changed = asyncio.Condition()

    @property
    def idle(self) -> bool:
        """Nobody holds the gate and nobody waits for it alone."""
        return self._shared == 0 and not self._exclusive and self._waiting_exclusive == 0

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._exclusive and self._waiting_exclusive == 0)
            self._shared += 1
        try:
            yield
        finally:
            async with self._changed:
                self._shared -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._changed:
            self._waiting_exclusive += 1
            try:
                await self._changed.wait_for(lambda: not self._exclusive and self._shared == 0)
            except BaseException:
                self._waiting_exclusive -= 1
                self._changed.notify_all()  # batches held back for this waiter may go
                raise
            self._waiting_exclusive -= 1
            self._exclusive = True
        try:
            yield
        finally:
            async with self._changed:
                self._exclusive = False
                self._changed.notify_all()
