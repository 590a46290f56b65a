"""One trace from a published candle to the fill, through the real runner, risk manager and executor.

All three run in this process (real NATS and PostgreSQL) so their spans land in one in-memory
exporter; the candle is published the way the collector publishes it, under an ``md.publish``
span whose context rides in the message headers.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from kubetrade.candles import Candles
from kubetrade.executor.executor import Executor
from kubetrade.executor.venues import PaperVenue
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import Candle
from kubetrade.observability import tracecontext
from kubetrade.risk.manager import RiskManager
from tests.runtime.conftest import eventually
from tests.runtime.test_runner_faults import WARMUP, candles, first_trade, make_runner, orders, prepare  # noqa: F401


@pytest.fixture(scope="module")
def exporter() -> Any:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    tracecontext.configure("tests", exporter=spans)
    return spans


async def publish_traced(nc: Any, c: Candles, i: int) -> str:
    """Publish bar ``i`` as the collector does; return the trace id it starts."""
    candle = Candle(exchange="binance", symbol="BTC/USDT", timeframe="5m", time=int(c.time[i]), open=c.open[i],
                    high=c.high[i], low=c.low[i], close=c.close[i], volume=c.volume[i])
    subject = subjects.candle("binance", "BTC/USDT", "5m")
    with tracecontext.producer_span("md.publish", subject) as span:
        headers = tracecontext.inject({"Nats-Msg-Id": candle.msg_id()})
        await nc.jetstream().publish(subject, codec.encode(candle), headers=headers)
        return f"{span.get_span_context().trace_id:032x}"


async def test_the_runner_carries_the_candles_trace_to_the_decision_and_the_fill(
        exporter, runtime_nats, runtime_dsn, rnc, candles, first_trade) -> None:  # noqa: F811
    await prepare(runtime_dsn, rnc, candles)
    rm = RiskManager(runtime_dsn, runtime_nats.url, refresh_seconds=0.2)
    ex = Executor("paper", runtime_dsn, runtime_nats.url, PaperVenue(), sync_seconds=0.3)
    services = [asyncio.create_task(rm.run()), asyncio.create_task(ex.run())]
    runner = make_runner(runtime_nats.url, runtime_dsn, order_wait=30)
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(runner.started.wait(), 60)
        await eventually(lambda: _ready(rm, ex, services))
        entry = first_trade.entry_bar
        traces = {}
        for i in range(WARMUP, entry + 2):
            traces[i] = await publish_traced(rnc, candles, i)
            close = int(candles.time[i]) + 300_000

            async def decided(close: int = close) -> bool:
                return runner.last_signal_ms == close

            await eventually(decided, timeout=60, interval=0.01)

        async def filled() -> bool:
            return [o["status"] for o in await orders(runtime_dsn)] == ["filled"]

        await eventually(filled)
    finally:
        runner.stopping.set()
        await asyncio.wait_for(task, 60)
        rm.stopping.set()
        ex.stopping.set()
        await asyncio.wait_for(asyncio.gather(*services), 30)
    spans = [s for s in exporter.get_finished_spans() if f"{s.context.trace_id:032x}" == traces[entry]]
    by_name = {s.name: s for s in spans}
    assert {"md.publish", "runner.bar", "risk.check", "executor.order"} <= set(by_name), sorted(by_name)
    chain = ["md.publish", "runner.bar", "risk.check", "executor.order"]
    for parent, child in itertools.pairwise(chain):
        assert by_name[child].parent is not None and by_name[child].parent.span_id == by_name[parent].context.span_id, (
            f"{child} is not under {parent}"
        )
    assert by_name["runner.bar"].attributes["strategy"] == runner.cfg.label


async def _ready(rm: RiskManager, ex: Executor, services: list[asyncio.Task[None]]) -> bool:
    for t in services:
        if t.done():
            t.result()
    return rm.ready.is_set() and ex.ready.is_set()
