"""Process-wide state of the operator: its config and its NATS connection.

kopf passes a ``memo`` to handlers, but sync handlers run in threads and the status feed
runs outside any handler; one small module-level holder keeps them all on the same
objects.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from kubetrade_operator.config import OperatorConfig


@dataclass
class Runtime:
    config: OperatorConfig = field(default_factory=OperatorConfig.from_env)
    nats: Any = None
    loop: asyncio.AbstractEventLoop | None = None


RUNTIME = Runtime()


def submit(coro: Any, timeout: float = 10.0) -> Any:
    """Run a coroutine on the operator's event loop from a handler thread and wait for its result."""
    if RUNTIME.loop is None:
        coro.close()
        raise RuntimeError("the operator's event loop is not running")
    return asyncio.run_coroutine_threadsafe(coro, RUNTIME.loop).result(timeout)
