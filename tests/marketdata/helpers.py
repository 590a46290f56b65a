"""Small helpers shared by the market-data tests: reading a stream back, building collectors."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, TypeVar

from pydantic import BaseModel

from kubetrade.collector.exchange import ExchangeCollector
from kubetrade.collector.health import Health
from kubetrade.collector.publish import Publisher, stream_resume
from kubetrade.messaging import codec
from kubetrade.messaging.schemas import Candle

M = TypeVar("M", bound=BaseModel)


async def stream_candles(js: Any, subject: str = "md.*.*.candle.*") -> list[Candle]:
    """Every candle message in MARKET_DATA on ``subject``, in stream order."""
    return await stream_messages(js, subject, Candle)


async def stream_messages(js: Any, subject: str, model: type[M]) -> list[M]:
    """Every message of ``model`` on ``subject`` in the stream that stores it (MARKET_DATA for
    candles, MARKET_TICKS for tickers and trades), in stream order."""
    stream = await js.find_stream_name_by_subject(subject)
    info = await js.stream_info(stream)
    if info.state.messages == 0:
        return []
    sub = await js.pull_subscribe(subject, durable=None, stream=stream)
    out: list[M] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(1000, timeout=0.5)
            except TimeoutError:  # nats' TimeoutError subclasses the builtin one: nothing left
                break
            for m in msgs:
                out.append(codec.decode(model, m.data))
                await m.ack()
    finally:
        await sub.unsubscribe()
    return out


async def until(condition: Any, what: str, limit: float = 60.0) -> None:
    """Wait for ``condition()``; fail naming ``what`` if it never comes (a hang guard, not a timing check)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


def collector(client: Any, js: Any, clock: Any, **kw: Any) -> ExchangeCollector:
    options: dict[str, Any] = dict(symbols=["BTC/USDT", "ETH/USDT"], timeframes=["5m"], backfill_days=1,
                                   tickers=False, trades=False, interval_seconds=0.05, max_backoff=0.2)
    options.update(kw)
    return ExchangeCollector(
        client=client, exchange_id="binance", publisher=Publisher(js, max_backoff=0.2),
        health=Health("test", f"c-{uuid.uuid4().hex[:6]}", "exchange", "binance", clock=clock),
        clock=clock, resume=stream_resume(js), **options)
