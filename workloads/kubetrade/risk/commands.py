"""``kubetrade risk-manager``: run the risk manager, or reset a tripped breaker.

::

    kubetrade risk-manager                                  # serve risk.check, watch stops
    kubetrade risk-manager reset-breaker --environment live --policy default
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

from kubetrade import eventloop


def register(sub: Any) -> None:
    parser = sub.add_parser("risk-manager", help="run the risk manager (signals -> decisions, stops)")
    parser.add_argument("--database-url", default=os.environ.get("KUBETRADE_DATABASE_URL"),
                        help="PostgreSQL DSN (default $KUBETRADE_DATABASE_URL)")
    parser.add_argument("--nats-url", default=os.environ.get("KUBETRADE_NATS_URL", "nats://127.0.0.1:4222"),
                        help="NATS server (default $KUBETRADE_NATS_URL)")
    parser.add_argument("--refresh-seconds", type=float, default=1.0, help="risk book refresh period (default 1)")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error (default info)")
    parser.set_defaults(func=_run)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    reset = actions.add_parser("reset-breaker", help="close a breaker tripped by drawdown (a person's decision)")
    reset.add_argument("--nats-url", default=os.environ.get("KUBETRADE_NATS_URL", "nats://127.0.0.1:4222"),
                       help="NATS server (default $KUBETRADE_NATS_URL)")
    reset.add_argument("--environment", choices=("paper", "live"), help="the environment of the breaker")
    reset.add_argument("--namespace", help="namespace of the RiskPolicy")
    reset.add_argument("--policy", help="name of the RiskPolicy whose breaker to close")
    reset.set_defaults(func=_reset)


def _run(args: argparse.Namespace) -> int:
    from kubetrade.observability import probes
    from kubetrade.observability.logging import configure
    from kubetrade.risk.manager import RiskManager
    from kubetrade.storage import migrate

    if not args.database_url:
        print("risk-manager: --database-url (or KUBETRADE_DATABASE_URL) is required")
        return 2
    configure("risk-manager", args.log_level)
    migrate.apply(args.database_url)

    async def main() -> None:
        rm = RiskManager(args.database_url, args.nats_url, refresh_seconds=args.refresh_seconds, settle_heap=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, rm.stopping.set)
        port = probes.port_from_env()
        server = probes.ProbeServer(rm.readiness)
        rm.beat = server.beat
        if port is not None:
            await server.start(port)
        try:
            await rm.run()
        finally:
            await server.stop()

    eventloop.run(main())
    return 0


def _reset(args: argparse.Namespace) -> int:
    import nats

    from kubetrade.messaging import auth, codec, subjects
    from kubetrade.messaging.schemas import RiskControlReply, RiskControlRequest

    async def main() -> RiskControlReply:
        nc = await nats.connect(args.nats_url, **auth.credentials("api"))
        try:
            req = RiskControlRequest(
                action="reset-breaker", environment=args.environment, namespace=args.namespace, policy=args.policy
            )
            msg = await nc.request(subjects.RISK_CONTROL, codec.encode(req), timeout=10)
            return codec.decode(RiskControlReply, msg.data)
        finally:
            await nc.drain()

    reply = asyncio.run(main())
    print(reply.message)
    return 0 if reply.ok else 1
