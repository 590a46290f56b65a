"""``kubetrade download-data`` against the local Binance-compatible exchange, through ccxt's real client.

The exchange serves real BTC/ETH 5m candles; its clock decides what has closed.  Each test
checks the files (or rows) against the candles the exchange holds, and the requests the
exchange saw: an incremental run asks only for what is missing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import psycopg
import pytest

from kubetrade import candlefiles
from kubetrade.candles import Candles
from kubetrade.cli import main
from kubetrade.download.fetch import journal_path
from kubetrade_testbed.exchange import Fault, LocalExchange

from .conftest import START

DAY = 86_400_000
M5 = 300_000


def dl(ex: LocalExchange, datadir: Path, *args: str) -> int:
    return main(["download-data", "--exchange", "binance", "--exchange-url", ex.url, "--datadir", str(datadir),
                 "-t", "5m", *args])


def kline_starts(ex: LocalExchange, since: int = 0) -> list[int]:
    """startTime of every klines request the exchange answered (or refused), in order."""
    out = []
    for _, path in ex.state.requests[since:]:
        parts = urlsplit(path)
        if parts.path == "/api/v3/klines":
            out.append(int(parse_qs(parts.query)["startTime"][0]))
    return out


def expected(c: Candles, start: int, end: int) -> Candles:
    lo, hi = np.searchsorted(c.time, [start, end])
    return c.slice(int(lo), int(hi))


def same(path: Path, want: Candles) -> None:
    got = candlefiles.load(path)
    assert got.timeframe == "5m" and len(got) == len(want)
    for name in ("time", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)


def test_download_then_update_then_prepend_fetches_only_what_is_missing(
        exchange: LocalExchange, btc_5m: Candles, tmp_path: Path) -> None:
    st = exchange.state
    st.clock.set(START + 6 * DAY + 60_000)
    assert dl(exchange, tmp_path, "-p", "BTC/USDT", "ETH/USDT", "--timerange", "20240102-20240104") == 0
    btc = tmp_path / "BTC_USDT-5m.csv.gz"
    same(btc, expected(btc_5m, START + DAY, START + 3 * DAY))
    assert (tmp_path / "ETH_USDT-5m.csv.gz").is_file()

    # Update: no range given, so from the newest stored candle up to the exchange's now.
    seen = len(st.requests)
    assert dl(exchange, tmp_path, "-p", "BTC/USDT") == 0
    assert kline_starts(exchange, seen)[0] == START + 3 * DAY
    same(btc, expected(btc_5m, START + DAY, START + 6 * DAY))  # the candle in progress at 00:01 is not there

    # Prepend: a range that starts earlier fetches only the day before the file.
    seen = len(st.requests)
    assert dl(exchange, tmp_path, "-p", "BTC/USDT", "--timerange", "20240101-20240105") == 0
    starts = kline_starts(exchange, seen)
    assert starts[0] == START and all(s < START + DAY for s in starts)
    same(btc, expected(btc_5m, START, START + 6 * DAY))

    # Nothing missing: no candle request at all.
    seen = len(st.requests)
    assert dl(exchange, tmp_path, "-p", "BTC/USDT", "--timerange", "20240101-20240105") == 0
    assert kline_starts(exchange, seen) == []


@pytest.mark.parametrize("fmt", ["feather", "parquet", "json"])
def test_formats_are_readable_by_the_tools_that_use_them(
        exchange: LocalExchange, btc_5m: Candles, tmp_path: Path, fmt: str) -> None:
    assert dl(exchange, tmp_path, "-p", "BTC/USDT", "--timerange", "20240101-20240102", "--format", fmt) == 0
    path = tmp_path / candlefiles.file_name("BTC/USDT", "5m", fmt)
    want = expected(btc_5m, START, START + DAY)
    same(path, want)
    if fmt == "feather":  # what Freqtrade's feather handler reads
        df = pd.read_feather(path)
        assert list(df.columns) == ["date", "open", "high", "low", "close", "volume"]
        assert df["date"].iloc[0] == pd.Timestamp(START, unit="ms", tz="UTC")
    if fmt == "parquet":
        assert len(pd.read_parquet(path)) == len(want)


def test_rate_limits_are_waited_out_and_never_earn_a_ban(
        exchange: LocalExchange, btc_5m: Candles, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = exchange.state
    st.clock.set(START + 12 * DAY + 60_000)  # 12 days of 5m: four pages of 1000
    st.limits.window_seconds = 3  # the limiter's window (from the first request): Retry-After is seconds, not a minute
    st.limits.weight_per_minute = 26  # exchangeInfo (20), time (1) and two klines (2 each): the next is over
    st.limits.reset()  # the first window starts at the download's first request
    assert dl(exchange, tmp_path, "-p", "BTC/USDT", "--days", "12") == 0
    assert st.limits.rejected_429 >= 1 and st.limits.rejected_418 == 0
    assert "retried (rate limit or network)" in capsys.readouterr().err
    # --days 12 from 00:01 starts at the first whole candle after it
    same(tmp_path / "BTC_USDT-5m.csv.gz", expected(btc_5m, START + M5, START + 12 * DAY))


def test_server_errors_are_retried(exchange: LocalExchange, btc_5m: Candles, tmp_path: Path) -> None:
    st = exchange.state
    st.faults.inject(Fault("/api/v3/klines", status=503, body="Service Unavailable."))
    st.faults.inject(Fault("/api/v3/klines", status=502, body="Bad Gateway"))
    assert dl(exchange, tmp_path, "-p", "BTC/USDT", "--timerange", "20240101-20240102") == 0
    same(tmp_path / "BTC_USDT-5m.csv.gz", expected(btc_5m, START, START + DAY))


def test_killed_mid_download_leaves_nothing_half_written_and_the_rerun_fetches_only_the_rest(
        exchange: LocalExchange, btc_5m: Candles, tmp_path: Path) -> None:
    st = exchange.state
    st.clock.set(START + 40 * DAY + 60_000)  # 40 days of 5m: 12 pages
    st.faults.inject(Fault("/api/v3/klines", delay=0.4, times=1000))  # slow pages, so it can be killed midway
    target = tmp_path / "BTC_USDT-5m.csv.gz"
    journal = journal_path(target)
    cmd = [sys.executable, "-m", "kubetrade.cli", "download-data", "--exchange", "binance", "--exchange-url",
           exchange.url, "--datadir", str(tmp_path), "-p", "BTC/USDT", "-t", "5m", "--timerange", "20240101-20240210"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 240
        while not (journal.is_file() and journal.stat().st_size > 150_000):  # about three pages journalled
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the download never got going"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    st.faults.clear()
    assert not target.exists()  # the file is written only once, whole
    lines = journal.read_text().split("\n")
    assert lines[-1] == "" or "," in lines[-1]
    have = [int(line.split(",")[0]) for line in lines[:-1] if line.count(",") == 5]
    assert len(have) >= 2000 and have == sorted(have) and have[0] == START
    last = have[-1]

    seen = len(st.requests)
    assert dl(exchange, tmp_path, "-p", "BTC/USDT", "--timerange", "20240101-20240210") == 0
    starts = kline_starts(exchange, seen)
    assert starts[0] == last + M5  # nothing already journalled is asked for again
    same(target, expected(btc_5m, START, START + 40 * DAY))
    assert not journal.exists()


def test_a_torn_journal_line_is_dropped_and_asked_for_again(
        exchange: LocalExchange, btc_5m: Candles, tmp_path: Path) -> None:
    target = tmp_path / "BTC_USDT-5m.csv.gz"
    journal = journal_path(target)
    rows = expected(btc_5m, START, START + 10 * M5)
    text = candlefiles.csv_text(rows)
    journal.write_text(text + "1704070200000,42,4")  # a kill in the middle of the 11th line
    seen = len(exchange.state.requests)
    assert dl(exchange, tmp_path, "-p", "BTC/USDT", "--timerange", "20240101-20240102") == 0
    assert kline_starts(exchange, seen)[0] == START + 10 * M5
    same(target, expected(btc_5m, START, START + DAY))


def test_into_postgresql_incrementally(exchange: LocalExchange, btc_5m: Candles, fresh_db: str,
                                       tmp_path: Path) -> None:
    st = exchange.state
    st.clock.set(START + 3 * DAY + 60_000)
    assert dl(exchange, tmp_path, "-p", "BTC/USDT", "--timerange", "20240101-20240102", "--dsn", fresh_db) == 0
    seen = len(st.requests)
    assert dl(exchange, tmp_path, "-p", "BTC/USDT", "--days", "3", "--dsn", fresh_db) == 0
    assert kline_starts(exchange, seen)[0] == START + DAY
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT (extract(epoch FROM time) * 1000)::bigint, open, high, low, close, volume "
                            "FROM candles WHERE exchange = 'binance' AND symbol = 'BTC/USDT' AND timeframe = '5m' "
                            "ORDER BY time").fetchall()
    want = expected(btc_5m, START, START + 3 * DAY)
    assert [r[0] for r in rows] == want.time.tolist()
    assert [r[4] for r in rows] == want.close.tolist()
    assert not list(tmp_path.iterdir())  # nothing went to files


# --- bad input: one clear line, nothing written ----------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["--exchange", "binanse", "-p", "BTC/USDT"], "unknown exchange 'binanse': not a ccxt exchange id; did you mean"),
    (["-p", "XBT/USDT"], "unknown pair 'XBT/USDT' on binance; did you mean BTC/USDT"),
    (["-p", "BTC/USDT", "-t", "7m"], "binance has no 7m candles; it offers 1s, 1m, 3m"),
    (["-p", "BTC/USDT", "-t", "5x"], "unknown timeframe '5x'"),
    (["-p", "BTC/USDT", "--timerange", "2024"], "timerange '2024': expected YYYYMMDD-YYYYMMDD"),
    (["-p", "BTC/USDT", "--timerange", "20300101-"], "lies in the future"),
    (["-p", "BTC/USDT", "--days", "-3"], "--days must be positive"),
])
def test_bad_input_is_one_line_and_writes_nothing(
        exchange: LocalExchange, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        message: str) -> None:
    assert dl(exchange, tmp_path / "data", *args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_a_corrupted_stored_file_is_named_and_left_alone(
        exchange: LocalExchange, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "BTC_USDT-5m.csv.gz"
    target.write_bytes(b"\x1f\x8b\x08\x00garbage")
    assert dl(exchange, tmp_path, "-p", "BTC/USDT", "--timerange", "20240101-20240102") == 1
    err = capsys.readouterr().err.strip()
    assert str(target) in err and "--erase" in err and "\n" not in err
    assert target.read_bytes() == b"\x1f\x8b\x08\x00garbage"
    assert dl(exchange, tmp_path, "-p", "BTC/USDT", "--timerange", "20240101-20240102", "--erase") == 0
    assert len(candlefiles.load(target)) == 288


def test_a_gap_in_the_exchange_history_is_reported(
        exchange: LocalExchange, btc_5m: Candles, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The exchange lacks an hour (maintenance): the file keeps what exists, and the warning says where."""
    from kubetrade.candles import from_arrays

    keep = np.r_[0:100, 112:400]
    gapped = from_arrays(*(getattr(btc_5m, n)[keep] for n in ("time", "open", "high", "low", "close", "volume")),
                         symbol="GAP/USDT", timeframe="5m", check=False)
    exchange.state.add_candles("GAPUSDT", "5m", gapped)
    assert dl(exchange, tmp_path, "-p", "GAP/USDT", "--timerange", "20240101-20240102") == 0
    err = capsys.readouterr().err
    assert "warning: GAP/USDT 5m: the exchange has 1 gap(s), 12 candle(s) missing, first after 2024-01-01 08:15" in err
    got = candlefiles.load(tmp_path / "GAP_USDT-5m.csv.gz", check=False)
    assert len(got) == 288 - 12
