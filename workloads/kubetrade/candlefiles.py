"""Candle files in the formats traders already have: gzip CSV, Freqtrade's feather and json, Parquet.

One reader (:func:`load`) and one writer (:func:`write`) for every consumer: ``kubetrade
backtest``/``evolve``, the replay collector and ``kubetrade download-data``.  The format is
chosen by the file's suffix:

=====================  ===============================================================
``.csv.gz``, ``.csv``  the project's own: header ``time,open,high,low,close,volume``, time
                       = open time in UTC milliseconds
``.feather``           Freqtrade's default: columns ``date`` (timestamp, UTC) ``open high
                       low close volume``
``.json``, ``.json.gz``  Freqtrade's ``json``/``jsongz``: an array of ``[ms, o, h, l, c, v]``
``.parquet``           what ``GET /api/v1/bulk?format=parquet`` exports (``symbol, time, ...``)
                       and Freqtrade's parquet (``date, ...``)
=====================  ===============================================================

Names tell symbol and timeframe: ``BTC_USDT-5m.feather`` (spot), ``BTC_USDT-1m-perp.csv.gz``
(this project's perpetual) or ``BTC_USDT_USDT-1m-futures.feather`` (Freqtrade's futures).
Whatever the format, the bars go through :func:`kubetrade.candles.validate`, and a file
that cannot be read (truncated, corrupted, a column missing) is a :class:`CandleError`
whose one line names the file and the problem.  :func:`write` replaces a file atomically
(temporary file, fsync, rename): a reader sees the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kubetrade.candles import HEADER, CandleError, Candles, from_arrays, load_csv, timeframe_ms

SUFFIXES: dict[str, str] = {
    ".csv.gz": "csv", ".csv": "csv", ".feather": "feather", ".parquet": "parquet", ".json": "json",
    ".json.gz": "json",
}
"""File suffix -> format; the first suffix of a format is the one :func:`file_name` writes."""
FORMATS: dict[str, str] = {"csv": ".csv.gz", "feather": ".feather", "parquet": ".parquet", "json": ".json.gz"}
"""Format -> the suffix :func:`write` uses for it."""

_NAME = re.compile(
    r"^(?P<base>[A-Za-z0-9]+)_(?P<quote>[A-Za-z0-9]+)(?:_(?P<settle>[A-Za-z0-9]+))?"
    r"-(?P<tf>\d+[smhdw])(?:-(?P<kind>perp|futures|spot))?$"
)


def suffix_of(path: str | os.PathLike[str]) -> str:
    """The format-bearing suffix of a path (``.csv.gz``, ``.feather``, ...), or ``""``."""
    name = Path(path).name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return ""


def format_of(path: str | os.PathLike[str]) -> str:
    suffix = suffix_of(path)
    if not suffix:
        raise CandleError(f"{path}: unknown candle file type; expected one of {', '.join(SUFFIXES)}")
    return SUFFIXES[suffix]


def parse_name(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``BTC_USDT-1m-perp.csv.gz`` -> (``BTC/USDT:USDT``, ``1m``); ("", "") if the name says nothing."""
    p = Path(path)
    stem = p.name[: len(p.name) - len(suffix_of(p))] if suffix_of(p) else p.stem
    m = _NAME.match(stem)
    if not m:
        return "", ""
    base, quote = m["base"].upper(), m["quote"].upper()
    settle = (m["settle"] or "").upper()
    if m["kind"] in ("perp", "futures"):
        return f"{base}/{quote}:{settle or quote}", m["tf"]
    return (f"{base}/{quote}:{settle}" if settle else f"{base}/{quote}"), m["tf"]


def file_name(symbol: str, timeframe: str, fmt: str = "csv") -> str:
    """The file name :func:`write` gives a series: ``BTC_USDT-1m.csv.gz``, ``BTC_USDT-1m-perp.feather``."""
    if fmt not in FORMATS:
        raise CandleError(f"unknown candle file format {fmt!r}; expected one of {', '.join(FORMATS)}")
    pair, _, settle = symbol.partition(":")
    base, _, quote = pair.partition("/")
    if not base or not quote:
        raise CandleError(f"symbol {symbol!r}: expected BASE/QUOTE or BASE/QUOTE:SETTLE")
    perp = "-perp" if settle else ""
    return f"{base}_{quote}-{timeframe}{perp}{FORMATS[fmt]}"


def find(folder: Path, symbol: str, timeframe: str) -> Path | None:
    """The file of a series in ``folder``, in any format (the project's CSV first), or None."""
    pair, _, settle = symbol.partition(":")
    base, _, quote = pair.partition("/")
    stems = [f"{base}_{quote}-{timeframe}-perp", f"{base}_{quote}_{settle}-{timeframe}-futures"] if settle else \
        [f"{base}_{quote}-{timeframe}"]
    for stem in stems:
        for suffix in SUFFIXES:
            if (p := folder / f"{stem}{suffix}").is_file():
                return p
    return None


def candle_files(folder: Path) -> list[Path]:
    """Every candle file directly in ``folder`` (any format), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and suffix_of(p))


# --- reading -------------------------------------------------------------------------------


def load(path: str | os.PathLike[str], *, symbol: str = "", timeframe: str = "", check: bool = True) -> Candles:
    """Load a candle file of any supported format; symbol and timeframe default to its name."""
    p = Path(path)
    fmt = format_of(p)
    name_symbol, name_tf = parse_name(p)
    symbol = symbol or name_symbol
    timeframe = timeframe or name_tf
    if not p.is_file():
        raise CandleError(f"{p}: no such file")
    if fmt == "csv":
        try:
            c = load_csv(p, symbol=symbol, timeframe=timeframe, check=False)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise CandleError(f"{p}: truncated or corrupted gzip ({exc})") from exc
        except UnicodeDecodeError as exc:
            raise CandleError(f"{p}: not a text CSV file ({exc.reason} at byte {exc.start})") from exc
        columns = {name: getattr(c, name) for name in HEADER}
    else:
        reader = {"feather": _read_feather, "parquet": _read_parquet, "json": _read_json}[fmt]
        columns = reader(p)
    times = columns["time"]
    if len(times) >= 2:
        found = _infer_timeframe(p, times)
        if timeframe and timeframe_ms(found) != timeframe_ms(timeframe):
            raise CandleError(f"{p}: bars are {found} apart but the file is named for {timeframe}")
        timeframe = timeframe or found
    return from_arrays(times, columns["open"], columns["high"], columns["low"], columns["close"],
                       columns["volume"], symbol=symbol, timeframe=timeframe, source=str(p), check=check)


def _infer_timeframe(p: Path, times: np.ndarray) -> str:
    step = int(np.median(np.diff(times)))
    for unit, ms in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if step > 0 and step % ms == 0:
            return f"{step // ms}{unit}"
    raise CandleError(f"{p}: bars are {step} ms apart, not a timeframe; name the file like BTC_USDT-5m.feather")


def _table_columns(p: Path, table: Any) -> dict[str, np.ndarray]:
    """time (int64 ms) and the five price columns of an Arrow table, or a CandleError naming what is missing."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = [n.lower() for n in table.column_names]
    time_name = "date" if "date" in names else "time" if "time" in names else None
    missing = ([] if time_name else ["date"]) + [c for c in HEADER[1:] if c not in names]
    if missing:
        raise CandleError(f"{p}: missing column(s) {', '.join(missing)}; has {', '.join(table.column_names) or 'none'}")
    if table.num_rows == 0:
        raise CandleError(f"{p}: no bars")
    by_lower = {n.lower(): n for n in table.column_names}
    out: dict[str, np.ndarray] = {}
    t = table.column(by_lower[time_name]).combine_chunks()
    if t.null_count:
        raise CandleError(f"{p}: {time_name} has {t.null_count} empty value(s)")
    if pa.types.is_timestamp(t.type):
        t = pc.cast(t, pa.timestamp("ms", tz=t.type.tz)).cast(pa.int64())
    elif pa.types.is_integer(t.type):
        t = t.cast(pa.int64())
    else:
        raise CandleError(f"{p}: column {time_name} is {t.type}, expected a timestamp or integer milliseconds")
    out["time"] = np.ascontiguousarray(t.to_numpy(), dtype=np.int64)
    for name in HEADER[1:]:
        col = table.column(by_lower[name]).combine_chunks()
        try:
            col = col.cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise CandleError(f"{p}: column {name} is {col.type}, not numeric") from exc
        out[name] = col.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls become NaN: validate names them
    return out


def _read_feather(p: Path) -> dict[str, np.ndarray]:
    import pyarrow as pa
    import pyarrow.feather as feather

    try:
        table = feather.read_table(p, memory_map=False)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise CandleError(f"{p}: not a readable feather file ({_short(exc)})") from exc
    return _table_columns(p, table)


def _read_parquet(p: Path) -> dict[str, np.ndarray]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise CandleError(f"{p}: not a readable Parquet file ({_short(exc)})") from exc
    names = [n.lower() for n in table.column_names]
    if "symbol" in names:
        symbols = table.column(table.column_names[names.index("symbol")]).unique().to_pylist()
        if len(symbols) > 1:
            raise CandleError(f"{p}: holds {len(symbols)} symbols ({', '.join(map(str, symbols[:5]))}); "
                              "one symbol per file")
    return _table_columns(p, table)


def _read_json(p: Path) -> dict[str, np.ndarray]:
    try:
        raw = gzip.decompress(p.read_bytes()) if p.name.lower().endswith(".gz") else p.read_bytes()
        data = json.loads(raw)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CandleError(f"{p}: truncated or corrupted gzip ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise CandleError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    except UnicodeDecodeError as exc:
        raise CandleError(f"{p}: not a JSON text file ({exc.reason})") from exc
    if not isinstance(data, list) or not data:
        raise CandleError(f"{p}: expected a non-empty array of [time, open, high, low, close, volume] rows")
    if all(isinstance(r, dict) for r in data):  # records: [{"date": ms, "open": ...}, ...]
        keys = {k.lower() for k in data[0]}
        time_key = "date" if "date" in keys else "time"
        missing = [k for k in (time_key, *HEADER[1:]) if k not in keys]
        if missing:
            raise CandleError(f"{p}: rows miss {', '.join(missing)}")
        data = [[{k.lower(): v for k, v in r.items()}.get(k) for k in (time_key, *HEADER[1:])] for r in data]
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) < 6:
            raise CandleError(f"{p}: row {i} is {str(row)[:60]!r}, expected [time, open, high, low, close, volume]")
    try:
        table = np.array([r[:6] for r in data], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CandleError(f"{p}: a row has a non-numeric value ({exc})") from exc
    times = table[:, 0]
    if not np.all(np.isfinite(times)) or np.any(times != np.floor(times)):
        raise CandleError(f"{p}: times must be whole UTC milliseconds")
    return {"time": times.astype(np.int64), **{name: table[:, i + 1] for i, name in enumerate(HEADER[1:])}}


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


# --- writing -------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path``; on success it is fsynced and renamed over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp's 0600 would make the result private
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        with contextlib.suppress(OSError):  # make the rename itself durable
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        tmp_path.unlink(missing_ok=True)


def csv_text(c: Candles, start: int = 0, stop: int | None = None) -> str:
    """Rows ``start:stop`` as the project's CSV lines (no header); floats keep their exact value."""
    sl = slice(start, stop)
    cols = [c.time[sl].tolist(), c.open[sl].tolist(), c.high[sl].tolist(), c.low[sl].tolist(), c.close[sl].tolist(),
            c.volume[sl].tolist()]
    return "".join(f"{t},{o!r},{h!r},{lo!r},{cl!r},{v!r}\n" for t, o, h, lo, cl, v in zip(*cols, strict=True))


def write(path: str | os.PathLike[str], c: Candles) -> Path:
    """Write candles in the format of ``path``'s suffix, atomically; returns the path."""
    p = Path(path)
    fmt = format_of(p)
    with atomic_path(p) as tmp:
        if fmt == "csv":
            text = ",".join(HEADER) + "\n" + csv_text(c)
            if p.name.lower().endswith(".gz"):
                with gzip.open(tmp, "wt", compresslevel=6, newline="") as f:
                    f.write(text)
            else:
                tmp.write_text(text)
        elif fmt == "json":
            rows = [[t, o, h, lo, cl, v] for t, o, h, lo, cl, v in zip(
                c.time.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(), c.close.tolist(),
                c.volume.tolist(), strict=True)]
            data = json.dumps(rows, separators=(",", ":")).encode()
            tmp.write_bytes(gzip.compress(data) if p.name.lower().endswith(".gz") else data)
        else:
            _write_arrow(tmp, c, fmt)
    return p


def _write_arrow(tmp: Path, c: Candles, fmt: str) -> None:
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    table = pa.table({
        "date": pa.array(c.time, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        **{name: pa.array(getattr(c, name), pa.float64()) for name in HEADER[1:]},
    })
    if fmt == "feather":
        feather.write_feather(table, tmp, compression="lz4")
    else:
        pq.write_table(table, tmp, compression="zstd")

