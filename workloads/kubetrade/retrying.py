"""Retries with backoff, one way for the whole project: tenacity, configured here.

Every loop that retries (the collectors' exchange polling, websocket watch, alternative-data
polling, JetStream publishing, the candle sink's database writes, ``kubetrade download-data``)
uses :func:`backoff`:

- the wait grows exponentially from ``first`` to ``maximum`` seconds and starts again from
  ``first`` after a success (each call of :func:`backoff` is a fresh schedule);
- when the failure carries a server's ``Retry-After`` (``retry_after(exc)``), the wait is at
  least that long: calling again earlier is what turns Binance's 429 into a 418 ban;
- a ``stop`` event ends the wait at once with :class:`Stopped`, so a shutdown never sits out
  a minute of backoff;
- ``on_retry(exc, seconds)`` is told of each failure before the wait (count it, log it).

Which exceptions are worth retrying is the caller's choice (``retry_on``); anything else
propagates at once, as does cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_never, wait_exponential


class Stopped(Exception):
    """The stop event was set while waiting to retry."""


RetryAfter = Callable[[BaseException], float | None]


def retry_after_header(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds from a ``Retry-After`` header (any case), or None; HTTP dates are not used by exchanges."""
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            with contextlib.suppress(TypeError, ValueError):
                return max(0.0, float(value))
    return None


class _Wait:
    """Exponential backoff, never shorter than the server's Retry-After."""

    def __init__(self, first: float, maximum: float, retry_after: RetryAfter | None) -> None:
        first = min(first, maximum)
        self.exp = wait_exponential(multiplier=first, max=maximum, min=first)
        self.retry_after = retry_after

    def __call__(self, state: RetryCallState) -> float:
        base = float(self.exp(state))
        exc = state.outcome.exception() if state.outcome is not None else None
        told = self.retry_after(exc) if (self.retry_after is not None and exc is not None) else None
        return max(base, told or 0.0)


def backoff(
    *,
    first: float = 1.0,
    maximum: float = 60.0,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    retry_after: RetryAfter | None = None,
    stop: asyncio.Event | None = None,
    on_retry: Callable[[BaseException, float], None] | None = None,
    attempts: int | None = None,
) -> AsyncRetrying:
    """An ``async for attempt in backoff(...): with attempt: ...`` schedule (see the module doc).

    ``attempts`` bounds the tries (then the last error is raised); by default it retries until
    it succeeds or ``stop`` is set.
    """
    from tenacity import stop_after_attempt

    async def sleep(seconds: float) -> None:
        if stop is None:
            await asyncio.sleep(seconds)
            return
        if stop.is_set():
            raise Stopped
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        if stop.is_set():
            raise Stopped

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action is not None:
            exc = state.outcome.exception()
            if exc is not None:
                on_retry(exc, state.next_action.sleep)

    return AsyncRetrying(
        retry=retry_if_exception_type(retry_on),
        wait=_Wait(first, maximum, retry_after),
        stop=stop_after_attempt(attempts) if attempts else stop_never,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


async def call(fn: Callable[[], Any], **kw: Any) -> Any:
    """``await fn()`` under :func:`backoff` with the same keyword arguments; returns its result."""
    async for attempt in backoff(**kw):
        with attempt:
            return await fn()
    raise AssertionError("unreachable: backoff either returns a result or raises")  # pragma: no cover
