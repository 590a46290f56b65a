"""One retry schedule (kubetrade.retrying, on tenacity) against the local exchange's real 429s.

ccxt's real Binance client meets the server's request-weight limiter: the 429 carries a
Retry-After, and the schedule must wait at least that long (calling earlier is what the
server, like Binance, answers with a 418 ban), then succeed.
"""

from __future__ import annotations

import asyncio

import ccxt.async_support as ccxta
import pytest
from ccxt.base.errors import BadSymbol, DDoSProtection

from kubetrade import retrying
from kubetrade_testbed.exchange import LocalExchange

from .conftest import START


def _client_retry_after(client: ccxta.binance):
    def lookup(exc: BaseException) -> float | None:
        if not isinstance(exc, DDoSProtection):
            return None
        return retrying.retry_after_header(client.last_response_headers)
    return lookup


async def test_a_429_waits_out_retry_after_and_never_earns_a_418(
        client: ccxta.binance, exchange: LocalExchange) -> None:
    st = exchange.state
    st.limits.window_seconds = 2  # the limiter's window, so its Retry-After is a second or two
    await client.load_markets()
    st.limits.weight_per_minute = st.limits.used + 1  # the next kline request (weight 2) is over
    waits: list[tuple[str, float]] = []
    rows = await retrying.call(
        lambda: client.fetch_ohlcv("BTC/USDT", "5m", since=START, limit=10),
        first=0.01, maximum=0.05, retry_after=_client_retry_after(client),
        on_retry=lambda exc, wait: waits.append((type(exc).__name__, wait)))
    assert len(rows) == 10 and rows[0][0] == START
    assert st.limits.rejected_429 >= 1 and st.limits.rejected_418 == 0
    told = [w for name, w in waits if name in ("RateLimitExceeded", "DDoSProtection")]
    assert told and min(told) >= 1.0  # the server's Retry-After, not the 0.05 s backoff ceiling


async def test_errors_not_asked_for_propagate_at_once(client: ccxta.binance, exchange: LocalExchange) -> None:
    tries = 0

    async def fetch():
        nonlocal tries
        tries += 1
        return await client.fetch_ohlcv("NOPE/USDT", "5m")

    with pytest.raises(BadSymbol):
        await retrying.call(fetch, first=0.01, retry_on=DDoSProtection)
    assert tries == 1


async def test_stop_ends_the_wait_at_once() -> None:
    stop = asyncio.Event()

    async def failing():
        raise ConnectionError("down")

    loop = asyncio.get_running_loop()
    loop.call_later(0.2, stop.set)
    t0 = loop.time()
    with pytest.raises(retrying.Stopped):
        await retrying.call(failing, first=30.0, maximum=60.0, stop=stop)
    assert loop.time() - t0 < 10  # a hang guard: the 30 s backoff was cut short by the stop


async def test_bounded_attempts_raise_the_last_error() -> None:
    seen: list[float] = []

    async def failing():
        raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        await retrying.call(failing, first=0.001, maximum=0.004, attempts=4, on_retry=lambda e, w: seen.append(w))
    assert seen == [0.001, 0.002, 0.004]  # exponential, capped, three waits between four tries
