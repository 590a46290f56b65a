"""The replay collector over the bundled real candles, into real JetStream."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from kubetrade.candles import CandleError, load_csv
from kubetrade.collector.health import Health
from kubetrade.collector.publish import Publisher, stream_resume
from kubetrade.collector.replay import ReplayCollector, data_dir, load_series
from kubetrade.data import SAMPLE_DIR

from .helpers import stream_candles

START = datetime(2024, 9, 1, tzinfo=UTC)


def _replay(js: object, **kw: object) -> ReplayCollector:
    series = load_series(data_dir("bundled"), ["BTC/USDT", "ETH/USDT"], ["1h", "1d"])
    return ReplayCollector(series, "binance", Publisher(js), Health("t", f"r-{uuid.uuid4().hex[:6]}", "replay",
                                                                     "bundled"),
                           speed=1e7, start=START, resume=stream_resume(js), **kw)  # type: ignore[arg-type]


def test_bundled_sample_is_real_and_small() -> None:
    files = sorted(p.name for p in SAMPLE_DIR.glob("*.csv.gz"))
    assert files == [f"{s}_USDT-{tf}.csv.gz" for s in ("BTC", "ETH") for tf in ("1d", "1h", "5m")]
    assert sum(p.stat().st_size for p in SAMPLE_DIR.glob("*.csv.gz")) < 5_000_000
    c = load_csv(SAMPLE_DIR / "BTC_USDT-1d.csv.gz")
    assert int(c.time[0]) == 1_704_067_200_000 and float(c.open[0]) == pytest.approx(42283.58)


async def test_replay_publishes_in_close_time_order_and_resumes_after_a_restart(js: object) -> None:
    first = _replay(js)
    n = await first.run(asyncio.Event())
    got = await stream_candles(js)
    start_ms = int(START.timestamp() * 1000)
    expected = sum(int((load_csv(SAMPLE_DIR / f"{s}_USDT-{tf}.csv.gz").time >= start_ms).sum())
                   for s in ("BTC", "ETH") for tf in ("1h", "1d"))
    assert n == len(got) == expected > 200
    closes = [m.time + (3_600_000 if m.timeframe == "1h" else 86_400_000) for m in got]
    assert closes == sorted(closes), "published when they close, across symbols and timeframes"
    assert {m.symbol for m in got} == {"BTC/USDT", "ETH/USDT"}
    again = _replay(js)
    assert await again.run(asyncio.Event()) == 0, "a restarted replay resumes after what the stream has"


async def test_looping_replay_shifts_time_so_each_pass_is_new_data(js: object) -> None:
    looping = _replay(js, loop=True)
    stop = asyncio.Event()
    task = asyncio.create_task(looping.run(stop))
    while looping.health.samples < 500:  # noqa: ASYNC110 - polling a counter
        await asyncio.sleep(0.01)
    stop.set()
    await task
    times = [m.time for m in await stream_candles(js, "md.binance.BTC_USDT.candle.1h")]
    assert len(times) == len(set(times)) and times == sorted(times)
    assert times[-1] > int(datetime(2024, 9, 8, tzinfo=UTC).timestamp() * 1000)


def test_a_missing_file_names_what_exists() -> None:
    with pytest.raises(CandleError, match=r"no file for SOL/USDT 1h in .*SOL_USDT-1h.csv.gz or .* BTC_USDT-1d.csv.gz"):
        load_series(data_dir("bundled"), ["SOL/USDT"], ["1h"])
