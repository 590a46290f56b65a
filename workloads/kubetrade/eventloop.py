"""The event loop the long-running services run on: uvloop where it is installed, asyncio's otherwise.

uvloop (libuv) does the same socket work as asyncio's default loop with a fraction of its
Python overhead per callback, and the order path is a thousand small messages a second
through NATS and PostgreSQL in each of the risk manager and the executor.  psycopg's async
connections and nats-py both run on it unchanged.  ``KUBETRADE_EVENT_LOOP=asyncio`` picks
the standard loop (to compare, or where uvloop misbehaves).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None for asyncio's default (unavailable, or not wanted)."""
    choice = os.environ.get("KUBETRADE_EVENT_LOOP", "uvloop").strip().lower()
    if choice not in ("uvloop", "asyncio"):
        raise ValueError(f"KUBETRADE_EVENT_LOOP must be 'uvloop' or 'asyncio', not {choice!r}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:  # e.g. a platform without wheels: the standard loop does the same work
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
