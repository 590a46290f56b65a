"""``kubetrade goal-manager``: compute every Goal's figures and report them (equity, progress, sizing).

::

    kubetrade goal-manager                      # every 10 s; Goals read from the cluster (or the local store)
    kubetrade goal-manager --once               # one round, printed
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("goal-manager", help="compute and report every goal's equity, progress and sizing")
    parser.add_argument("--nats-url", default=os.environ.get("KUBETRADE_NATS_URL", "nats://127.0.0.1:4222"),
                        help="NATS server (default $KUBETRADE_NATS_URL)")
    parser.add_argument("--database-url", default=os.environ.get("KUBETRADE_DATABASE_URL"),
                        help="the local resource store, when there is no cluster")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between two rounds (default 10)")
    parser.add_argument("--once", action="store_true", help="one round, printed as JSON")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error (default info)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import nats
    from psycopg_pool import AsyncConnectionPool

    from kubetrade import cluster, eventloop
    from kubetrade.goalmanager.manager import GoalManager
    from kubetrade.messaging import auth
    from kubetrade.observability import probes
    from kubetrade.observability.logging import configure

    configure("goal-manager", args.log_level)

    async def main() -> int:
        pool = None
        if not cluster.configured() and args.database_url:
            pool = AsyncConnectionPool(args.database_url, min_size=1, max_size=2, open=False)
            await pool.open()
        store = cluster.resource_store(pool)
        if store is None:
            print("goal-manager: no cluster (KUBECONFIG or in-cluster) and no --database-url")
            return 2
        nc = await nats.connect(args.nats_url, **auth.credentials("goal-manager"), name="goal-manager",
                                max_reconnect_attempts=-1)
        manager = GoalManager(store, nc, interval=args.interval)
        try:
            if args.once:
                figures = await manager.round()
                print(json.dumps({f"{ns}/{name}": f.status() for (ns, name), f in figures.items()}, indent=2))
                return 0
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, manager.stopping.set)
            server = probes.ProbeServer(manager.readiness, stall_seconds=max(120.0, 6 * args.interval))
            manager.beat = server.beat
            port = probes.port_from_env()
            if port is not None:
                await server.start(port)
            try:
                await manager.run()
            finally:
                await server.stop()
            return 0
        finally:
            await nc.drain()
            if pool is not None:
                await pool.close()

    result: int = eventloop.run(main())
    return result
