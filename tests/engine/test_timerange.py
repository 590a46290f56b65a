"""Freqtrade-style time ranges: parsed to the UTC milliseconds they name, half-open, refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrade import candlefiles
from kubetrade.cli import main
from kubetrade.timerange import TimeRangeError, parse

JAN1, FEB1 = 1_704_067_200_000, 1_706_745_600_000  # 2024-01-01, 2024-02-01 UTC


@pytest.mark.parametrize(("text", "start", "end"), [
    ("20240101-20240201", JAN1, FEB1),
    ("20240101-", JAN1, None),
    ("-20240201", None, FEB1),
    ("1704067200-1706745600", JAN1, FEB1),  # Unix seconds
    ("1704067200000-", JAN1, None),  # Unix milliseconds
    ("20240101T0930-", JAN1 + 9 * 3_600_000 + 30 * 60_000, None),
])
def test_forms(text: str, start: int | None, end: int | None) -> None:
    tr = parse(text)
    assert (tr.start_ms, tr.end_ms) == (start, end)


@pytest.mark.parametrize(("text", "message"), [
    ("", "expected YYYYMMDD-YYYYMMDD"),
    ("20240101", "expected YYYYMMDD-YYYYMMDD"),
    ("2024-01-01-2024-02-01", "expected YYYYMMDD-YYYYMMDD"),
    ("20240201-20240101", "the end is not after the start"),
    ("20241301-", "'20241301' is not a valid date"),
    ("-", "give a start, an end or both"),
    ("yesterday-", "'yesterday' is not a date"),
])
def test_refusals(text: str, message: str) -> None:
    with pytest.raises(TimeRangeError, match=message):
        parse(text)


def test_half_open_on_real_candles(market_data: Path) -> None:
    c = candlefiles.load(market_data / "binance-spot" / "ETH_USDT-1h.csv.gz")
    jan = parse("20240101-20240201").apply(c)
    assert len(jan) == 31 * 24 and jan.time[0] == JAN1 and jan.time[-1] == FEB1 - 3_600_000
    assert parse("-20300101").apply(c) is c  # covers everything: the series itself
    with pytest.raises(TimeRangeError, match=r"outside the data of .* runs from 2024-01-01 00:00 to 2024-09-06"):
        parse("20230101-20231231").apply(c)


def test_evolve_takes_a_timerange(market_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = market_data / "binance-spot" / "ETH_USDT-1h.csv.gz"
    code = main(["evolve", str(data), "--timerange", "20240301-20240601", "--population", "8", "--generations", "1",
                 "--min-trades", "1", "--top", "2", "--out", str(tmp_path)])
    assert code in (0, 3), capsys.readouterr()  # 3: no survivor of such a tiny search, still a clean run
    out = capsys.readouterr().out
    assert "genomes tried" in out
    assert main(["evolve", str(data), "--timerange", "20300101-", "--population", "8"]) == 1
    assert "outside the data" in capsys.readouterr().out
