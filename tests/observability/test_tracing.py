"""One trace from a candle to a fill, across real NATS hops and the real risk manager and executor.

The collector's publisher starts the trace; a strategy runner (played by the test, the
runner being built elsewhere) continues it from the candle's headers and asks the risk
manager; the risk manager's decision and the order it submits, the executor's handling
and the fill event it publishes all carry it on.  Spans are captured in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from typing import Any

from kubetrade.collector.publish import Publisher
from kubetrade.executor.executor import Executor
from kubetrade.executor.venues import PaperVenue
from kubetrade.ledger import allocation, connection
from kubetrade.messaging import codec, kv, subjects
from kubetrade.messaging.schemas import Candle, OrderEvent, RiskDecision, Signal, Ticker
from kubetrade.messaging.streams import ensure_streams
from kubetrade.observability import tracecontext
from kubetrade.risk.manager import RiskManager


def now_ms() -> int:
    return int(time.time() * 1000)


async def until(predicate: Any, timeout: float = 30.0) -> Any:  # noqa: ASYNC109
    """Poll until truthy (a bound on a hang, not a timing claim)."""
    deadline = time.monotonic() + timeout
    while True:
        got = await predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)


async def test_one_trace_follows_candle_signal_decision_order_fill(span_exporter, obs_dsn, own_nats, obs_nc) -> None:
    span_exporter.clear()
    nc = obs_nc
    js = nc.jetstream()
    await ensure_streams(js)
    conn = await connection.connect(obs_dsn)
    await allocation.allocate(conn, "paper", "alpha", 10_000.0, risk_policy="default")
    bucket = await kv.policy_bucket(js)
    await bucket.put(kv.policy_key("default", "default"),
                 json.dumps({"namespace": "default", "name": "default", "generation": 1, "spec": {}}).encode())

    rm = RiskManager(obs_dsn, own_nats.url, refresh_seconds=0.2)
    ex = Executor("paper", obs_dsn, own_nats.url, PaperVenue(), sync_seconds=0.3)
    tasks = [asyncio.create_task(rm.run()), asyncio.create_task(ex.run())]
    decisions: list[RiskDecision] = []
    fills: list[OrderEvent] = []

    async def runner_on_candle(msg: Any) -> None:
        """What a strategy runner does with a closed candle: decide, ask the risk manager."""
        candle = codec.decode(Candle, msg.data)
        with tracecontext.consumer_span("runner.bar", msg, strategy="alpha"):
            signal = Signal(strategy="alpha", client_order_id=f"trace-{candle.time}", exchange="binance",
                            symbol="BTC/USDT", side="buy", quantity=0.01, price=candle.close, time=now_ms())
            reply = await nc.request(subjects.RISK_CHECK, codec.encode(signal), timeout=10,
                                     headers=tracecontext.inject())
            decisions.append(codec.decode(RiskDecision, reply.data))

    async def runner_on_order_event(msg: Any) -> None:
        event = codec.decode(OrderEvent, msg.data)
        if event.fill is not None:
            with tracecontext.consumer_span("runner.fill", msg, strategy=event.strategy):
                fills.append(event)

    try:
        async def ready() -> bool:
            for t in tasks:
                if t.done():
                    t.result()
            return rm.ready.is_set() and ex.ready.is_set()

        await until(ready)
        # a price for the risk manager and the paper venue (not part of the trace)
        await nc.publish(subjects.ticker("binance", "BTC/USDT"),
                         codec.encode(Ticker(exchange="binance", symbol="BTC/USDT", time=now_ms(), last=50_000.0)))

        async def priced() -> bool:
            return "BTC/USDT" in rm.feed.symbols

        await until(priced)
        await nc.subscribe(subjects.candle("binance", "BTC/USDT", "1m"), cb=runner_on_candle)
        await nc.subscribe(subjects.order_events("paper", ">"), cb=runner_on_order_event)
        await nc.flush()

        publisher = Publisher(js)
        t0 = (now_ms() // 60_000 - 1) * 60_000
        await publisher.publish(Candle(exchange="binance", symbol="BTC/USDT", timeframe="1m", time=t0,
                                       open=50_000, high=50_010, low=49_990, close=50_000, volume=3))

        async def filled() -> bool:
            return bool(fills)

        await until(filled)
    finally:
        rm.stopping.set()
        ex.stopping.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await conn.close()

    assert decisions and decisions[0].approved, decisions
    spans = {s.name: s for s in span_exporter.get_finished_spans()}
    chain = ["md.publish", "runner.bar", "risk.check", "executor.order", "runner.fill"]
    assert set(chain) <= spans.keys(), sorted(spans)
    trace_ids = {spans[name].context.trace_id for name in chain}
    assert len(trace_ids) == 1, "the hops are not one trace"
    for parent, child in itertools.pairwise(chain):
        assert spans[child].parent is not None, child
        assert spans[child].parent.span_id == spans[parent].context.span_id, f"{child} is not under {parent}"
    assert spans["risk.check"].attributes["messaging.destination.name"] == subjects.RISK_CHECK
    assert spans["executor.order"].attributes["messaging.destination.name"] == subjects.order_submit("paper")


def test_spans_are_exported_over_otlp_http_as_the_chart_configures_it(tmp_path) -> None:
    """A process configured only by the environment the chart sets exports its spans over OTLP/HTTP."""
    import os
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: dict[str, bytes] = {}

    class Collector(BaseHTTPRequestHandler):
        """The OTLP/HTTP collector's side: keep what arrives at each path."""

        def do_POST(self) -> None:
            received[self.path] = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    program = (
        "from kubetrade.observability import tracecontext as t\n"
        "assert t.configure('risk-manager')\n"
        "with t.producer_span('md.publish', 'md.binance.BTC_USDT.candle.1m'):\n"
        "    headers = t.inject()\n"
        "from opentelemetry import trace\n"
        "trace.get_tracer_provider().shutdown()\n"
        "print(headers['traceparent'])\n"
    )
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "kubetrade-risk-manager",
           "OTEL_TRACES_SAMPLER_ARG": "1.0"}
    try:
        out = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 0, out.stderr
    traceparent = out.stdout.strip()
    assert "/v1/traces" in received, received.keys()
    request = ExportTraceServiceRequest.FromString(received["/v1/traces"])
    resource = request.resource_spans[0].resource
    assert {a.key: a.value.string_value for a in resource.attributes}["service.name"] == "kubetrade-risk-manager"
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.name == "md.publish" and span.trace_id.hex() == traceparent.split("-")[1]


def test_with_tracing_off_the_trace_context_passes_through_unchanged() -> None:
    """A process that exports no spans still carries the trace on: the executor joins the runner's trace.

    Run in a fresh interpreter, where no provider is installed (this test process has one).
    """
    import os
    import subprocess
    import sys

    program = (
        "from types import SimpleNamespace\n"
        "from kubetrade.observability import tracecontext as t\n"
        "assert not t.enabled()\n"
        "parent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'\n"
        "msg = SimpleNamespace(subject='risk.check', headers={'traceparent': parent, 'tracestate': 'k=v', 'x': 'y'})\n"
        "with t.consumer_span('risk.check', msg):\n"
        "    inside = t.inject({'Nats-Msg-Id': 'c1'})\n"
        "after = t.inject()\n"
        "assert inside == {'Nats-Msg-Id': 'c1', 'traceparent': parent, 'tracestate': 'k=v'}, inside\n"
        "assert after == {}, after\n"
        "with t.consumer_span('risk.check', SimpleNamespace(subject='s', headers=None)):\n"
        "    assert t.inject() == {}\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
