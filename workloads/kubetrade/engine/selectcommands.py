"""``kubetrade evolve --walk-forward`` and ``kubetrade evaluate``: the selection evidence on the command line.

Both print what the Goal's evolution run decides on (:mod:`kubetrade.engine.walkforward`,
:mod:`kubetrade.lifecycle.gates`): a table per out-of-sample window and the gates' verdict
on each candidate, with the failing figures.  ``evolve --walk-forward`` searches; ``evaluate``
scores one given strategy on the same windows (``--trials`` says how many strategies were
tried to find it, which the deflated Sharpe ratio discounts).  Exit codes: 0 something passed,
3 nothing passed, 1 the input cannot be used (the message says why).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the engine loads on first use: `kubetrade --help` and other commands stay quick
    from rich.console import Console

    from kubetrade.candles import Candles
    from kubetrade.engine.altdata import AltData
    from kubetrade.engine.evolve import EvolveConfig
    from kubetrade.engine.walkforward import WalkForwardConfig, WalkForwardResult
    from kubetrade.resources.goal import SelectionGates
    from kubetrade.resources.strategy import SelectionEvidence


def walk_forward_args(p: argparse.ArgumentParser) -> None:
    """The window and gate options shared by ``evolve --walk-forward`` and ``evaluate``."""
    g = p.add_argument_group("walk-forward windows and gates")
    g.add_argument("--windows", type=int, default=3, help="out-of-sample windows (default 3)")
    g.add_argument("--mode", choices=("rolling", "anchored"), default="rolling",
                   help="rolling: each search sees a fixed span before its window; anchored: all bars from the start")
    g.add_argument("--oos-fraction", type=float, default=0.1, help="each window's share of the bars (default 0.1)")
    g.add_argument("--oos-bars", type=int, help="bars per out-of-sample window (instead of --oos-fraction)")
    g.add_argument("--is-bars", type=int, help="in-sample bars of each search (default: all before window 0)")
    g.add_argument("--step-bars", type=int, help="bars between window starts (default: back to back)")
    g.add_argument("--blocks", type=int, default=16, help="CSCV blocks for the PBO (default 16)")
    g.add_argument("--per-window", type=int, default=5, help="genomes each search hands on (default 5)")
    g.add_argument("--min-dsr", type=float, default=0.95, help="lowest deflated Sharpe ratio (default 0.95)")
    g.add_argument("--max-pbo", type=float, default=0.5, help="highest probability of backtest overfitting")
    g.add_argument("--min-windows", type=int, default=2,
                   help="fewest out-of-sample windows the evidence must cover (default 2)")
    g.add_argument("--min-oos-trades", type=int, default=10,
                   help="fewest out-of-sample trades, all windows together (default 10)")
    g.add_argument("--benchmark", choices=("cash", "buyAndHold"), default="buyAndHold",
                   help="what the pooled out-of-sample return must beat (default buyAndHold)")
    g.add_argument("--alt", type=Path, action="append", default=[], metavar="CSV",
                   help="alternative-data points (provider,topic,metric,time,value; time in ms), repeatable")


def register(sub: Any) -> None:
    ev = sub.add_parser("evaluate", help="the walk-forward evidence and the gates' verdict on one strategy")
    ev.add_argument("strategy", type=Path, help="a Strategy manifest (YAML) with a genome or a template")
    ev.add_argument("data", nargs="+", type=Path, help="candle files of its pairs, one timeframe")
    ev.add_argument("--trials", type=int,
                    help="how many strategies were tried to find this one, which the DSR discounts (default: the "
                         "manifest's status.evidence.trials, else 1)")
    ev.add_argument("--pbo", type=float,
                    help="PBO of the search that found it (default: the manifest's status.evidence.pbo)")
    ev.add_argument("--fee", type=float, help="default: the manifest's execution.feeRate")
    ev.add_argument("--slippage", type=float, help="default: the manifest's execution.slippageBps")
    ev.add_argument("--cash", type=float, default=10_000.0, help="initial cash of each backtest (default 10,000)")
    walk_forward_args(ev)
    ev.set_defaults(func=_evaluate)


def config_from(args: argparse.Namespace, bars: int | None = None) -> tuple[WalkForwardConfig, SelectionGates]:
    from kubetrade.engine.walkforward import WalkForwardConfig
    from kubetrade.resources.goal import SelectionGates

    wf = WalkForwardConfig(windows=args.windows, mode=args.mode, bars=bars, oos_bars=args.oos_bars,
                           oos_fraction=args.oos_fraction, is_bars=args.is_bars, step_bars=args.step_bars,
                           per_window=args.per_window, blocks=args.blocks, benchmark=args.benchmark)
    gates = SelectionGates(min_deflated_sharpe=args.min_dsr, max_pbo=args.max_pbo, min_windows=args.min_windows,
                           min_trades=args.min_oos_trades, benchmark=args.benchmark)
    return wf, gates


def load_alt(paths: list[Path]) -> AltData | None:
    """Alternative-data points from CSV files (``provider,topic,metric,time,value``) as series."""
    if not paths:
        return None
    import csv

    from kubetrade.engine.altdata import AltDataError, series
    from kubetrade.resources.genome import AltSeriesRef

    points: dict[tuple[str, str, str], tuple[list[int], list[float]]] = {}
    for path in paths:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            want = ["provider", "topic", "metric", "time", "value"]
            if reader.fieldnames != want:
                raise AltDataError(f"{path}: header is {reader.fieldnames}, expected {','.join(want)}")
            for n, row in enumerate(reader, start=2):
                try:
                    t, v = int(row["time"]), float(row["value"])
                except ValueError as e:
                    raise AltDataError(f"{path}:{n}: {e}") from None
                ts, vs = points.setdefault((row["provider"], row["topic"], row["metric"]), ([], []))
                ts.append(t)
                vs.append(v)
    out = {}
    for (provider, topic, metric), (ts, vs) in points.items():
        ref = AltSeriesRef(provider=provider, topic=topic, metric=metric)
        out[ref.key] = series(ref, ts, vs)
    return out


def _pct(x: float) -> str:
    return f"{x:+.2%}"


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def print_windows(console: Console, result: WalkForwardResult) -> None:
    from rich.table import Table

    table = Table(title=f"walk-forward: {len(result.windows)} windows ({result.config.mode}), "
                        f"{result.trials} genomes tried on {', '.join(result.datasets)}")
    for col in ("window", "in sample", "out of sample", "tried", "PBO", "chosen", "chosen OOS return (best)",
                "benchmark"):
        table.add_column(col, justify="right")
    for w in result.windows:
        rets = w.chosen_returns(result.candidates)
        table.add_row(str(w.window.index), f"{_day(w.is_from)} .. {_day(w.is_to)}",
                      f"{_day(w.oos_from)} .. {_day(w.oos_to)}", str(w.trials) if w.trials else "-",
                      f"{w.pbo.pbo:.2f}" if w.pbo is not None else "-", str(len(w.chosen)),
                      _pct(max(rets)) if rets else "-", _pct(w.benchmark_return))
    console.print(table)


def print_verdicts(console: Console, verdicts: list[tuple[str, SelectionEvidence]], limit: int = 20) -> None:
    from rich.table import Table

    table = Table(title=f"gates: {sum(e.passed for _, e in verdicts)} of {len(verdicts)} passed")
    for col in ("strategy", "windows", "positive", "OOS return", "Sharpe", "DSR", "PBO", "benchmark", "trades",
                "verdict"):
        table.add_column(col, justify="right" if col != "verdict" else "left")
    for name, e in verdicts[:limit]:
        table.add_row(name, str(len(e.windows)), f"{e.positive_windows}/{len(e.windows)}", _pct(e.oos_return_pct),
                      f"{e.sharpe:.2f}", f"{e.deflated_sharpe:.3f}", f"{e.pbo:.2f}" if e.pbo is not None else "-",
                      _pct(e.benchmark_return_pct), str(e.trades),
                      "[green]passed[/green]" if e.passed else f"[red]{e.failures[0]}[/red]")
    console.print(table)


def run_walk_forward(args: argparse.Namespace, data: list[Candles], cfg: EvolveConfig, console: Console) -> int:
    """``evolve --walk-forward``: search per window, the gates on every candidate, manifests for those that pass."""
    from kubetrade.candles import CandleError
    from kubetrade.engine.altdata import AltDataError
    from kubetrade.engine.compile import GenomeError
    from kubetrade.engine.publish import (
        Candidate,
        ManifestSettings,
        evidence_summary,
        store_selection,
        strategy_manifest,
        write_manifests,
    )
    from kubetrade.engine.walkforward import WalkForwardError, walk_forward
    from kubetrade.lifecycle.gates import judged
    from kubetrade.resources.strategy import StrategyStatus

    try:
        wf, gates = config_from(args)
        alt = load_alt(args.alt)
        t0 = time.perf_counter()
        started = datetime.now(UTC)
        with console.status("walk-forward") as status:
            result = walk_forward(data, cfg, wf, lambda d, t, msg: status.update(msg), alt=alt)
    except (WalkForwardError, AltDataError, CandleError, GenomeError, ValueError, OSError) as err:
        console.print(f"[red]error:[/red] {err}")
        return 1
    run_id = str(uuid.uuid4())
    settings = ManifestSettings(exchange=args.exchange, capital=args.capital, currency=args.currency,
                                risk_policy=args.risk_policy, goal=args.goal, namespace=args.namespace)
    order = sorted(result.evidence.items(), key=lambda kv: (-kv[1].deflated_sharpe, -kv[1].oos_return_pct, kv[0]))
    ranked = []
    for rank, (key, raw) in enumerate(order, start=1):
        e = judged(raw, gates)
        st = strategy_manifest(result.candidates[key].genome, evidence_summary(e), rank, run_id, data, cfg, settings)
        st.status = StrategyStatus(phase="Pending", backtest=evidence_summary(e), evidence=e)
        ranked.append(Candidate(rank, result.candidates[key].genome, e, st))
    console.print(f"{time.perf_counter() - t0:.1f}s")
    print_windows(console, result)
    print_verdicts(console, [(c.strategy.metadata["name"], c.evidence) for c in ranked])
    passed = [c for c in ranked if c.evidence.passed][: args.top]
    if args.out and passed:
        paths = write_manifests([c.strategy for c in passed], args.out)
        console.print(f"wrote {len(paths)} Strategy manifests (those that passed) to {args.out}")
    if args.dsn:
        store_selection(args.dsn, run_id, started, result, cfg, data, ranked, goal=args.goal)
        console.print(f"stored run {run_id} in PostgreSQL")
    if not passed:
        from kubetrade.lifecycle.gates import no_pass_message

        console.print(no_pass_message([c.evidence for c in ranked], result.pbos))
    return 0 if passed else 3


def _evaluate(args: argparse.Namespace) -> int:
    import yaml
    from pydantic import ValidationError
    from rich.console import Console
    from rich.table import Table

    from kubetrade.candles import CandleError, load_csv
    from kubetrade.engine.altdata import AltDataError
    from kubetrade.engine.compile import GenomeError
    from kubetrade.engine.evolve import EvolveConfig
    from kubetrade.engine.runs import Costs
    from kubetrade.engine.templates import expand
    from kubetrade.engine.walkforward import WalkForwardError, evaluate
    from kubetrade.lifecycle.gates import judged
    from kubetrade.resources.strategy import Strategy

    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        st = Strategy.model_validate(yaml.safe_load(args.strategy.read_text()))
        spec = st.spec
        genome = spec.genome or expand(spec.template or "", spec.parameters)
        data = [load_csv(p) for p in args.data]
        costs = Costs(fee=spec.execution.fee_rate if args.fee is None else args.fee,
                      slippage=spec.execution.slippage_bps / 10_000 if args.slippage is None else args.slippage,
                      init_cash=args.cash)
        cfg = EvolveConfig(market=spec.market, costs=costs)
        wf, gates = config_from(args)
        found = st.status.evidence if st.status is not None else None
        trials = args.trials if args.trials is not None else (found.trials if found is not None else 1)
        pbo = args.pbo if args.pbo is not None else (found.pbo if found is not None else None)
        result = evaluate(genome, data, cfg, wf, trials=max(1, trials), alt=load_alt(args.alt), pbo=pbo)
    except (WalkForwardError, AltDataError, CandleError, GenomeError, ValidationError, ValueError, OSError) as err:
        console.print(f"[red]error:[/red] {err}")
        return 1
    (e,) = (judged(x, gates) for x in result.evidence.values())
    print_windows(console, result)
    table = Table(title=f"{st.metadata.get('name', args.strategy)}: per window")
    for col in ("window", "out of sample", "return", "Sharpe", "trades", "benchmark"):
        table.add_column(col, justify="right")
    for w in e.windows:
        table.add_row(str(w.index), f"{w.start:%Y-%m-%d %H:%M} .. {w.end:%Y-%m-%d %H:%M}", _pct(w.return_pct),
                      f"{w.sharpe:.2f}", str(w.trades), _pct(w.benchmark_return_pct))
    console.print(table)
    print_verdicts(console, [(str(st.metadata.get("name", args.strategy)), e)])
    for f in e.failures:
        console.print(f"  - {f}")
    return 0 if e.passed else 3

