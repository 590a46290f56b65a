"""``kubetrade backtest`` and ``kubetrade evolve``: the strategy engine on the command line."""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rich.console import Console

from kubetrade.engine.selectcommands import walk_forward_args

if TYPE_CHECKING:
    from kubetrade.candles import Candles
    from kubetrade.engine.compile import Market
    from kubetrade.engine.results import StrategyRuns
    from kubetrade.resources.genome import Genome

DSN_ENV = "KUBETRADE_DATABASE_URL"
EXPORT_DIR = Path("backtest_results")


def register(sub: Any) -> None:
    bt = sub.add_parser("backtest", help="backtest strategies on candle files: metrics, trades, HTML report",
                        description="Backtest one or more strategies on candle files (gzip CSV, Freqtrade feather/"
                                    "json, Parquet). Several --strategy/--genome/--template are run side by side.")
    bt.add_argument("data", nargs="*", type=Path, help="candle files: gzip CSV, Freqtrade feather/json, or Parquet")
    _datadir_args(bt)
    bt.add_argument("--strategy", action="append", type=Path, default=[], metavar="FILE",
                    help="a Strategy manifest (YAML) with a genome or a template; repeatable")
    bt.add_argument("--genome", action="append", type=Path, default=[], metavar="FILE",
                    help="a genome (YAML or JSON, the Strategy spec.genome shape); repeatable")
    bt.add_argument("--template", action="append", default=[], metavar="NAME[:K=V,...]",
                    help="a named template, e.g. ema-crossover or ema-crossover:fast=10,slow=50; repeatable")
    bt.add_argument("--param", action="append", default=[], metavar="K=V",
                    help="template parameter for every --template, repeatable")
    bt.add_argument("--market", choices=("spot", "perpetual"), help="default: from the manifest, else spot")
    bt.add_argument("--timerange", help="only candles in YYYYMMDD-YYYYMMDD (also YYYYMMDD-, -YYYYMMDD; UTC)")
    _costs_args(bt)
    bt.add_argument("--export", choices=("none", "trades"), default="none",
                    help="trades: write every closed trade to --export-filename")
    bt.add_argument("--export-filename", type=Path, metavar="FILE",
                    help=f"trade list file, .csv or .json (default {EXPORT_DIR}/backtest-trades-<time>.json)")
    bt.add_argument("--breakdown", nargs="+", choices=("day", "week", "month"), default=[],
                    help="closed trades summed per day, week and/or month")
    bt.add_argument("--output", choices=("table", "json"), default="table",
                    help="table (default) or one JSON document on stdout (messages go to stderr)")
    bt.add_argument("--report", type=Path, metavar="FILE.html",
                    help="write a self-contained HTML report: metrics, price with trades, equity, drawdown")
    bt.add_argument("--plot", type=Path, help="write the equity curve of the first run to this PNG (matplotlib)")
    bt.set_defaults(func=_backtest)

    ev = sub.add_parser("evolve", help="evolve strategies (NSGA-II) and emit the best as paper Strategy manifests")
    ev.add_argument("data", nargs="*", type=Path, help="candle files (CSV, feather, json, Parquet), one timeframe")
    _datadir_args(ev)
    ev.add_argument("--population", type=int, default=500, help="genomes per generation (default 500)")
    ev.add_argument("--generations", type=int, default=10, help="generations of NSGA-II (default 10)")
    ev.add_argument("--seed", type=int, default=42, help="random seed: the same seed gives the same run")
    ev.add_argument("--train-fraction", type=float, default=0.7, help="first part of the bars the search sees")
    ev.add_argument("--min-trades", type=int, default=30, help="fewest training trades (all files together)")
    ev.add_argument("--top", type=int, default=150, help="how many ranked strategies to emit")
    ev.add_argument("--market", choices=("spot", "perpetual"), default="spot", help="long/flat (spot) or long/short")
    ev.add_argument("--timerange", help="only candles in YYYYMMDD-YYYYMMDD (also YYYYMMDD-, -YYYYMMDD; UTC)")
    _costs_args(ev)
    ev.add_argument("--out", type=Path, help="folder for the Strategy manifests (one YAML each)")
    ev.add_argument("--dsn", default=os.environ.get(DSN_ENV), help=f"PostgreSQL to store results (${DSN_ENV})")
    ev.add_argument("--exchange", default="binance", help="exchange the emitted Strategies trade on")
    ev.add_argument("--capital", type=float, default=1000.0, help="capital of each emitted Strategy")
    ev.add_argument("--currency", default="USDT", help="currency of that capital")
    ev.add_argument("--risk-policy", default="default", help="RiskPolicy the emitted Strategies name")
    ev.add_argument("--goal", help="Goal the emitted Strategies belong to")
    ev.add_argument("--namespace", help="namespace of the emitted manifests")
    ev.add_argument("--plot", type=Path, help="equity curve PNG of the best strategy (validation part)")
    ev.add_argument("--walk-forward", action="store_true",
                    help="search on each window's in-sample bars, score on the windows after, judge with the gates: "
                         "a per-window table and every candidate's verdict; manifests only for those that pass")
    walk_forward_args(ev)
    ev.set_defaults(func=_evolve)


def _datadir_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datadir", type=Path, help="take the candle files from this folder (as download-data wrote "
                                                 "them), with --timeframe and optionally --pairs")
    p.add_argument("-p", "--pairs", nargs="+", metavar="PAIR", help="with --datadir: these pairs (default: all)")
    p.add_argument("-i", "--timeframe", help="with --datadir: the timeframe of the files, e.g. 5m")


def _files(args: argparse.Namespace) -> list[Path]:
    """The candle files named on the command line, then those --datadir holds for --pairs x --timeframe."""
    from kubetrade import candlefiles

    files = list(args.data)
    if args.datadir is None:
        if args.pairs or args.timeframe:
            raise ValueError("--pairs and --timeframe choose files in --datadir; give --datadir too")
        if not files:
            raise ValueError("give candle files, or --datadir with --timeframe (e.g. --datadir data/binance -i 5m)")
        return files
    if not args.timeframe:
        raise ValueError("--datadir needs --timeframe (-i), e.g. -i 5m")
    folder: Path = args.datadir
    if not folder.is_dir():
        raise ValueError(f"--datadir {folder}: no such folder")
    have = candlefiles.candle_files(folder)
    if args.pairs:
        for pair in args.pairs:
            found = candlefiles.find(folder, pair, args.timeframe)
            if found is None:
                names = ", ".join(p.name for p in have) or "none"
                raise ValueError(f"no {args.timeframe} file for {pair} in {folder} (has {names}); fetch it with "
                                 f"kubetrade download-data --pairs {pair} --timeframes {args.timeframe} "
                                 f"--datadir {folder}")
            files.append(found)
    else:
        by_symbol: dict[str, Path] = {}
        rank = list(candlefiles.SUFFIXES)
        for path in sorted(have, key=lambda q: rank.index(candlefiles.suffix_of(q))):
            symbol, tf = candlefiles.parse_name(path)
            if tf == args.timeframe and symbol:
                by_symbol.setdefault(symbol, path)  # one file per pair, the project's CSV first
        chosen = [by_symbol[s] for s in sorted(by_symbol)]
        if not chosen:
            raise ValueError(f"no {args.timeframe} candle files in {folder}")
        files += chosen
    return list(dict.fromkeys(files))


def _costs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fee", type=float, help="fee per side as a fraction (default 0.001)")
    p.add_argument("--slippage", type=float, help="slippage as a fraction (default 0)")
    p.add_argument("--cash", type=float, default=10_000.0, help="initial cash of the backtest")


def _load(paths: list[Path], timerange: str | None = None) -> list[Candles]:
    """Load candle files (any format), cut to the timerange; one timeframe across all of them."""
    from kubetrade import candlefiles
    from kubetrade.timerange import parse

    data = [candlefiles.load(p) for p in paths]
    frames = {c.timeframe for c in data}
    if len(frames) > 1:
        by = ", ".join(f"{c.timeframe} ({Path(c.source).name})" for c in data)
        raise ValueError(f"candle files of one run must share a timeframe; got {by}")
    if timerange:
        tr = parse(timerange)
        data = [tr.apply(c) for c in data]
    return data


def _params(items: list[str], where: str) -> dict[str, float]:
    params = {}
    for kv in items:
        k, sep, v = kv.partition("=")
        if not sep or not k.strip():
            raise ValueError(f"{where} {kv!r}: expected K=V")
        try:
            params[k.strip()] = float(v)
        except ValueError:
            raise ValueError(f"{where} {kv!r}: {v!r} is not a number") from None
    return params


def _strategies(args: argparse.Namespace) -> list[tuple[Genome, Market, str, float | None, float | None]]:
    """(genome, market, label, fee, slippage) of every --strategy, --genome and --template, in that order."""
    import yaml

    from kubetrade.engine.templates import expand
    from kubetrade.resources.genome import Genome
    from kubetrade.resources.strategy import Strategy

    out: list[tuple[Genome, Market, str, float | None, float | None]] = []
    for path in args.strategy:
        st = Strategy.model_validate(yaml.safe_load(path.read_text()))
        spec = st.spec
        genome = spec.genome or expand(spec.template or "", spec.parameters)
        out.append((genome, spec.market, st.metadata.get("name", str(path)), spec.execution.fee_rate,
                    spec.execution.slippage_bps / 10_000))
    for path in args.genome:
        out.append((Genome.model_validate(yaml.safe_load(path.read_text())), "spot", path.stem, None, None))
    common = _params(args.param, "--param")
    for item in args.template:
        name, _, rest = item.partition(":")
        params = {**common, **_params([kv for kv in rest.split(",") if kv], f"--template {name}")}
        label = name + (":" + ",".join(f"{k}={v:g}" for k, v in params.items()) if params else "")
        out.append((expand(name, params), "spot", label, None, None))
    if not out:
        raise ValueError("give at least one --strategy, --genome or --template")
    labels = [o[2] for o in out]
    dupes = {x for x in labels if labels.count(x) > 1}
    if dupes:  # the same name twice would make the side-by-side table ambiguous
        seen: dict[str, int] = {}
        renamed = []
        for o in out:
            n = seen[o[2]] = seen.get(o[2], 0) + 1
            renamed.append((o[0], o[1], f"{o[2]} #{n}" if o[2] in dupes else o[2], o[3], o[4]))
        out = renamed
    return out


def _pct(x: float) -> str:
    return f"{x:+.2%}"


def _first_compile(console: Console) -> Any:
    """A status line while the kernels compile (first run on a machine) or load from numba's cache."""
    import contextlib

    from kubetrade.engine import backtest as kernels

    if getattr(kernels.simulate, "signatures", None):
        return contextlib.nullcontext()
    where = os.environ.get("NUMBA_CACHE_DIR") or "numba's cache beside the sources"
    text = f"preparing the backtest kernels: compiled on first use (about a minute), later loaded from {where}"
    if not console.is_terminal:  # no spinner without a terminal: say it once
        console.print(text, highlight=False)
    return console.status(text + " ...")


def _backtest(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from rich.table import Table

    from kubetrade.candles import CandleError
    from kubetrade.engine.compile import GenomeError
    from kubetrade.engine.indicators import IndicatorError
    from kubetrade.engine.results import Run, StrategyRuns, document, export_trades
    from kubetrade.engine.runs import Costs, backtest
    from kubetrade.timerange import TimeRangeError

    as_json = args.output == "json"
    out = Console(width=None if sys.stdout.isatty() else 160)
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    msg = err if as_json else out
    try:
        strategies = _strategies(args)
        data = _load(_files(args), args.timerange)
        if args.export_filename and args.export == "none":
            raise ValueError("--export-filename needs --export trades")
        results: list[StrategyRuns] = []
        t0 = time.perf_counter()
        with _first_compile(err):
            for genome, market, label, fee, slip in strategies:
                costs = Costs(fee=args.fee if args.fee is not None else (fee if fee is not None else 0.001),
                              slippage=args.slippage if args.slippage is not None else (slip or 0.0),
                              init_cash=args.cash)
                mk = cast("Market", args.market or market)
                sr = StrategyRuns(label, mk, costs)
                for c in data:
                    sr.runs.append(Run(label, c, backtest(genome, c, costs, market=mk), c.source))
                results.append(sr)
        elapsed = time.perf_counter() - t0
    except (CandleError, GenomeError, IndicatorError, ValidationError, TimeRangeError, ValueError, OSError) as e:
        err.print(f"[red]error:[/red] {_one_line(e)}", highlight=False, soft_wrap=True)
        return 1
    if as_json:
        import json

        print(json.dumps(document(results, timerange=args.timerange, breakdowns=args.breakdown), indent=2))
    else:
        for sr in results:
            c0 = sr.costs
            table = Table(title=f"backtest {sr.name} ({sr.market}, fee {c0.fee:g}, slippage {c0.slippage:g})")
            for col in ("symbol", "bars", "from", "to", "return", "CAGR", "Sharpe", "Sortino", "max DD", "Calmar",
                        "win rate", "profit factor", "exposure", "trades"):
                table.add_column(col, justify="right", no_wrap=col in ("symbol", "from", "to"))
            for r in sr.runs:
                m, c = r.result.metrics, r.candles
                table.add_row(c.symbol or c.label, str(len(c)), _day(int(c.time[0])), _day(int(c.time[-1])),
                              _pct(m.total_return), _pct(m.cagr), f"{m.sharpe:.2f}", f"{m.sortino:.2f}",
                              f"{m.max_drawdown:.2%}", f"{m.calmar:.2f}", f"{m.win_rate:.1%}",
                              f"{m.profit_factor:.2f}", f"{m.exposure:.1%}", str(m.trades))
            out.print(table)
            for period in args.breakdown:
                _print_breakdown(out, sr, period)
        if len(results) > 1:
            _print_summary(out, results)
        msg.print(f"{len(results)} strateg{'y' if len(results) == 1 else 'ies'} x {len(data)} series in "
                  f"{elapsed:.1f}s", highlight=False)
    try:
        if args.export == "trades":
            target = args.export_filename or EXPORT_DIR / f"backtest-trades-{datetime.now(UTC):%Y-%m-%d_%H-%M-%S}.json"
            path, n = export_trades(results, target)
            msg.print(f"exported {n} trades to {path}", highlight=False)
        if args.report:
            from kubetrade.engine import htmlreport

            names = ", ".join(sr.name for sr in results)
            span = f"{_day(int(data[0].time[0]))} to {_day(int(data[0].time[-1]))}"
            htmlreport.write(results, args.report, title=f"Backtest: {names}",
                             subtitle=f"{', '.join(c.symbol for c in data)} {data[0].timeframe}, {span}"
                                      + (f" (timerange {args.timerange})" if args.timerange else ""),
                             breakdowns=args.breakdown or ["month"])
            msg.print(f"report: {args.report}", highlight=False)
        if args.plot:
            from kubetrade.engine.plot import equity_png

            first = results[0].runs[0]
            msg.print(f"equity curve: {equity_png(first.result, first.candles, args.plot, results[0].name)}")
    except (ValueError, OSError, RuntimeError) as e:
        err.print(f"[red]error:[/red] {_one_line(e)}", highlight=False, soft_wrap=True)
        return 1
    return 0


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split("\n")[0].split()) if str(e) else type(e).__name__


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _print_breakdown(out: Console, sr: StrategyRuns, period: str) -> None:
    from rich.table import Table

    from kubetrade.engine.results import breakdown

    table = Table(title=f"{sr.name} by {period} (closed trades)")
    for col in (period, "trades", "win/draw/loss", "PnL", "PnL %"):
        table.add_column(col, justify="right")
    for r in breakdown(sr, period):
        table.add_row(r["period"], str(r["trades"]), f"{r['wins']}/{r['draws']}/{r['losses']}", f"{r['pnl']:+,.2f}",
                      _pct(r["pnl_pct"]))
    out.print(table)


def _print_summary(out: Console, results: list[StrategyRuns]) -> None:
    from rich.table import Table

    table = Table(title="strategies side by side")
    for col in ("strategy", "series", "trades", "win rate", "total PnL", "total return", "mean Sharpe", "worst DD",
                "avg hours held"):
        table.add_column(col, justify="right")
    for sr in results:
        s = sr.summary()
        table.add_row(sr.name, str(s["series"]), str(s["trades"]), f"{s['win_rate']:.1%}", f"{s['total_pnl']:+,.2f}",
                      _pct(s["total_return"]), f"{s['mean_sharpe']:.2f}", f"{s['max_drawdown']:.2%}",
                      f"{s['avg_duration_hours']:.1f}")
    out.print(table)


def _evolve(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from kubetrade.candles import CandleError
    from kubetrade.engine.evolve import EvolveConfig, evolve, summary_row
    from kubetrade.engine.publish import (
        ManifestSettings,
        store_run,
        strategy_manifest,
        survivor_summary,
        write_manifests,
    )
    from kubetrade.engine.runs import Costs, backtest
    from kubetrade.engine.selectcommands import run_walk_forward

    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        data = _load(_files(args), args.timerange)
        if len({c.timeframe for c in data}) != 1:
            raise ValueError(f"all candle files must share one timeframe, got {sorted({c.timeframe for c in data})}")
        cfg = EvolveConfig(population=args.population, generations=args.generations, seed=args.seed,
                           train_fraction=args.train_fraction, min_trades=args.min_trades, top=args.top,
                           market=args.market, costs=Costs(fee=0.001 if args.fee is None else args.fee,
                                                           slippage=args.slippage or 0.0, init_cash=args.cash))
    except (CandleError, ValueError, OSError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    if args.walk_forward:
        return run_walk_forward(args, data, cfg, console)
    run_id = str(uuid.uuid4())
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task("evolving", total=cfg.generations)
        result = evolve(data, cfg, progress=lambda done, total, msg: bar.update(task, completed=done, description=msg))
    elapsed = time.perf_counter() - t0
    settings = ManifestSettings(exchange=args.exchange, capital=args.capital, currency=args.currency,
                                risk_policy=args.risk_policy, goal=args.goal, namespace=args.namespace)
    strategies = [strategy_manifest(s.genome, survivor_summary(s), rank, run_id, data, cfg, settings)
                  for rank, s in enumerate(result.survivors, start=1)]
    table = Table(title=f"evolution {run_id[:8]}: {result.trials} genomes tried, {len(result.survivors)} survivors, "
                        f"{elapsed:.1f}s")
    for col in ("rank", "strategy", "train return", "val return", "val max DD", "val Sharpe", "val trades",
                "deflated Sharpe"):
        table.add_column(col, justify="right")
    for rank, (s, st) in enumerate(zip(result.survivors[:20], strategies, strict=False), start=1):
        row = summary_row(rank, s)
        table.add_row(str(rank), st.metadata["name"], _pct(row["train_return"]), _pct(row["val_return"]),
                      f"{row['val_max_dd']:.2%}", f"{row['val_sharpe']:.2f}", str(row["val_trades"]),
                      f"{row['deflated_sharpe']:.3f}")
    console.print(table)
    if args.out:
        paths = write_manifests(strategies, args.out)
        console.print(f"wrote {len(paths)} Strategy manifests to {args.out}")
    if args.dsn:
        store_run(args.dsn, run_id, started, result, cfg, data, strategies, goal=args.goal)
        console.print(f"stored run {run_id} in PostgreSQL")
    if args.plot and result.survivors:
        from kubetrade.engine.plot import equity_png

        c = data[0]
        split = int(len(c) * cfg.train_fraction)
        r = backtest(result.survivors[0].genome, c, cfg.costs, market=cfg.market, start=split)
        console.print(f"equity curve: {equity_png(r, c, args.plot, strategies[0].metadata['name'], start=split)}")
    return 0 if result.survivors else 3
