"""``kubetrade executor``: run the order executor of one environment, or manage ledgers.

::

    kubetrade executor --environment paper            # the singleton executor (waits for the lease)
    kubetrade executor --environment live --exchange-url http://127.0.0.1:9999
    kubetrade executor allocate --environment paper --strategy ema-1 --capital 10000 --risk-policy default

Connections come from ``KUBETRADE_DATABASE_URL`` / ``KUBETRADE_NATS_URL`` (or the flags);
live exchange keys from ``KUBETRADE_EXCHANGE_API_KEY`` / ``KUBETRADE_EXCHANGE_SECRET`` or a
mounted Secret (``KUBETRADE_EXCHANGE_CREDENTIALS_DIR``), never from flags.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

from kubetrade import eventloop


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--environment", choices=("paper", "live"), required=True, help="paper or live")
    parser.add_argument("--database-url", default=os.environ.get("KUBETRADE_DATABASE_URL"),
                        help="PostgreSQL DSN (default $KUBETRADE_DATABASE_URL)")


def register(sub: Any) -> None:
    parser = sub.add_parser("executor", help="run the order executor (one per environment)")
    parser.add_argument("--environment", choices=("paper", "live"), help="paper or live: one executor each")
    parser.add_argument("--database-url", default=os.environ.get("KUBETRADE_DATABASE_URL"),
                        help="PostgreSQL DSN (default $KUBETRADE_DATABASE_URL)")
    parser.add_argument("--nats-url", default=os.environ.get("KUBETRADE_NATS_URL", "nats://127.0.0.1:4222"),
                        help="NATS server (default $KUBETRADE_NATS_URL)")
    parser.add_argument("--exchange", default="binance", help="ccxt exchange id (live)")
    parser.add_argument(
        "--exchange-url",
        default=os.environ.get("KUBETRADE_EXCHANGE_URL"),
        help="send ccxt to this base URL (the local exchange)",
    )
    parser.add_argument("--exchange-timeout-ms", type=int, default=10_000, help="ccxt request timeout (live)")
    parser.add_argument("--sync-seconds", type=float, default=5.0, help="reconciliation period")
    parser.add_argument(
        "--paper-lanes",
        type=int,
        default=int(os.environ.get("KUBETRADE_PAPER_LANES", "2")),
        help="paper batches of different strategies in flight at once, each on its own database connection",
    )
    parser.add_argument("--ack-wait", type=float, default=30.0, help="seconds JetStream waits for an order's ack")
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=11.0,
        help="wait after an uncertain submission before looking the order up (> recvWindow)",
    )
    parser.add_argument("--no-wait", action="store_true", help="exit 3 if another executor holds the lease")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error (default info)")
    parser.set_defaults(func=_run)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    alloc = actions.add_parser("allocate", help="create or resize a strategy's ledger")
    _common(alloc)
    alloc.add_argument("--strategy", required=True, help="the Strategy's name")
    alloc.add_argument("--namespace", default="default", help="the Strategy's namespace")
    alloc.add_argument("--capital", type=float, required=True, help="capital of the ledger, in the quote currency")
    alloc.add_argument("--risk-policy", help="RiskPolicy the ledger answers to")
    alloc.set_defaults(func=_allocate)


def _run(args: argparse.Namespace) -> int:
    from kubetrade.executor.executor import Executor
    from kubetrade.executor.lease import AlreadyHeld
    from kubetrade.executor.venues import CcxtVenue, PaperVenue, Venue, VenueUnsupported
    from kubetrade.observability import probes
    from kubetrade.observability.logging import configure
    from kubetrade.storage import migrate

    if not args.environment or not args.database_url:
        print("executor: --environment and --database-url (or KUBETRADE_DATABASE_URL) are required")
        return 2
    configure(f"executor-{args.environment}", args.log_level)
    migrate.apply(args.database_url)

    async def main() -> int:
        try:
            venue: Venue = (
                PaperVenue()
                if args.environment == "paper"
                else CcxtVenue(args.exchange, args.exchange_url, args.exchange_timeout_ms)
            )
        except (VenueUnsupported, RuntimeError) as exc:  # an exchange ccxt cannot trade, missing credentials
            print(f"executor: {exc}", file=sys.stderr)
            return 2
        ex = Executor(
            args.environment,
            args.database_url,
            args.nats_url,
            venue,
            sync_seconds=args.sync_seconds,
            ack_wait=args.ack_wait,
            settle_seconds=args.settle_seconds,
            lanes=args.paper_lanes,
            settle_heap=True,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, ex.stopping.set)
        port = probes.port_from_env()
        server = probes.ProbeServer(ex.readiness)
        ex.beat = server.beat
        if port is not None:
            await server.start(port)
        try:
            await ex.run(wait_for_lease=not args.no_wait)
        except AlreadyHeld as exc:
            print(f"executor: {exc}")
            return 3
        finally:
            await server.stop()
        return 0

    return eventloop.run(main())


def _allocate(args: argparse.Namespace) -> int:
    from kubetrade.ledger import allocation, connection

    async def main() -> None:
        conn = await connection.connect(args.database_url)
        try:
            await allocation.allocate(
                conn, args.environment, args.strategy, args.capital, args.namespace, args.risk_policy
            )
        finally:
            await conn.close()

    asyncio.run(main())
    print(f"{args.environment} ledger of {args.namespace}/{args.strategy}: capital {args.capital:g}")
    return 0
