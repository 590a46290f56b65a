"""The TimescaleDB path for real: migration 0200, the Timescale DDL and the history queries on
PGlite's TimescaleDB build (WASM, one connection, no COPY - so rows go in with INSERT here)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from kubetrade.candles import Candles, load_csv
from kubetrade.storage import history, timescale
from kubetrade.storage.candles import MERGE_SQL, SeriesKey
from kubetrade.storage.migrate import MIGRATIONS_DIR
from kubetrade_testbed.pglite import PGliteTimescale

DAY_1M = 1440


@pytest.fixture(scope="module")
def btc_1m(market_data: Path) -> Candles:
    c = load_csv(market_data / "binance-usdm" / "BTC_USDT-1m-perp.csv.gz")
    first_midnight = int(np.argmax(c.time % 86_400_000 == 0))  # buckets up to 1d start whole
    return c.slice(first_midnight, first_midnight + 2 * DAY_1M)


def _values(key: SeriesKey, c: Candles) -> str:
    rows = []
    for i in range(len(c)):
        ts = datetime.fromtimestamp(int(c.time[i]) / 1000, UTC).isoformat()
        o, h, lo, cl, v = (float(getattr(c, f)[i]) for f in ("open", "high", "low", "close", "volume"))
        rows.append(f"('{key.exchange}','{key.symbol}','{key.timeframe}','{ts}',{o!r},{h!r},{lo!r},{cl!r},{v!r})")
    return ",".join(rows)


@pytest.fixture(scope="module")
def db(btc_1m: Candles) -> Iterator[PGliteTimescale]:
    with PGliteTimescale() as pg:
        pg.exec((MIGRATIONS_DIR / "0200_market_data.sql").read_text())
        for sql in timescale.statements():
            pg.exec(sql)
        key = SeriesKey("binance", "BTC/USDT", "1m")
        pg.exec(f"INSERT INTO candles VALUES {_values(key, btc_1m)}")
        for tf in history.CAGG_TIMEFRAMES:
            pg.exec(f"CALL refresh_continuous_aggregate('candles_{tf}', NULL, NULL)")
        yield pg


def test_candles_is_a_compressed_hypertable_with_policies(db: PGliteTimescale) -> None:
    assert db.exec("SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables") == [
        ["candles", True]]
    jobs = {r[0] for r in db.exec("SELECT proc_name FROM timescaledb_information.jobs")}
    assert {"policy_compression", "policy_retention", "policy_refresh_continuous_aggregate"} <= jobs
    views = {r[0] for r in db.exec("SELECT view_name FROM timescaledb_information.continuous_aggregates")}
    assert views == {f"candles_{tf}" for tf in history.CAGG_TIMEFRAMES}
    again = timescale.statements()  # every statement is idempotent: a restart applies them again
    for sql in again:
        db.exec(sql)


@pytest.mark.parametrize("tf", ["5m", "15m", "1h", "4h", "1d"])
def test_continuous_aggregates_equal_date_bin_and_numpy(db: PGliteTimescale, btc_1m: Candles, tf: str) -> None:
    key = SeriesKey("binance", "BTC/USDT", tf)
    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    cagg = history.plan(key, start, end, 10_000, stored=False, base="1m", timescale=True)
    binned = history.plan(key, start, end, 10_000, stored=False, base="1m", timescale=False)
    assert cagg.source == f"cagg:{tf}" and binned.source == "date_bin:1m"
    got = db.query(cagg.sql, cagg.params)
    assert got == db.query(binned.sql, binned.params), "both paths give the same candles"
    per = {"5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}[tf]
    n = 2 * DAY_1M // per
    assert len(got) == n
    for j in (0, n // 2, n - 1):
        sl = slice(j * per, (j + 1) * per)
        t, o, h, lo, c, v = got[j]
        assert t == int(btc_1m.time[j * per])
        assert (o, c) == (float(btc_1m.open[j * per]), float(btc_1m.close[(j + 1) * per - 1]))
        assert (h, lo) == (float(np.max(btc_1m.high[sl])), float(np.min(btc_1m.low[sl])))
        assert v == pytest.approx(float(np.sum(btc_1m.volume[sl])))


def test_corrected_candle_upserts_into_a_compressed_chunk(db: PGliteTimescale, btc_1m: Candles) -> None:
    db.exec("SELECT compress_chunk(c, if_not_compressed => TRUE) FROM show_chunks('candles') c")
    assert db.exec("SELECT count(*) FROM timescaledb_information.chunks WHERE is_compressed")[0][0] >= 1
    key = SeriesKey("binance", "BTC/USDT", "1m")
    fixed = btc_1m.slice(10, 11)
    corrected = Candles(fixed.time, fixed.open, fixed.high + 1000, fixed.low, fixed.close, fixed.volume)
    db.exec("CREATE TEMP TABLE candles_stage (LIKE candles INCLUDING DEFAULTS)")
    db.exec(f"INSERT INTO candles_stage VALUES {_values(key, corrected)}")
    db.exec(MERGE_SQL)
    db.exec("CALL refresh_continuous_aggregate('candles_1h', NULL, NULL)")
    plan = history.plan(SeriesKey("binance", "BTC/USDT", "1h"), datetime(2000, 1, 1, tzinfo=UTC),
                        datetime(2100, 1, 1, tzinfo=UTC), 1, stored=False, base="1m", timescale=True)
    assert db.query(plan.sql, plan.params)[0][2] == float(fixed.high[0]) + 1000
    rows = db.query(history.STORED_SQL, {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m",
                                         "start": datetime(2000, 1, 1, tzinfo=UTC),
                                         "end": datetime(2100, 1, 1, tzinfo=UTC), "limit": 100_000})
    assert len(rows) == 2 * DAY_1M, "an update, not a second row"
