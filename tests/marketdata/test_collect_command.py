"""``kubetrade collect`` as the collector Deployment runs it: a real process, real NATS, the local exchange."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from kubetrade.candles import Candles, from_arrays
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import CollectorHealth
from kubetrade.storage import migrate
from kubetrade_testbed.exchange import ExchangeState, LocalExchange

from .helpers import stream_candles

BAR = 300_000


def _shifted_to_now(c: Candles, bars: int) -> Candles:
    """The last ``bars`` real candles, moved in time so that the newest one is the open one now."""
    now = int(time.time() * 1000)
    part = c.slice(len(c) - bars, len(c))
    shift = (now - now % BAR) - int(part.time[-1])
    return from_arrays(part.time + shift, part.open, part.high, part.low, part.close, part.volume,
                       symbol=c.symbol, timeframe="5m")


@pytest.fixture
def live_exchange(btc_5m: Candles) -> Iterator[LocalExchange]:
    state = ExchangeState()  # wall clock: the collector process uses its own
    state.add_candles("BTCUSDT", "5m", _shifted_to_now(btc_5m, 2 * 288))
    with LocalExchange(state) as ex:
        yield ex


def _spawn(tmp_path: Path, name: str, spec: dict, env: dict[str, str]) -> subprocess.Popen:
    manifest = {"apiVersion": "kubetrade.io/v1alpha1", "kind": "Collector",
                "metadata": {"name": name, "namespace": "cli"}, "spec": spec}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(manifest))
    full = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")} | env
    return subprocess.Popen([sys.executable, "-m", "kubetrade.cli", "collect", "--config", str(path),
                             "--metrics-port", "0"], env=full, stderr=open(tmp_path / f"{name}.log", "wb"))


async def _health(js: object, name: str, want: Callable[[CollectorHealth], bool],
                  limit: float = 60.0) -> CollectorHealth | None:
    """The collector's health record once ``want`` holds for it (the last one seen if never)."""
    seen = None
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            kv = await js.key_value(subjects.COLLECTOR_HEALTH_BUCKET)  # type: ignore[attr-defined]
            seen = codec.decode(CollectorHealth, (await kv.get(subjects.collector_health_key("cli", name))).value)
            if want(seen):
                return seen
        except Exception:  # no bucket or key yet
            pass
        await asyncio.sleep(0.1)
    return seen


async def test_exchange_collector_process_backfills_stores_pauses_and_stops_cleanly(
        tmp_path: Path, live_exchange: LocalExchange, nats_url: str, nats_client, js, fresh_db: str) -> None:
    migrate.apply(fresh_db)
    proc = _spawn(tmp_path, "binance-btc", {
        "source": "exchange", "provider": "binance", "symbols": ["BTC/USDT"], "timeframes": ["5m"],
        "backfillDays": 1, "intervalSeconds": 1, "websocket": False},
        {"KUBETRADE_NATS_URL": nats_url, "KUBETRADE_EXCHANGE_URL": live_exchange.url,
         "KUBETRADE_HEALTH_REPORT_SECONDS": "0.5", "KUBETRADE_DATABASE_URL": fresh_db})
    try:
        seen: list = []

        async def count() -> None:
            seen[:] = await stream_candles(js, "md.binance.BTC_USDT.candle.5m")

        deadline = time.monotonic() + 90
        while len(seen) < 288 and proc.poll() is None and time.monotonic() < deadline:
            await count()
        assert len(seen) >= 288, (tmp_path / "binance-btc.log").read_text()[-2000:]
        times = [m.time for m in seen]
        assert times == sorted(set(times)) and np.all(np.diff(times) == BAR), "no gaps, no repeats"
        health = await _health(js, "binance-btc", lambda h: h.samples_total >= 288)
        assert health is not None and health.phase == "Running" and health.samples_total >= 288
        assert health.lag_seconds is not None and health.error_count == 0
        stored: list[int] = []
        deadline = time.monotonic() + 60
        while len(stored) < len(seen) and time.monotonic() < deadline:  # the pod's sink stores what it published
            with psycopg.connect(fresh_db) as conn:
                stored = [r[0] for r in conn.execute(
                    "SELECT (extract(epoch FROM time)*1000)::bigint FROM candles ORDER BY time").fetchall()]
            await asyncio.sleep(0.2)
        assert stored[: len(times)] == times  # (a candle may have closed since the stream was read)
        await nats_client.publish(subjects.collector_control("cli", "binance-btc"), b"stop")
        h = await _health(js, "binance-btc", lambda h: h.reason == "SuspendedByUser")
        assert h is not None and (h.phase, h.reason) == ("Suspended", "SuspendedByUser")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0


async def test_keyed_provider_without_secret_reports_disabled(tmp_path: Path, nats_url: str, js) -> None:
    proc = _spawn(tmp_path, "glassnode", {"source": "onchain", "provider": "glassnode", "topics": ["BTC:mvrv"]},
                  {"KUBETRADE_NATS_URL": nats_url, "KUBETRADE_GLASSNODE_URL": "http://127.0.0.1:9"})
    try:
        h = await _health(js, "glassnode", lambda h: h.phase != "Pending")
        assert h is not None and (h.phase, h.reason, h.error_count) == ("Disabled", "NoCredentials", 0)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
