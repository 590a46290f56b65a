"""The candle loader accepts the real files and refuses each kind of untrustworthy input by name."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kubetrade.candles import CandleError, Candles, from_arrays, load_csv, timeframe_ms


def test_real_file_loads_with_symbol_and_timeframe(btc_1m_full: Candles) -> None:
    assert len(btc_1m_full) == 43_199
    assert btc_1m_full.symbol == "BTC/USDT:USDT" and btc_1m_full.timeframe == "1m"
    assert btc_1m_full.bar_ms == 60_000
    # a fact checkable elsewhere: the perpetual's May 2025 all-time high, 111,959.5 on 22 May
    top = int(np.argmax(btc_1m_full.high))
    assert btc_1m_full.high[top] == pytest.approx(111_959.5, abs=0.5)
    assert btc_1m_full.time[top] == 1_747_935_240_000  # 2025-05-22 17:34 UTC


def test_perpetual_file_gets_a_settle_symbol(eth_perp: Candles) -> None:
    assert eth_perp.symbol == "ETH/USDT:USDT"


def _bars(n: int = 5) -> dict[str, Any]:
    t = np.arange(n, dtype=np.int64) * 60_000 + 1_700_000_000_000
    close = np.linspace(100, 104, n)
    return {"time": t, "open": close - 0.5, "high": close + 1, "low": close - 1, "close": close,
            "volume": np.ones(n)}


@pytest.mark.parametrize(
    ("column", "row", "value", "message"),
    [
        ("time", 3, 1_700_000_000_000 + 60_000 * 2, "duplicate timestamp"),
        ("time", 3, 1_700_000_000_000 + 60_000 * 1, "not sorted"),
        ("time", 4, 1_700_000_000_000 + 60_000 * 6, "gap after"),
        ("close", 2, np.nan, "close is nan at row 2"),
        ("open", 1, 0.0, "open is not positive"),
        ("volume", 4, -1.0, "volume is negative"),
        ("high", 2, 50.0, "outside open"),
    ],
)
def test_bad_candles_are_refused_by_name(column: str, row: int, value: float, message: str) -> None:
    bars = _bars()
    bars[column] = bars[column].astype(bars[column].dtype)
    bars[column][row] = value
    with pytest.raises(CandleError, match=message):
        from_arrays(**bars, timeframe="1m", source="test")


def test_gap_message_counts_missing_bars() -> None:
    bars = _bars(6)
    bars["time"][3:] += 3 * 60_000
    with pytest.raises(CandleError, match=r"3 bar\(s\) of 60s missing"):
        from_arrays(**bars, timeframe="1m")


def test_file_with_wrong_header_or_gap(tmp_path: Path) -> None:
    bad = tmp_path / "X_USDT-1m.csv.gz"
    with gzip.open(bad, "wt") as f:
        f.write("ts,o,h,l,c,v\n1,1,1,1,1,1\n")
    with pytest.raises(CandleError, match="header"):
        load_csv(bad)
    gap = tmp_path / "Y_USDT-1m.csv.gz"
    with gzip.open(gap, "wt") as f:
        f.write("time,open,high,low,close,volume\n0,1,1,1,1,1\n60000,1,1,1,1,1\n240000,1,1,1,1,1\n")
    with pytest.raises(CandleError, match="gap after 1970-01-01T00:01:00"):
        load_csv(gap)


def test_timeframes() -> None:
    assert timeframe_ms("5m") == 300_000 and timeframe_ms("1d") == 86_400_000
    with pytest.raises(CandleError, match="unknown timeframe"):
        timeframe_ms("5x")
