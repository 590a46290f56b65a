"""``kubetrade backtest`` as a trader uses it: timerange, several strategies, exported trades,
breakdowns, JSON output and the HTML report, on the shipped real candles.

The numbers themselves are the engine's (tested against reference implementations in
test_backtest/test_vectorbt); what is checked here is that the tools report them faithfully:
the timerange selects exactly the bars it names, the exported trades add up to the metrics,
the breakdowns add up to the trades, the report draws every trade and fetches nothing.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kubetrade import candlefiles
from kubetrade.candles import HEADER
from kubetrade.cli import main
from kubetrade.engine.runs import Costs, backtest
from kubetrade.engine.templates import expand
from kubetrade.timerange import parse

ETH_1H = Path(__file__).resolve().parents[1] / "data" / "binance-spot" / "ETH_USDT-1h.csv.gz"
RANGE = "20240301-20240601"


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["backtest", *args, "--output", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_timerange_and_several_strategies_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, str(ETH_1H), "--template", "ema-crossover", "--template", "rsi-reversion",
                   "--template", "ema-crossover:fast=5,slow=30", "--timerange", RANGE, "--breakdown", "week", "month")
    names = [s["name"] for s in doc["strategies"]]
    assert names == ["ema-crossover", "rsi-reversion", "ema-crossover:fast=5,slow=30"]
    full = candlefiles.load(ETH_1H)
    cut = parse(RANGE).apply(full)
    for s, (name, params) in zip(doc["strategies"], [("ema-crossover", {}), ("rsi-reversion", {}),
                                                    ("ema-crossover", {"fast": 5, "slow": 30})], strict=True):
        (r,) = s["results"]
        assert (r["start"], r["end"]) == ("2024-03-01T00:00:00Z", "2024-05-31T23:00:00Z")
        assert r["bars"] == len(cut) == 92 * 24
        direct = backtest(expand(name, params), cut, Costs()).metrics
        assert r["total_return"] == direct.total_return and r["trades"] == direct.trades
        # the month breakdown adds up to the strategy's closed trades
        months = s["breakdown"]["month"]
        assert [m["period"] for m in months] == ["2024-03", "2024-04", "2024-05"]
        assert sum(m["trades"] for m in months) == s["summary"]["trades"] == direct.trades
        assert sum(m["pnl"] for m in months) == pytest.approx(s["summary"]["total_pnl"], abs=1e-9)
        assert sum(w["trades"] for w in s["breakdown"]["week"]) == direct.trades
    assert len({s["summary"]["total_pnl"] for s in doc["strategies"]}) == 3  # three different strategies


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_export_trades(tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str) -> None:
    target = tmp_path / f"trades{suffix}"
    doc = run_json(capsys, str(ETH_1H), "--template", "ema-crossover", "--timerange", RANGE, "--export", "trades",
                   "--export-filename", str(target))
    (r,) = doc["strategies"][0]["results"]
    if suffix == ".csv":
        with target.open() as f:
            rows = list(csv.DictReader(f))
        pnl = [float(x["pnl"]) for x in rows]
    else:
        rows = json.loads(target.read_text())["trades"]
        pnl = [x["pnl"] for x in rows]
    still_open = r["open_position"] is not None
    assert len(rows) == r["trades"] + still_open and r["trades"] > 10
    assert rows[0]["symbol"] == "ETH/USDT" and rows[0]["strategy"] == "ema-crossover"
    assert all(row["entry_time"] < row["exit_time"] for row in rows)
    assert rows[0]["entry_time"] >= "2024-03-01" and rows[-1]["exit_time"] < "2024-06-01"
    # closed trades plus the position still open (marked at the last close) are the whole change in equity
    assert still_open and rows[-1]["exit_reason"].startswith("open at the end")
    assert sum(pnl) == pytest.approx(r["final_equity"] - 10_000.0, rel=1e-9)


def test_feather_and_parquet_give_the_same_backtest_as_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = candlefiles.load(ETH_1H)
    frame = pd.DataFrame({"date": pd.to_datetime(c.time, unit="ms", utc=True),
                          **{n: getattr(c, n) for n in HEADER[1:]}})
    frame.to_feather(tmp_path / "ETH_USDT-1h.feather")
    frame.to_parquet(tmp_path / "ETH_USDT-1h.parquet")
    docs = [run_json(capsys, str(p), "--template", "rsi-reversion", "--timerange", RANGE)
            for p in (ETH_1H, tmp_path / "ETH_USDT-1h.feather", tmp_path / "ETH_USDT-1h.parquet")]
    metrics = [{k: v for k, v in d["strategies"][0]["results"][0].items() if k != "file"} for d in docs]
    assert metrics[0] == metrics[1] == metrics[2]


def test_html_report_is_self_contained_and_draws_every_trade(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.html"
    doc = run_json(capsys, str(ETH_1H), "--template", "ema-crossover", "--template", "rsi-reversion",
                   "--timerange", RANGE, "--report", str(report))
    text = report.read_text()
    # opens with nothing from the network: no script, stylesheet, font, image or link to fetch
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(|https?://|src=", text, re.I)
    svgs = re.findall(r"<svg.*?</svg>", text, re.S)
    assert len(svgs) == 2 * 3  # price, equity, drawdown per strategy
    for svg in svgs:
        ET.fromstring(svg)  # well-formed: a browser draws it
    for strategy in doc["strategies"]:
        (r,) = strategy["results"]
        assert f"<h2>{strategy['name']}</h2>" in text
        assert f"{r['total_return']:+.2%}" in text and f"{r['trades']} trades" in text
    entries = sum(len(re.findall(r"<polygon class=\"(long|short)\"", s)) for s in svgs)
    still_open = sum(s["results"][0]["open_position"] is not None for s in doc["strategies"])
    assert entries == sum(s["summary"]["trades"] for s in doc["strategies"]) + still_open
    assert "Strategies side by side" in text and "by month" in text


def test_first_kernel_use_says_what_it_is_doing(tmp_path: Path) -> None:
    """A fresh process has no kernel loaded: before the (possibly minute-long) compile it says so."""
    out = subprocess.run([sys.executable, "-m", "kubetrade.cli", "backtest", str(ETH_1H), "--template",
                          "ema-crossover", "--output", "json"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "preparing the backtest kernels: compiled on first use" in out.stderr
    assert json.loads(out.stdout)["strategies"][0]["results"][0]["bars"] == len(candlefiles.load(ETH_1H))


# --- bad input ---------------------------------------------------------------------------------


def _fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``kubetrade backtest ARGS`` exits 1 with one line on stderr; returns it."""
    assert main(["backtest", *args]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in captured.out + captured.err
    return err


def test_timerange_outside_the_data(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = _fails(capsys, str(ETH_1H), "--template", "ema-crossover", "--timerange", "20250101-20250201",
                 "--report", str(tmp_path / "r.html"), "--export", "trades", "--export-filename",
                 str(tmp_path / "t.csv"))
    assert "timerange 20250101-20250201 is outside the data of" in err and "2024-01-01 00:00 to 2024-09-06" in err
    assert not any(tmp_path.iterdir())  # no report, no export


def test_mixed_timeframes(capsys: pytest.CaptureFixture[str], market_data: Path) -> None:
    err = _fails(capsys, str(ETH_1H), str(market_data / "binance-spot" / "ETH_USDT-1d.csv.gz"), "--template",
                 "ema-crossover")
    assert "must share a timeframe; got 1h (ETH_USDT-1h.csv.gz), 1d (ETH_USDT-1d.csv.gz)" in err


def test_truncated_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "ETH_USDT-1h.csv.gz"
    bad.write_bytes(ETH_1H.read_bytes()[:5000])
    assert "truncated or corrupted gzip" in _fails(capsys, str(bad), "--template", "ema-crossover")


def test_feather_missing_columns(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    c = candlefiles.load(ETH_1H)
    path = tmp_path / "ETH_USDT-1h.feather"
    pd.DataFrame({"date": pd.to_datetime(c.time, unit="ms", utc=True), "close": c.close}).to_feather(path)
    err = _fails(capsys, str(path), "--template", "ema-crossover")
    assert "missing column(s) open, high, low, volume" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--template", "nope"], "unknown strategy template 'nope'"),
    (["--template", "ema-crossover:fast=x"], "'x' is not a number"),
    ([], "give at least one --strategy, --genome or --template"),
    (["--template", "ema-crossover", "--timerange", "2024-03"], "timerange '2024-03': '2024' is not a date"),
    (["--template", "ema-crossover", "--export", "trades", "--export-filename", "t.txt"], ".csv or .json name"),
])
def test_bad_arguments(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert message in _fails(capsys, str(ETH_1H), *args)


def test_breakdown_matches_trade_exit_times(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "t.json"
    doc = run_json(capsys, str(ETH_1H), "--template", "ema-crossover", "--timerange", RANGE, "--breakdown", "day",
                   "--export", "trades", "--export-filename", str(target))
    trades = json.loads(target.read_text())["trades"]
    by_day: dict[str, float] = {}
    for t in trades:
        if t["exit_reason"].startswith("open"):
            continue  # the breakdown counts closed trades
        by_day[t["exit_time"][:10]] = by_day.get(t["exit_time"][:10], 0.0) + t["pnl"]
    days = doc["strategies"][0]["breakdown"]["day"]
    assert {d["period"]: d["pnl"] for d in days} == pytest.approx(by_day)
    assert np.all(np.diff([np.datetime64(d["period"]) for d in days]).astype(int) > 0)


def test_datadir_pairs_and_timeframe_like_freqtrade(capsys: pytest.CaptureFixture[str], market_data: Path,
                                                    tmp_path: Path) -> None:
    spot = market_data / "binance-spot"
    every = run_json(capsys, "--datadir", str(spot), "-i", "1d", "--template", "ema-crossover:fast=5,slow=20")
    symbols = [r["symbol"] for r in every["strategies"][0]["results"]]
    assert symbols == sorted(f"{b}/USDT" for b in ("AVAX", "BTC", "DOGE", "ETH", "LINK", "LTC", "SOL", "TRX", "XRP"))
    two = run_json(capsys, "--datadir", str(spot), "--pairs", "ETH/USDT", "BTC/USDT", "-i", "1d", "--template",
                   "ema-crossover:fast=5,slow=20")
    assert [r["symbol"] for r in two["strategies"][0]["results"]] == ["ETH/USDT", "BTC/USDT"]
    # the same pair in two formats is one series (the CSV), not two
    c = candlefiles.load(spot / "BTC_USDT-1d.csv.gz")
    (tmp_path / "BTC_USDT-1d.csv.gz").write_bytes((spot / "BTC_USDT-1d.csv.gz").read_bytes())
    candlefiles.write(tmp_path / "BTC_USDT-1d.feather", c)
    one = run_json(capsys, "--datadir", str(tmp_path), "-i", "1d", "--template", "ema-crossover:fast=5,slow=20")
    assert [r["file"].endswith(".csv.gz") for r in one["strategies"][0]["results"]] == [True]
    err = _fails(capsys, "--datadir", str(spot), "--pairs", "XRP/USDT", "-i", "1h", "--template", "ema-crossover")
    assert "no 1h file for XRP/USDT in" in err and "kubetrade download-data --pairs XRP/USDT --timeframes 1h" in err
    assert "--datadir needs --timeframe" in _fails(capsys, "--datadir", str(spot), "--template", "ema-crossover")
