"""What a Freqtrade user does first, in that order, against the local Binance-compatible exchange:
``download-data``, then ``backtest --timerange ... --export trades``, then open the HTML report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from kubetrade import candlefiles
from kubetrade.candles import Candles
from kubetrade.cli import main
from kubetrade_testbed.exchange import LocalExchange

from .conftest import START

DAY = 86_400_000


def test_download_then_backtest_with_export_then_report(
        exchange: LocalExchange, btc_5m: Candles, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # default folders are relative, as a user's shell would have them
    exchange.state.clock.set(START + 21 * DAY + 60_000)
    assert main(["download-data", "--exchange", "binance", "--exchange-url", exchange.url, "--pairs", "BTC/USDT",
                 "ETH/USDT", "--timeframes", "5m", "--timerange", "20240101-20240120"]) == 0
    files = sorted((tmp_path / "data" / "binance").iterdir())
    assert [f.name for f in files] == ["BTC_USDT-5m.csv.gz", "ETH_USDT-5m.csv.gz"]
    got = candlefiles.load(files[0])
    lo, hi = np.searchsorted(btc_5m.time, [START, START + 19 * DAY])
    np.testing.assert_array_equal(got.close, btc_5m.close[lo:hi])  # the exchange's real candles, unchanged

    assert main(["backtest", *map(str, files), "--template", "ema-crossover", "--template", "rsi-reversion",
                 "--timerange", "20240105-20240115", "--export", "trades", "--breakdown", "day",
                 "--report", "report.html"]) == 0
    (export,) = (tmp_path / "backtest_results").glob("backtest-trades-*.json")
    trades = json.loads(export.read_text())["trades"]
    assert {t["strategy"] for t in trades} == {"ema-crossover", "rsi-reversion"}
    assert {t["symbol"] for t in trades} == {"BTC/USDT", "ETH/USDT"}
    assert all("2024-01-05" <= t["entry_time"] < "2024-01-15" for t in trades)

    report = (tmp_path / "report.html").read_text()
    assert report.startswith("<!doctype html>") and not re.search(r"<script|<link|https?://|src=", report)
    assert report.count("<svg") == 2 * 2 * 3  # strategies x pairs x (price, equity, drawdown)
    markers = len(re.findall(r'<polygon class="(?:long|short)"', report))
    assert markers == len(trades)  # every exported trade (closed or still open) is on a price chart
    assert "Strategies side by side" in report and "2024-01-05 00:00 to 2024-01-14 23:55" in report
