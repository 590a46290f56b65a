"""``kubetrade runner --config /etc/kubetrade/strategy.json``: the process in a Strategy's pod.

Connections come from ``KUBETRADE_NATS_URL`` and ``KUBETRADE_DATABASE_URL``; the
environment (``KUBETRADE_ENVIRONMENT``, paper or live) must match the Strategy's mode, so a
pod can never trade in an environment it was not deployed for.  Exit codes: 0 after a clean
stop, 2 when the Strategy cannot run (the log line says which field and why).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubetrade import eventloop

log = logging.getLogger("kubetrade.runner")


def register(sub: Any) -> None:
    p = sub.add_parser("runner", help="run one strategy (the process in a Strategy's pod)")
    p.add_argument("--config", type=Path, default=Path("/etc/kubetrade/strategy.json"),
                   help="the Strategy resource (JSON as the operator mounts it, or YAML)")
    p.add_argument("--nats-url", default=os.environ.get("KUBETRADE_NATS_URL", "nats://127.0.0.1:4222"),
                   help="NATS server (default $KUBETRADE_NATS_URL)")
    p.add_argument("--database-url", default=os.environ.get("KUBETRADE_DATABASE_URL"),
                   help="PostgreSQL DSN (default $KUBETRADE_DATABASE_URL)")
    p.add_argument("--environment", default=os.environ.get("KUBETRADE_ENVIRONMENT"), choices=("paper", "live", None),
                   help="paper or live (default $KUBETRADE_ENVIRONMENT, else the Strategy's mode)")
    p.add_argument("--port", type=int, default=9090, help="health probes and metrics")
    p.add_argument("--status-interval", type=float, default=10.0, help="seconds between status reports")
    p.add_argument("--status-min-interval", type=float, default=1.0, help="fewest seconds between two reports")
    p.add_argument("--order-wait", type=float, default=30.0, help="seconds to wait for an order's outcome")
    p.add_argument("--log-level", default="info", help="debug, info, warning or error (default info)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import sys

    # nats-py imports aiohttp, when installed, for its WebSocket transport only; a runner speaks
    # nats:// over TCP, and aiohttp's import alone is about 14 MB of every runner's memory
    sys.modules.setdefault("aiohttp", None)  # type: ignore[arg-type]
    from kubetrade.observability.logging import configure
    from kubetrade.runner.config import RunnerConfigError, load
    from kubetrade.runner.runner import Runner, RunnerOptions

    configure("runner", args.log_level)
    try:
        cfg = load(args.config, args.database_url)
    except RunnerConfigError as exc:
        log.error("strategy cannot run", extra={"error": str(exc)})
        print(f"runner: {exc}")
        return 2
    if args.environment and args.environment != cfg.spec.mode:
        msg = f"{cfg.label}: spec.mode is {cfg.spec.mode} but this runner is deployed for {args.environment}"
        log.error("strategy cannot run", extra={"error": msg})
        print(f"runner: {msg}")
        return 2
    from kubetrade.runner.runner import needs_kernels

    compile_kernels: Callable[[], None] | None = None
    if needs_kernels(cfg.genome, cfg.spec.market):  # a streamed genome needs no kernels (no numba in the pod)
        from kubetrade.engine import warmup

        compile_kernels = warmup

    async def main() -> None:
        # the kernels are compiled (or loaded) before the first bar, never during it, with the
        # probes already answering ("not ready: compiling"), so the pod is not killed meanwhile
        runner = Runner(cfg, args.nats_url, args.database_url,
                        RunnerOptions(probe_port=args.port, status_interval=args.status_interval,
                                      status_min_interval=args.status_min_interval, order_wait=args.order_wait,
                                      compile=compile_kernels))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.stopping.set)
        await runner.run()

    eventloop.run(main())
    return 0
