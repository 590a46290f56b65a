"""Market data over HTTP: latest candles, history with keyset pages, indicators, bulk exports.

Every read goes through :mod:`kubetrade.storage.history`, so a timeframe that is not
stored is rolled up (continuous aggregate on TimescaleDB, ``date_bin`` on PostgreSQL)
the same way for every route.  Symbols in paths may be written ``BTC/USDT``, ``BTC-USDT``
or ``BTC_USDT``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import Field, StringConstraints, ValidationError

from kubetrade.api.candlecache import CandleCache, encode_row
from kubetrade.api.deps import Connection
from kubetrade.api.times import ApiTime
from kubetrade.candles import CandleError, from_arrays, timeframe_ms
from kubetrade.engine import indicators
from kubetrade.resources.base import ExchangeId, Model, Timeframe
from kubetrade.storage import export, history
from kubetrade.storage.candles import SeriesKey
from kubetrade.validation.semantic import short

router = APIRouter(tags=["market data"])

MAX_LIMIT = 5000
Exchange = Annotated[str, Query(pattern=r"^[a-z][a-z0-9]{1,31}$", description="ccxt exchange id")]
TimeParam = Annotated[ApiTime | None, Query()]
"""ISO 8601 with its offset, or an integer of UTC milliseconds (:mod:`kubetrade.api.times`)."""


class CandleRow(Model):
    time: int
    """Open time, UTC ms."""
    open: float
    high: float
    low: float
    close: float
    volume: float


class History(Model):
    exchange: str
    symbol: str
    timeframe: str
    source: str = Field(description="stored, cagg:<tf> (TimescaleDB) or date_bin:<base> (rolled up at query time)")
    candles: list[CandleRow]
    next: int | None = Field(default=None, description="Pass as `start` for the next page; absent on the last.")


_UNIFIED = re.compile(r"^[A-Z0-9]{2,15}/[A-Z0-9]{2,15}(:[A-Z0-9]{2,15})?$")


def symbol_of(raw: str) -> str:
    """``BTC-USDT``/``BTC_USDT``/``BTC/USDT`` -> ``BTC/USDT`` (ccxt's unified form), or a 422."""
    s = raw.strip().upper()
    if "/" not in s:
        for sep in ("-", "_"):
            if sep in s:
                base, _, quote = s.partition(sep)
                s = f"{base}/{quote}"
                break
    if not _UNIFIED.match(s):
        raise HTTPException(
            422,
            f"symbol {short(raw)}: write it as BASE/QUOTE, BASE-QUOTE or BASE_QUOTE (e.g. BTC-USDT), letters, digits",
        )
    return s


def _bounds(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    lo = start or datetime(1970, 1, 1, tzinfo=UTC)
    hi = end or datetime(9999, 1, 1, tzinfo=UTC)
    if lo.tzinfo is None or hi.tzinfo is None:
        raise HTTPException(422, "start/end need a time zone (e.g. 2024-01-01T00:00:00Z) or UTC milliseconds")
    if hi <= lo:
        raise HTTPException(422, f"end ({hi.isoformat()}) must be after start ({lo.isoformat()})")
    return lo, hi


def _rows(rows: list[tuple[Any, ...]]) -> list[CandleRow]:
    return [CandleRow(time=int(r[0]), open=r[1], high=r[2], low=r[3], close=r[4], volume=r[5]) for r in rows]


def _ms_at_or_after(when: datetime) -> int:
    """The first whole UTC millisecond at or after ``when`` (candle times are whole milliseconds)."""
    return -((_EPOCH - when) // timedelta(milliseconds=1))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return etag in tags or "*" in tags


@router.get(
    "/api/v1/historical/{symbol:path}",
    response_class=Response,
    responses={200: {"model": History, "description": "Candles, oldest first; an ETag names the page"},
               304: {"description": "The page is the one the client holds (If-None-Match)"}},
)
async def historical(
    request: Request,
    symbol: str,
    exchange: Exchange = "binance",
    timeframe: Timeframe = "1h",
    start: TimeParam = None,
    end: TimeParam = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 500,
    if_none_match: Annotated[str | None, Header(description="an ETag this route returned before")] = None,
) -> Response:
    """Candles in [start, end), oldest first, at most ``limit``; ``next`` continues after the last one.

    Stored candles are served from the process's candle cache (:mod:`kubetrade.api.candlecache`),
    each encoded once; the page is built from those bytes (the shape is :class:`History`).  The
    ETag is a hash of the body, so a client that sends it back as If-None-Match gets 304.
    """
    key = SeriesKey(exchange, symbol_of(symbol), timeframe)
    lo, hi = _bounds(start, end)
    pool = getattr(request.app.state, "db_pool", None)
    if pool is None:
        raise HTTPException(503, "the API has no database configured")
    cache: CandleCache | None = getattr(request.app.state, "candle_cache", None)
    series = (exchange, key.symbol, timeframe)
    lo_ms, hi_ms = _ms_at_or_after(lo), _ms_at_or_after(hi)
    built = cache.built(series, lo_ms, hi_ms, limit) if cache is not None else None
    if built is not None:
        return _page_response(*built, if_none_match)
    hit = cache.get(series, lo_ms, hi_ms, limit) if cache is not None else None
    if hit is not None:
        source, encoded, more, last = "stored", hit.rows, hit.more, hit.last_time
    else:
        generation = cache.generation(series) if cache is not None else 0
        async with pool.connection() as conn:
            rows, source = await history.page(conn, key, lo, hi, limit + 1)
        encoded = [encode_row(r) for r in rows]
        if cache is not None and source == "stored":
            cache.put(series, generation, lo_ms, hi_ms, limit, rows, encoded)
        more = len(rows) > limit
        encoded = encoded[:limit]
        last = int(rows[len(encoded) - 1][0]) if encoded else -1
    head = json.dumps({"exchange": exchange, "symbol": key.symbol, "timeframe": timeframe, "source": source},
                      separators=(",", ":"))
    tail = b',"next":%d}' % (last + timeframe_ms(timeframe)) if more else b"}"
    body = b"".join((head[:-1].encode(), b',"candles":[', b",".join(encoded), b"]", tail))
    etag = etag_of(body)
    if hit is not None and cache is not None:
        cache.keep_built(series, lo_ms, hi_ms, limit, body, etag)
    return _page_response(body, etag, if_none_match)


def _page_response(body: bytes, etag: str, if_none_match: str | None) -> Response:
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag})


class Latest(Model):
    symbol: str
    candle: CandleRow | None
    age_seconds: float | None = Field(description="Seconds since the newest candle closed: staleness at a glance.")


@router.get("/api/v1/market-data", response_model=list[Latest])
async def market_data(
    conn: Connection,
    symbols: Annotated[str, Query(max_length=4000, description="comma-separated")],
    exchange: Exchange = "binance",
    timeframe: Timeframe = "1m",
) -> list[Latest]:
    """The newest stored candle of each symbol, and how old it is."""
    out = []
    now = datetime.now(UTC).timestamp() * 1000
    tf = timeframe_ms(timeframe)
    for raw in symbols.split(","):
        sym = symbol_of(raw)
        cur = await conn.execute(history.LATEST_SQL, {"exchange": exchange, "symbol": sym, "timeframe": timeframe})
        row = await cur.fetchone()
        candle = _rows([row])[0] if row else None
        out.append(
            Latest(symbol=sym, candle=candle, age_seconds=max(0.0, (now - candle.time - tf) / 1000) if candle else None)
        )
    return out


class IndicatorRequest(Model):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    params: Annotated[dict[Annotated[str, StringConstraints(max_length=64)], float], Field(max_length=16)] = Field(
        default_factory=dict
    )
    label: Annotated[str, StringConstraints(max_length=64)] | None = Field(default=None, exclude=True)
    """The key of this indicator in the result (default: its name)."""

    def model_post_init(self, context: Any) -> None:
        if self.label is None:
            self.label = self.name


class IndicatorsQuery(Model):
    exchange: ExchangeId = "binance"
    symbol: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    timeframe: Timeframe = "1h"
    end: ApiTime | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 200
    indicators: Annotated[list[IndicatorRequest], Field(min_length=1, max_length=20)]


class IndicatorsResult(Model):
    symbol: str
    timeframe: str
    time: list[int]
    values: dict[str, dict[str, list[float | None]]]
    """indicator name -> output -> values aligned with ``time`` (null during warm-up)."""


async def _indicators(conn: Any, body: IndicatorsQuery) -> IndicatorsResult:
    """Indicators over the newest ``limit`` candles, with enough history before them to warm up."""
    key = SeriesKey(body.exchange, symbol_of(body.symbol), body.timeframe)
    try:
        warmup = max(indicators.lookback(i.name, i.params) for i in body.indicators)
    except indicators.IndicatorError as exc:
        raise HTTPException(422, str(exc)) from exc
    rows, _ = await history.tail(conn, key, body.end or datetime(9999, 1, 1, tzinfo=UTC), body.limit + warmup)
    if not rows:
        raise HTTPException(404, f"no {body.timeframe} candles stored for {key.symbol} on {body.exchange}")
    cols = list(zip(*rows, strict=True))
    try:
        candles = from_arrays(*cols, symbol=key.symbol, timeframe=body.timeframe, check=False)
        values = {i.label: indicators.compute(i.name, candles, i.params) for i in body.indicators}
    except (indicators.IndicatorError, CandleError) as exc:
        raise HTTPException(422, str(exc)) from exc
    keep = slice(-min(body.limit, len(rows)), None)
    return IndicatorsResult(
        symbol=key.symbol,
        timeframe=body.timeframe,
        time=[int(t) for t in cols[0][keep]],
        values={
            n: {o: [None if not math.isfinite(x) else float(x) for x in np.asarray(a)[keep]] for o, a in outs.items()}
            for n, outs in values.items()
        },
    )


@router.post("/api/v1/indicators", response_model=IndicatorsResult)
async def compute_indicators(body: IndicatorsQuery, conn: Connection) -> IndicatorsResult:
    """Indicators over the newest ``limit`` candles, with enough history before them to warm up."""
    return await _indicators(conn, body)


DEFAULT_INDICATORS = ("sma:period=20", "ema:period=20", "rsi:period=14", "macd", "bbands:period=20", "atr:period=14")
"""What ``GET /api/v1/indicators/{symbol}`` computes when no ``indicator`` is asked for."""

IndicatorParam = Annotated[list[str] | None, Query(
    description="repeatable: NAME or NAME:K=V,K=V, e.g. rsi:period=14 (default: "
                + ", ".join(DEFAULT_INDICATORS) + ")", max_length=20)]


def _parse_indicators(items: list[str] | None) -> list[IndicatorRequest]:
    out = []
    for item in items or list(DEFAULT_INDICATORS):
        name, _, rest = item.strip().partition(":")
        params: dict[str, float] = {}
        for kv in (x for x in rest.split(",") if x.strip()):
            k, sep, v = kv.partition("=")
            try:
                if not sep or not k.strip():
                    raise ValueError
                params[k.strip()] = float(v)
            except ValueError:
                raise HTTPException(422, f"indicator {item!r}: write NAME or NAME:K=V,K=V with numbers, "
                                         "e.g. rsi:period=14") from None
            if not math.isfinite(params[k.strip()]):
                raise HTTPException(422, f"indicator {item!r}: {k.strip()} must be a finite number")
        out.append(IndicatorRequest(name=name.strip(), params=params, label=item.strip()))
    return out


async def _get_indicators(conn: Any, symbol: str, exchange: str, timeframe: str, end: datetime | None, limit: int,
                          indicator: list[str] | None) -> IndicatorsResult:
    if end is not None and end.tzinfo is None:
        raise HTTPException(422, "end needs a time zone (e.g. 2024-01-01T00:00:00Z) or UTC milliseconds")
    try:
        body = IndicatorsQuery(exchange=exchange, symbol=symbol, timeframe=timeframe, end=end, limit=limit,
                               indicators=_parse_indicators(indicator))
    except ValidationError as exc:  # the query's values, judged by the POST body's model: the client's 422
        raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in exc.errors()]) from None
    return await _indicators(conn, body)


@router.get("/api/v1/indicators/{symbol:path}", response_model=IndicatorsResult)
async def symbol_indicators(
    symbol: str,
    conn: Connection,
    exchange: Exchange = "binance",
    timeframe: Timeframe = "1h",
    end: TimeParam = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 200,
    indicator: IndicatorParam = None,
) -> IndicatorsResult:
    """The technical indicators of one symbol over its newest ``limit`` candles (before ``end``); values are
    keyed by the indicator as asked (``rsi:period=14``), null during warm-up."""
    return await _get_indicators(conn, symbol, exchange, timeframe, end, limit, indicator)


@router.get("/api/v1/indicators", response_model=IndicatorsResult)
async def indicators_query(
    conn: Connection,
    symbol: Annotated[str, Query(description="BASE/QUOTE, BASE-QUOTE or BASE_QUOTE")],
    exchange: Exchange = "binance",
    timeframe: Timeframe = "1h",
    end: TimeParam = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 200,
    indicator: IndicatorParam = None,
) -> IndicatorsResult:
    """The same as ``GET /api/v1/indicators/{symbol}``, with the symbol as a query parameter."""
    return await _get_indicators(conn, symbol, exchange, timeframe, end, limit, indicator)


@router.get(
    "/api/v1/bulk",
    response_class=StreamingResponse,
    responses={200: {"description": "Every candle of the range, oldest first, as a file (Content-Disposition)",
                     "content": {
                         "text/csv": {"schema": {"type": "string"}},
                         "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
                     }}},
)
async def bulk(
    request: Request,
    symbol: Annotated[str, Query(max_length=64)],
    exchange: Exchange = "binance",
    timeframe: Timeframe = "1h",
    start: TimeParam = None,
    end: TimeParam = None,
    format: Literal["csv", "parquet"] = "csv",
) -> StreamingResponse:
    """Every candle in [start, end) as CSV or Parquet, streamed from a server-side cursor."""
    pool = getattr(request.app.state, "db_pool", None)
    if pool is None:
        raise HTTPException(503, "the API has no database configured")
    key = SeriesKey(exchange, symbol_of(symbol), timeframe)
    lo, hi = _bounds(start, end)

    async def body() -> Any:
        async with pool.connection() as conn:
            rows = history.stream(conn, key, lo, hi)
            encode = export.parquet_chunks if format == "parquet" else export.csv_chunks
            async for chunk in encode(rows, key.symbol):
                yield chunk

    name = f"{key.symbol.replace('/', '_')}-{timeframe}.{format}"
    media = "application/vnd.apache.parquet" if format == "parquet" else "text/csv"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(body(), media_type=media, headers=disposition)
