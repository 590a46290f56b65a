"""Candle files traders already have - Freqtrade's feather and json, Parquet from /api/v1/bulk -
load to exactly the bars of the shipped CSV, and broken files are refused in one line naming the file.

Every fixture file is written here, from the shipped real candles, by the real library that
writes such files in the wild: pandas' ``to_feather``/``to_json`` (as Freqtrade stores
candles), pyarrow's Parquet writer, and the API's own streaming bulk encoder.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from kubetrade import candlefiles
from kubetrade.candles import HEADER, CandleError, Candles
from kubetrade.collector.replay import load_series
from kubetrade.storage import export


@pytest.fixture(scope="module")
def eth_1h(market_data: Path) -> Candles:
    return candlefiles.load(market_data / "binance-spot" / "ETH_USDT-1h.csv.gz")


def _frame(c: Candles) -> pd.DataFrame:
    """The DataFrame Freqtrade keeps: a tz-aware ``date`` column (ns precision) and float prices."""
    return pd.DataFrame({"date": pd.to_datetime(c.time, unit="ms", utc=True),
                         **{n: getattr(c, n) for n in HEADER[1:]}})


def _same(a: Candles, b: Candles) -> None:
    assert a.symbol == b.symbol and a.timeframe == b.timeframe
    for name in HEADER:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_freqtrade_feather(eth_1h: Candles, tmp_path: Path) -> None:
    path = tmp_path / "ETH_USDT-1h.feather"
    _frame(eth_1h).to_feather(path, compression="lz4")  # what Freqtrade's feather data handler writes
    _same(candlefiles.load(path), eth_1h)


def test_freqtrade_futures_feather_name(eth_1h: Candles, tmp_path: Path) -> None:
    path = tmp_path / "ETH_USDT_USDT-1h-futures.feather"
    _frame(eth_1h).to_feather(path)
    c = candlefiles.load(path)
    assert c.symbol == "ETH/USDT:USDT" and c.timeframe == "1h"


@pytest.mark.parametrize("gz", [False, True])
def test_freqtrade_json_and_jsongz(eth_1h: Candles, tmp_path: Path, gz: bool) -> None:
    # Freqtrade's json: pandas' to_json(orient="values") with dates as epoch ms: [[ms, o, h, l, c, v], ...]
    df = _frame(eth_1h)
    df["date"] = (df["date"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    text = df.to_json(orient="values", double_precision=15)
    path = tmp_path / ("ETH_USDT-1h.json.gz" if gz else "ETH_USDT-1h.json")
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    c = candlefiles.load(path)
    np.testing.assert_array_equal(c.time, eth_1h.time)
    np.testing.assert_allclose(c.close, eth_1h.close, rtol=1e-14)


async def test_bulk_export_parquet(eth_1h: Candles, tmp_path: Path) -> None:
    """The bytes GET /api/v1/bulk?format=parquet streams, from the same encoder, read back."""
    rows = list(zip(eth_1h.time.tolist(), *(getattr(eth_1h, n).tolist() for n in HEADER[1:]), strict=True))

    async def chunks():  # two chunks: two row groups, as a long export has
        yield rows[:3000]
        yield rows[3000:]

    path = tmp_path / "ETH_USDT-1h.parquet"
    path.write_bytes(b"".join([part async for part in export.parquet_chunks(chunks(), "ETH/USDT")]))
    assert pq.ParquetFile(path).num_row_groups == 2
    _same(candlefiles.load(path), eth_1h)


def test_freqtrade_parquet(eth_1h: Candles, tmp_path: Path) -> None:
    path = tmp_path / "ETH_USDT-1h.parquet"
    _frame(eth_1h).to_parquet(path)
    _same(candlefiles.load(path), eth_1h)


@pytest.mark.parametrize("fmt", list(candlefiles.FORMATS))
def test_write_then_load_is_exact(eth_1h: Candles, tmp_path: Path, fmt: str) -> None:
    path = candlefiles.write(tmp_path / candlefiles.file_name("ETH/USDT", "1h", fmt), eth_1h)
    _same(candlefiles.load(path), eth_1h)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_replay_collector_reads_feather(eth_1h: Candles, tmp_path: Path) -> None:
    _frame(eth_1h).to_feather(tmp_path / "ETH_USDT-1h.feather")
    series = load_series(tmp_path, ["ETH/USDT"], ["1h"])
    _same(next(iter(series.values())), eth_1h)
    with pytest.raises(CandleError, match=r"no file for BTC/USDT 1h in .* available: ETH_USDT-1h.feather"):
        load_series(tmp_path, ["BTC/USDT"], ["1h"])


# --- bad input: one line, naming the file and what is wrong -----------------------------------


def _one_line(exc: pytest.ExceptionInfo[CandleError], path: Path) -> str:
    text = str(exc.value)
    assert "\n" not in text and str(path) in text
    return text


def test_feather_missing_columns(eth_1h: Candles, tmp_path: Path) -> None:
    path = tmp_path / "ETH_USDT-1h.feather"
    _frame(eth_1h).drop(columns=["volume", "low"]).to_feather(path)
    with pytest.raises(CandleError) as exc:
        candlefiles.load(path)
    assert "missing column(s) low, volume; has date, open, high, close" in _one_line(exc, path)


def test_truncated_feather(eth_1h: Candles, tmp_path: Path) -> None:
    path = tmp_path / "ETH_USDT-1h.feather"
    _frame(eth_1h).to_feather(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CandleError) as exc:
        candlefiles.load(path)
    assert "not a readable feather file" in _one_line(exc, path)


def test_truncated_gzip_csv(market_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "ETH_USDT-1h.csv.gz"
    data = (market_data / "binance-spot" / "ETH_USDT-1h.csv.gz").read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CandleError) as exc:
        candlefiles.load(path)
    assert "truncated or corrupted gzip" in _one_line(exc, path)


def test_corrupted_json(eth_1h: Candles, tmp_path: Path) -> None:
    path = tmp_path / "ETH_USDT-1h.json"
    rows = [[int(t), 1.0, 2.0, 0.5, 1.5, 3.0] for t in eth_1h.time[:10]]
    path.write_text(json.dumps(rows)[:-40])
    with pytest.raises(CandleError) as exc:
        candlefiles.load(path)
    assert "not valid JSON" in _one_line(exc, path)


def test_corrupted_parquet(tmp_path: Path) -> None:
    path = tmp_path / "ETH_USDT-1h.parquet"
    path.write_bytes(b"PAR1" + b"\x00garbage" * 50)
    with pytest.raises(CandleError) as exc:
        candlefiles.load(path)
    assert "not a readable Parquet file" in _one_line(exc, path)


def test_parquet_with_two_symbols(eth_1h: Candles, tmp_path: Path) -> None:
    path = tmp_path / "mixed-1h.parquet"
    n = 10
    pq.write_table(pa.table({"symbol": ["ETH/USDT"] * 5 + ["BTC/USDT"] * 5,
                             "time": pa.array(eth_1h.time[:n]).cast(pa.timestamp("ms", tz="UTC")),
                             **{c: getattr(eth_1h, c)[:n] for c in HEADER[1:]}}), path)
    with pytest.raises(CandleError) as exc:
        candlefiles.load(path)
    assert "holds 2 symbols" in _one_line(exc, path)


def test_file_named_for_another_timeframe(eth_1h: Candles, tmp_path: Path) -> None:
    path = tmp_path / "ETH_USDT-5m.feather"  # 1h bars in a file that says 5m
    _frame(eth_1h).to_feather(path)
    with pytest.raises(CandleError) as exc:
        candlefiles.load(path)
    assert "bars are 1h apart but the file is named for 5m" in _one_line(exc, path)


def test_mixed_timeframes_inside_one_file(eth_1h: Candles, tmp_path: Path) -> None:
    """5m bars spliced into an hourly series: refused as a gap or a duplicate, never read as is."""
    df = _frame(eth_1h.slice(0, 50))
    extra = df.iloc[[10]].copy()
    extra["date"] = extra["date"] + pd.Timedelta(minutes=5)
    path = tmp_path / "ETH_USDT-1h.feather"
    pd.concat([df.iloc[:11], extra, df.iloc[11:]]).reset_index(drop=True).to_feather(path)
    with pytest.raises(CandleError, match=r"gap after 2024-01-01T10:00"):
        candlefiles.load(path)


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "ETH_USDT-1h.hdf5"
    path.write_bytes(b"x")
    with pytest.raises(CandleError, match=r"unknown candle file type; expected one of \.csv\.gz"):
        candlefiles.load(path)


def test_feather_with_string_prices(eth_1h: Candles, tmp_path: Path) -> None:
    path = tmp_path / "ETH_USDT-1h.feather"
    df = _frame(eth_1h.slice(0, 20))
    df["close"] = df["close"].astype(str) + "x"
    df.to_feather(path)
    with pytest.raises(CandleError) as exc:
        candlefiles.load(path)
    assert "column close is" in _one_line(exc, path)


def test_atomic_write_keeps_the_old_file_on_failure(eth_1h: Candles, tmp_path: Path) -> None:
    path = candlefiles.write(tmp_path / "ETH_USDT-1h.feather", eth_1h)
    before = path.read_bytes()
    broken = Candles(eth_1h.time, eth_1h.open, eth_1h.high, eth_1h.low, eth_1h.close[:5], eth_1h.volume,
                     symbol="ETH/USDT", timeframe="1h")
    with pytest.raises(pa.ArrowInvalid):
        candlefiles.write(path, broken)  # columns of unequal length: the writer fails half-way
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]
    assert feather.read_table(path).num_rows == len(eth_1h)
