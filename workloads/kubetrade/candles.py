"""OHLCV candles: the one in-memory shape, the file loader and the checks every consumer relies on.

Every component that reads bars (backtester, evolution, replay collector, strategy runner)
gets them through :class:`Candles`, and :func:`validate` is the single place that refuses
what would otherwise give a silently wrong result: gaps, duplicated or unsorted timestamps,
NaN, zero or negative prices, and highs/lows that do not bracket the open and close.

Files are gzip CSV with the header ``time,open,high,low,close,volume``; ``time`` is the
candle's open time in UTC milliseconds.
"""

from __future__ import annotations

import gzip
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kubetrade.timeframes import CandleError as CandleError
from kubetrade.timeframes import timeframe_ms as timeframe_ms

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

HEADER = ("time", "open", "high", "low", "close", "volume")

_FILE_RE = re.compile(r"^(?P<base>[A-Z0-9]+)_(?P<quote>[A-Z0-9]+)-(?P<tf>\d+[smhdw])(?P<perp>-perp)?\.csv(\.gz)?$")


@dataclass(frozen=True)
class Candles:
    """Columns of equally spaced bars; arrays are contiguous float64 (time is int64 ms)."""

    time: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    symbol: str = ""
    timeframe: str = ""
    source: str = ""

    def __len__(self) -> int:
        return int(self.time.shape[0])

    @property
    def bar_ms(self) -> int:
        """Bar length in ms, from the timeframe if known, else from the first two bars."""
        if self.timeframe:
            return timeframe_ms(self.timeframe)
        if len(self) < 2:
            raise CandleError(f"{self.label}: need a timeframe or at least two bars to know the bar length")
        return int(self.time[1] - self.time[0])

    @property
    def bars_per_year(self) -> float:
        """Bars in a 365-day year: crypto trades every day, so no 252-day convention."""
        return 365.0 * 86_400_000 / self.bar_ms

    @property
    def label(self) -> str:
        return self.source or self.symbol or "candles"

    def field(self, name: str) -> FloatArray:
        """A price column by name (open, high, low, close, volume)."""
        if name not in HEADER[1:]:
            raise CandleError(f"unknown price field {name!r}: expected one of {', '.join(HEADER[1:])}")
        arr: FloatArray = getattr(self, name)
        return arr

    def slice(self, start: int, stop: int) -> Candles:
        """Bars ``start:stop`` (copies, so a slice can outlive the full series)."""
        sl = slice(start, stop)

        def cut(a: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
            return np.ascontiguousarray(a[sl])

        return Candles(
            cut(self.time), cut(self.open), cut(self.high), cut(self.low), cut(self.close), cut(self.volume),  # type: ignore[arg-type]
            symbol=self.symbol,
            timeframe=self.timeframe,
            source=f"{self.label}[{start}:{stop}]",
        )


def from_arrays(
    time: npt.ArrayLike,
    open: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
    *,
    symbol: str = "",
    timeframe: str = "",
    source: str = "",
    check: bool = True,
) -> Candles:
    """Build :class:`Candles` from array-likes and (by default) :func:`validate` them."""
    def f64(a: npt.ArrayLike) -> FloatArray:
        return np.ascontiguousarray(a, dtype=np.float64)

    candles = Candles(
        np.ascontiguousarray(time, dtype=np.int64), f64(open), f64(high), f64(low), f64(close), f64(volume),
        symbol=symbol,
        timeframe=timeframe,
        source=source,
    )
    if check:
        validate(candles)
    return candles


def _when(ms: int) -> str:
    return str(np.datetime64(int(ms), "ms")) + "Z"


def validate(c: Candles) -> None:
    """Raise :class:`CandleError` naming the first problem found, or return quietly.

    Checks: equal column lengths, strictly increasing timestamps, no duplicate and no gap
    (every step equals the bar length), finite values, positive prices, non-negative volume,
    and ``low <= min(open, close) <= max(open, close) <= high``.
    """
    n = len(c)
    for name in HEADER[1:]:
        if getattr(c, name).shape != (n,):
            raise CandleError(f"{c.label}: column {name} has {getattr(c, name).shape[0]} rows, time has {n}")
    if n == 0:
        raise CandleError(f"{c.label}: no bars")
    if n > 1:
        step = np.diff(c.time)
        if (bad := np.flatnonzero(step == 0)).size:
            i = int(bad[0]) + 1
            raise CandleError(f"{c.label}: duplicate timestamp {_when(c.time[i])} at row {i}")
        if (bad := np.flatnonzero(step < 0)).size:
            i = int(bad[0]) + 1
            raise CandleError(
                f"{c.label}: timestamps not sorted: row {i} ({_when(c.time[i])}) "
                f"comes before row {i - 1} ({_when(c.time[i - 1])})"
            )
        bar = c.bar_ms
        if (bad := np.flatnonzero(step != bar)).size:
            i = int(bad[0])
            missing = int(step[i] // bar) - 1
            raise CandleError(
                f"{c.label}: gap after {_when(c.time[i])} (row {i}): next bar at {_when(c.time[i + 1])}, "
                f"{missing} bar(s) of {bar // 1000}s missing"
            )
    for name in HEADER[1:]:
        col = getattr(c, name)
        if (bad := np.flatnonzero(~np.isfinite(col))).size:
            i = int(bad[0])
            raise CandleError(f"{c.label}: {name} is {col[i]} at row {i} ({_when(c.time[i])})")
        limit_ok = col >= 0 if name == "volume" else col > 0
        if (bad := np.flatnonzero(~limit_ok)).size:
            i = int(bad[0])
            what = "negative" if name == "volume" else "not positive"
            raise CandleError(f"{c.label}: {name} is {what} ({col[i]}) at row {i} ({_when(c.time[i])})")
    lo = np.minimum(c.open, c.close)
    hi = np.maximum(c.open, c.close)
    if (bad := np.flatnonzero((c.low > lo) | (c.high < hi))).size:
        i = int(bad[0])
        raise CandleError(
            f"{c.label}: row {i} ({_when(c.time[i])}) has low {c.low[i]} / high {c.high[i]} "
            f"outside open {c.open[i]} / close {c.close[i]}"
        )


def parse_file_name(path: str | os.PathLike[str]) -> tuple[str, str, bool]:
    """``BTC_USDT-1m.csv.gz`` -> (``BTC/USDT``, ``1m``, perpetual?)."""
    m = _FILE_RE.match(Path(path).name)
    if not m:
        return "", "", False
    return f"{m['base']}/{m['quote']}", m["tf"], bool(m["perp"])


def load_csv(path: str | os.PathLike[str], *, symbol: str = "", timeframe: str = "", check: bool = True) -> Candles:
    """Load a (gzip) CSV candle file; symbol and timeframe default to what the file name says."""
    p = Path(path)
    name_symbol, name_tf, perp = parse_file_name(p)
    symbol = symbol or (f"{name_symbol}:{name_symbol.split('/')[1]}" if perp and name_symbol else name_symbol)
    timeframe = timeframe or name_tf
    try:
        if p.suffix == ".gz":
            with gzip.open(p, "rb") as f:
                raw = f.read()
        else:
            raw = p.read_bytes()
    except OSError as e:
        raise CandleError(f"{p}: cannot read: {e}") from e
    text = raw.decode("utf-8")
    first, _, body = text.partition("\n")
    header = tuple(h.strip().lower() for h in first.split(","))
    if header != HEADER:
        raise CandleError(f"{p}: header is {first.strip()!r}, expected {','.join(HEADER)!r}")
    try:
        table = np.loadtxt(io.StringIO(body), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise CandleError(f"{p}: unreadable row: {e}") from e
    if table.shape[0] and table.shape[1] != len(HEADER):
        raise CandleError(f"{p}: rows have {table.shape[1]} columns, expected {len(HEADER)}")
    if table.shape[0] == 0:
        raise CandleError(f"{p}: no bars")
    return from_arrays(
        table[:, 0].astype(np.int64),
        table[:, 1],
        table[:, 2],
        table[:, 3],
        table[:, 4],
        table[:, 5],
        symbol=symbol,
        timeframe=timeframe,
        source=str(p),
        check=check,
    )


def shared_data_dir() -> Path:
    """The real-candle folder: ``$KUBETRADE_SHARED_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("KUBETRADE_SHARED_DATA")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "data"


class MissingData(FileNotFoundError):
    """Real candles a benchmark needs are not there; the message says where they were looked
    for and how to get them (``KUBETRADE_SHARED_DATA``, or ``kubetrade download-data``)."""


def shared_files(folder: str, pattern: str, *, exchange: str, pairs: str, timeframe: str, days: int) -> list[Path]:
    """Files matching ``pattern`` in ``<shared data>/<folder>``, or :class:`MissingData` saying how to fetch them.

    ``exchange``, ``pairs``, ``timeframe`` and ``days`` describe the data for the message: the
    ``kubetrade download-data`` call that writes such files into ``DIR/<folder>``.
    """
    root = shared_data_dir()
    found = sorted((root / folder).glob(pattern))
    if found:
        return found
    how = "KUBETRADE_SHARED_DATA" if os.environ.get("KUBETRADE_SHARED_DATA") else "the default (../shared/data)"
    raise MissingData(
        f"no {pattern} in {root / folder} (from {how}): this needs {days} days of {exchange} {pairs} {timeframe} "
        f"candles, which the repository does not ship. Either set KUBETRADE_SHARED_DATA to a folder that has "
        f"{folder}/{pattern}, or fetch them: kubetrade download-data --exchange {exchange} --pairs {pairs} "
        f"--timeframes {timeframe} --days {days} --datadir DIR/{folder}, then KUBETRADE_SHARED_DATA=DIR"
    )
