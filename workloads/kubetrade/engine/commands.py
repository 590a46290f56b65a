"""``kubetrade backtest`` and ``kubetrade evolve``: the strategy engine on the command line."""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kubetrade.candles import CandleError, Candles, load_csv
from kubetrade.engine.compile import GenomeError, Market
from kubetrade.engine.evolve import EvolveConfig, evolve, summary_row
from kubetrade.engine.indicators import IndicatorError
from kubetrade.engine.runs import Costs, backtest
from kubetrade.engine.selectcommands import run_walk_forward, walk_forward_args
from kubetrade.engine.templates import expand
from kubetrade.resources.genome import Genome
from kubetrade.resources.strategy import Strategy

DSN_ENV = "KUBETRADE_DATABASE_URL"


def register(sub: Any) -> None:
    bt = sub.add_parser("backtest", help="backtest one strategy on candle files and show its metrics")
    bt.add_argument("data", nargs="+", type=Path, help="candle files (gzip CSV time,open,high,low,close,volume)")
    what = bt.add_mutually_exclusive_group(required=True)
    what.add_argument("--strategy", type=Path, help="a Strategy manifest (YAML) with a genome or a template")
    what.add_argument("--genome", type=Path, help="a genome (YAML or JSON, the Strategy spec.genome shape)")
    what.add_argument("--template", help="a named template, e.g. ema-crossover")
    bt.add_argument("--param", action="append", default=[], metavar="K=V", help="template parameter, repeatable")
    bt.add_argument("--market", choices=("spot", "perpetual"), help="default: from the manifest, else spot")
    _costs_args(bt)
    bt.add_argument("--plot", type=Path, help="write the equity curve of the first candle file to this PNG")
    bt.set_defaults(func=_backtest)

    ev = sub.add_parser("evolve", help="evolve strategies (NSGA-II) and emit the best as paper Strategy manifests")
    ev.add_argument("data", nargs="+", type=Path, help="candle files, all of one timeframe")
    ev.add_argument("--population", type=int, default=500)
    ev.add_argument("--generations", type=int, default=10)
    ev.add_argument("--seed", type=int, default=42)
    ev.add_argument("--train-fraction", type=float, default=0.7, help="first part of the bars the search sees")
    ev.add_argument("--min-trades", type=int, default=30, help="fewest training trades (all files together)")
    ev.add_argument("--top", type=int, default=150, help="how many ranked strategies to emit")
    ev.add_argument("--market", choices=("spot", "perpetual"), default="spot")
    _costs_args(ev)
    ev.add_argument("--out", type=Path, help="folder for the Strategy manifests (one YAML each)")
    ev.add_argument("--dsn", default=os.environ.get(DSN_ENV), help=f"PostgreSQL to store results (${DSN_ENV})")
    ev.add_argument("--exchange", default="binance")
    ev.add_argument("--capital", type=float, default=1000.0)
    ev.add_argument("--currency", default="USDT")
    ev.add_argument("--risk-policy", default="default")
    ev.add_argument("--goal")
    ev.add_argument("--namespace")
    ev.add_argument("--plot", type=Path, help="equity curve PNG of the best strategy (validation part)")
    ev.add_argument("--walk-forward", action="store_true",
                    help="search on each window's in-sample bars, score on the windows after, judge with the gates: "
                         "a per-window table and every candidate's verdict; manifests only for those that pass")
    walk_forward_args(ev)
    ev.set_defaults(func=_evolve)


def _costs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fee", type=float, help="fee per side as a fraction (default 0.001)")
    p.add_argument("--slippage", type=float, help="slippage as a fraction (default 0)")
    p.add_argument("--cash", type=float, default=10_000.0, help="initial cash of the backtest")


def _load(paths: list[Path]) -> list[Candles]:
    return [load_csv(p) for p in paths]


def _genome_and_market(args: argparse.Namespace) -> tuple[Genome, Market, str, float | None, float | None]:
    """(genome, market, label, fee, slippage) from whichever of --strategy/--genome/--template was given."""
    if args.strategy:
        st = Strategy.model_validate(yaml.safe_load(args.strategy.read_text()))
        spec = st.spec
        genome = spec.genome or expand(spec.template or "", spec.parameters)
        return (genome, spec.market, st.metadata.get("name", str(args.strategy)), spec.execution.fee_rate,
                spec.execution.slippage_bps / 10_000)
    if args.genome:
        return Genome.model_validate(yaml.safe_load(args.genome.read_text())), "spot", str(args.genome), None, None
    params = {}
    for kv in args.param:
        k, sep, v = kv.partition("=")
        if not sep:
            raise ValueError(f"--param {kv!r}: expected K=V")
        params[k] = float(v)
    return expand(args.template, params), "spot", args.template, None, None


def _pct(x: float) -> str:
    return f"{x:+.2%}"


def _backtest(args: argparse.Namespace) -> int:
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        genome, market, label, fee, slip = _genome_and_market(args)
        costs = Costs(fee=args.fee if args.fee is not None else (fee if fee is not None else 0.001),
                      slippage=args.slippage if args.slippage is not None else (slip or 0.0), init_cash=args.cash)
        data = _load(args.data)
        title = f"backtest {label} ({args.market or market}, fee {costs.fee:g}, slippage {costs.slippage:g})"
        table = Table(title=title)
        for col in ("symbol", "bars", "return", "CAGR", "Sharpe", "Sortino", "max DD", "Calmar", "win rate",
                    "profit factor", "exposure", "trades"):
            table.add_column(col, justify="right")
        first = None
        for c in data:
            r = backtest(genome, c, costs, market=cast(Market, args.market or market))
            first = first or (r, c)
            m = r.metrics
            table.add_row(c.symbol or c.label, str(len(c)), _pct(m.total_return), _pct(m.cagr), f"{m.sharpe:.2f}",
                          f"{m.sortino:.2f}", f"{m.max_drawdown:.2%}", f"{m.calmar:.2f}", f"{m.win_rate:.1%}",
                          f"{m.profit_factor:.2f}", f"{m.exposure:.1%}", str(m.trades))
    except (CandleError, GenomeError, IndicatorError, ValidationError, ValueError, OSError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    console.print(table)
    if args.plot and first:
        from kubetrade.engine.plot import equity_png

        console.print(f"equity curve: {equity_png(first[0], first[1], args.plot, label)}")
    return 0


def _evolve(args: argparse.Namespace) -> int:
    from kubetrade.engine.publish import (
        ManifestSettings,
        store_run,
        strategy_manifest,
        survivor_summary,
        write_manifests,
    )

    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        data = _load(args.data)
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
