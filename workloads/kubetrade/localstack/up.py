"""Run the platform locally: real NATS and PostgreSQL on loopback, then the pipeline of
:mod:`kubetrade.localstack.pipeline` (history, evolution, risk, executor, the operator's
reconcilers, runners, goal manager, replay, API).  Exit 0 when it stopped cleanly, 1 when a
service was given up or approved orders were left unprocessed (the summary says which).

``state_dir`` (``.kubetrade/``) keeps the logs, the evolved manifests, the effective
resources, the local API key and the run's summary; each run starts a fresh database and
JetStream store, because a run replays the same bundled candles and must not meet its own past.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kubetrade.localstack.manifests import ResourceSet, load
from kubetrade.localstack.pipeline import PipelineOptions, Stack, run_pipeline
from kubetrade.localstack.servers import NatsServer, PostgresServer, free_port
from kubetrade.localstack.servers.processes import port_open
from kubetrade.messaging import auth, signing
from kubetrade.storage import migrate


@dataclass
class UpOptions(PipelineOptions):
    resources: list[Path] = field(default_factory=list)
    """Resource YAML files or folders, as ``kubectl apply -f`` takes them."""


def _resource_table(rs: ResourceSet) -> Table:
    table = Table(title="Resources", show_lines=False)
    for col in ("kind", "name", "summary"):
        table.add_column(col)
    for p in rs.policies:
        lim = p.spec
        table.add_row(
            "RiskPolicy",
            p.metadata["name"],
            f"max position {lim.strategy_limits.max_position_pct:.0%}, "
            f"risk/trade {lim.strategy_limits.max_risk_per_trade_pct:.0%}, "
            f"max drawdown {lim.portfolio_limits.max_drawdown_pct:.0%}",
        )
    for g in rs.goals:
        t = g.spec.target
        table.add_row(
            "Goal",
            g.metadata["name"],
            f"+{t.return_pct:.0%}/{t.period} on {t.capital.amount:,.0f} {t.capital.currency}, "
            f"evolution '{g.spec.evolution.schedule}' x{g.spec.evolution.population}",
        )
    for c in rs.collectors:
        table.add_row("Collector", c.metadata["name"], f"{c.spec.source}/{c.spec.provider} {', '.join(c.spec.symbols)}")
    for s in rs.strategies:
        logic = "genome" if s.spec.genome else f"template {s.spec.template}"
        table.add_row(
            "Strategy",
            s.metadata["name"],
            f"{s.spec.mode} {', '.join(s.spec.symbols)} {s.spec.timeframe} ({logic}), "
            f"{s.spec.capital.amount:,.0f} {s.spec.capital.currency}",
        )
    return table


def _pick_port(preferred: int) -> int:
    return preferred if preferred and not port_open(preferred) else free_port()


def run(opts: UpOptions, console: Console | None = None) -> int:
    console = console or Console()
    try:
        rs = load(opts.resources)
    except ValueError as exc:
        console.print(f"[red]invalid resource:[/red] {exc}")
        return 2
    problems = rs.check_references()
    if problems:
        for p in problems:
            console.print(f"[red]{p}[/red]")
        return 2
    console.print(_resource_table(rs))

    opts.state_dir.mkdir(parents=True, exist_ok=True)
    opts.state_dir.chmod(0o755)
    # every run is a fresh, reproducible session over the bundled candles: a JetStream store that
    # remembered last run's message ids would silently drop this run's candles as duplicates
    shutil.rmtree(opts.state_dir / "nats", ignore_errors=True)
    # NATS as in the chart: one identity per role with its own subjects, and signed orders
    passwords = auth.generate_passwords()
    nats = NatsServer(opts.state_dir / "nats", authorization=auth.server_authorization(passwords, local=True))
    auth.use_local(passwords)
    os.environ.setdefault(signing.ENV, secrets.token_hex(32))
    # the database is fresh each run too, so it lives in a temp folder the PostgreSQL service user can always
    # reach (a state folder under a private home directory may not be traversable by it)
    pg = PostgresServer(durable=False)
    started = time.monotonic()
    try:
        with console.status("starting NATS (JetStream)"):
            nats.start()
        console.print(f"[green]✓[/green] NATS      {nats.url}")
        with console.status("starting PostgreSQL"):
            pg.start()
            dsn = pg.create_database("kubetrade_local")
            applied = migrate.apply(dsn)
        console.print(f"[green]✓[/green] PostgreSQL 127.0.0.1:{pg.port} (fresh database, {len(applied)} migrations)")

        os.environ["KUBETRADE_DATABASE_URL"] = dsn
        os.environ["KUBETRADE_NATS_URL"] = nats.url
        port = _pick_port(opts.api_port)
        users = opts.state_dir / "nats-users.json"  # each role's NATS password, for local tools (nats sub ...)
        users.touch(0o600)
        users.chmod(0o600)
        users.write_text(json.dumps(passwords, indent=1))
        endpoints = opts.state_dir / "endpoints.json"
        endpoints.write_text(json.dumps({"api": f"http://127.0.0.1:{port}", "nats": nats.url, "database": dsn}))
        endpoints.chmod(0o600)
        opts.api_port = port
        stack = Stack(rs, opts, console, nats.url, dsn, api_url=f"http://127.0.0.1:{port}")

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            if opts.duration is not None:
                loop.call_later(opts.duration, stop.set)
            await run_pipeline(stack, stop)

        asyncio.run(main())
        took = time.monotonic() - started
        if stack.problems:
            console.print(f"[red]stopped after {took:.0f}s with problems[/red]; summary in "
                          f"{opts.state_dir / 'summary.json'}")
            for p in stack.problems:
                console.print(f"[red]  - {p}[/red]")
            return 1
        console.print(f"stopped cleanly after {took:.0f}s; summary in {opts.state_dir / 'summary.json'}")
        return 0
    finally:
        with contextlib.suppress(Exception):
            pg.cleanup()
        with contextlib.suppress(Exception):
            nats.stop()
