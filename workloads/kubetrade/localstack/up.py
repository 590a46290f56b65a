"""Run the platform locally: embedded NATS and PostgreSQL, the resources, the API.

State (the database, the JetStream store) lives in a folder (``.kubetrade/`` by
default) and survives restarts, as a cluster's volumes would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kubetrade.embedded import NatsServer, PostgresServer, free_port
from kubetrade.localstack.resources import ResourceSet, load
from kubetrade.storage import migrate


@dataclass
class UpOptions:
    resources: list[Path]
    state_dir: Path
    api_port: int = 8000
    duration: float | None = None
    """Stop after this many seconds (for scripted runs); None runs until Ctrl-C."""


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
    from kubetrade.embedded.process import port_open

    return preferred if not port_open(preferred) else free_port()


async def _serve_api(port: int, stop: asyncio.Event) -> None:
    import uvicorn

    from kubetrade.api import create_app

    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task


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
    nats = NatsServer(opts.state_dir / "nats")
    pg = PostgresServer(opts.state_dir / "pg")
    started = time.monotonic()
    try:
        with console.status("starting NATS (JetStream)"):
            nats.start()
        console.print(f"[green]✓[/green] NATS      {nats.url}")
        with console.status("starting PostgreSQL"):
            pg.start()
            applied = migrate.apply(pg.dsn())
        console.print(f"[green]✓[/green] PostgreSQL 127.0.0.1:{pg.port} ({len(applied)} migrations applied now)")

        os.environ["KUBETRADE_DATABASE_URL"] = pg.dsn()
        os.environ["KUBETRADE_NATS_URL"] = nats.url
        port = _pick_port(opts.api_port)
        console.print(f"[green]✓[/green] API       http://127.0.0.1:{port}")
        console.print("            health /health, metrics /metrics, OpenAPI docs /docs")
        console.print(f"state in {opts.state_dir}; press Ctrl-C to stop")

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            if opts.duration is not None:
                loop.call_later(opts.duration, stop.set)
            await _serve_api(port, stop)

        asyncio.run(main())
        console.print(f"stopped cleanly after {time.monotonic() - started:.0f}s")
        return 0
    finally:
        with contextlib.suppress(Exception):
            pg.stop()
        with contextlib.suppress(Exception):
            nats.stop()
