"""``kubetrade download-data``: candles from any ccxt exchange into candle files or PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_TIMEFRAMES = ["1m", "5m"]
DEFAULT_DAYS = 30


def register(sub: Any) -> None:
    p = sub.add_parser(
        "download-data", help="download candles from a ccxt exchange (incremental, resumable)",
        description="Download closed candles of PAIRS x TIMEFRAMES from any ccxt exchange into candle files "
                    "(gzip CSV, feather, Parquet, json) or PostgreSQL. Only what is missing is fetched; an "
                    "interrupted download resumes where it stopped, and no file is ever half-written.")
    p.add_argument("--exchange", required=True, help="ccxt exchange id, e.g. binance, kraken, okx, bybit")
    p.add_argument("-p", "--pairs", nargs="+", required=True, metavar="PAIR",
                   help="pairs in ccxt's unified form, e.g. BTC/USDT ETH/USDT (perpetual: BTC/USDT:USDT)")
    p.add_argument("-t", "--timeframes", nargs="+", default=DEFAULT_TIMEFRAMES, metavar="TF",
                   help=f"timeframes, e.g. 1m 5m 1h 1d (default: {' '.join(DEFAULT_TIMEFRAMES)})")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--days", type=float, help=f"the last N days (default: update existing data up to now, "
                                                 f"else {DEFAULT_DAYS} days)")
    when.add_argument("--timerange", help="YYYYMMDD-YYYYMMDD, YYYYMMDD- or -YYYYMMDD (UTC, end excluded)")
    p.add_argument("--datadir", type=Path, help="folder for the candle files (default: data/<exchange>)")
    p.add_argument("--format", choices=("csv", "feather", "parquet", "json"), default="csv",
                   help="file format: csv = gzip CSV (default), feather and json = Freqtrade's, parquet")
    p.add_argument("--dsn", help="store in this PostgreSQL (the candles table) instead of files")
    p.add_argument("--exchange-url", default=os.environ.get("KUBETRADE_EXCHANGE_URL") or None,
                   help="send the ccxt client to this base URL, e.g. a proxy or the local test exchange "
                        "(default: $KUBETRADE_EXCHANGE_URL, else the exchange's own)")
    p.add_argument("--erase", action="store_true", help="delete the stored files of these series first")
    p.add_argument("--retries", type=int, default=8, help="tries per request before giving up (default 8)")
    p.add_argument("--output", choices=("table", "json"), default="table",
                   help="summary as a table (default) or as JSON on stdout")
    p.set_defaults(func=_download)


def _download(args: argparse.Namespace) -> int:
    from rich.console import Console

    err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    try:
        outcomes = asyncio.run(_run(args, err))
    except KeyboardInterrupt:
        err.print("interrupted: every page fetched so far is kept; run the same command again to continue")
        return 130
    except Exception as exc:
        from ccxt.base.errors import BaseError

        from kubetrade.candles import CandleError
        from kubetrade.download.fetch import DownloadError
        from kubetrade.timerange import TimeRangeError

        if isinstance(exc, DownloadError | CandleError | TimeRangeError | OSError):
            err.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False)
            return 1
        if isinstance(exc, BaseError):
            err.print(f"[red]error:[/red] {args.exchange}: {type(exc).__name__}: {str(exc)[:300]}", soft_wrap=True,
                      highlight=False)
            return 1
        raise
    _report(args, outcomes, err)
    return 0


async def _run(args: argparse.Namespace, err: Any) -> list[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from kubetrade import candlefiles
    from kubetrade.candles import timeframe_ms
    from kubetrade.download.fetch import DownloadError, Exchange, Series, make_client, to_database, to_file
    from kubetrade.timerange import parse

    for tf in args.timeframes:
        timeframe_ms(tf)  # a malformed timeframe is refused before anything is asked of the exchange
    if args.retries < 1:
        raise DownloadError("--retries must be at least 1")
    if args.days is not None and args.days <= 0:
        raise DownloadError("--days must be positive")
    tr = parse(args.timerange) if args.timerange else None
    series = [Series(p, tf) for p in dict.fromkeys(args.pairs) for tf in dict.fromkeys(args.timeframes)]
    datadir: Path = args.datadir or Path("data") / args.exchange
    if args.dsn:
        from kubetrade.storage import migrate

        await asyncio.to_thread(migrate.apply, args.dsn)
    client = make_client(args.exchange, list(args.pairs), args.exchange_url)
    retries: list[str] = []
    try:
        ex = Exchange(client, args.exchange, attempts=args.retries,
                      on_retry=lambda exc, wait: retries.append(f"{type(exc).__name__}, waiting {wait:.1f}s"))
        await ex.check(series)
        outcomes = []
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err, transient=False) as bar:
            tasks: dict[Series, Any] = {}

            def progress(s: Series, done: int, total: int) -> None:
                if s not in tasks:
                    tasks[s] = bar.add_task(f"{s.symbol} {s.timeframe}", total=max(total, 1))
                bar.update(tasks[s], completed=done if total else 1, total=max(total, 1))

            for s in series:
                if args.dsn:
                    out = await to_database(ex, s, args.dsn, tr=tr, days=args.days, default_days=DEFAULT_DAYS,
                                            progress=progress)
                else:
                    path = datadir / candlefiles.file_name(s.symbol, s.timeframe, args.format)
                    out = await to_file(ex, s, path, tr=tr, days=args.days, default_days=DEFAULT_DAYS,
                                        erase=args.erase, progress=progress)
                outcomes.append(out)
        if retries:
            err.print(f"{len(retries)} request(s) retried (rate limit or network): {retries[-1]}", highlight=False)
        return outcomes
    finally:
        await client.close()


def _when(ms: int | None) -> str:
    from datetime import UTC, datetime

    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _report(args: argparse.Namespace, outcomes: list[Any], err: Any) -> None:
    if args.output == "json":
        print(json.dumps([{"symbol": o.series.symbol, "timeframe": o.series.timeframe, "had": o.had,
                           "resumed": o.resumed, "fetched": o.fetched, "total": o.total, "first": o.first_ms,
                           "last": o.last_ms, "target": o.target,
                           "gaps": [{"after": t, "bars": n} for t, n in o.gaps]} for o in outcomes], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"download-data {args.exchange}")
    for col in ("pair", "timeframe", "had", "fetched", "candles", "first", "last", "where"):
        table.add_column(col, justify="left" if col in ("pair", "where") else "right")
    for o in outcomes:
        had = f"{o.had:,}" + (f" ({o.resumed:,} resumed)" if o.resumed else "")
        table.add_row(o.series.symbol, o.series.timeframe, had, f"{o.fetched:,}", f"{o.total:,}", _when(o.first_ms),
                      _when(o.last_ms), o.target)
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    for o in outcomes:
        if o.gaps:
            missing = sum(n for _, n in o.gaps)
            err.print(f"warning: {o.series.symbol} {o.series.timeframe}: the exchange has {len(o.gaps)} gap(s), "
                      f"{missing} candle(s) missing, first after {_when(o.gaps[0][0])}; the backtester refuses "
                      f"gaps, so choose a --timerange without them", highlight=False)
