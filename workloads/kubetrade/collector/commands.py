"""``kubetrade collect``: run one Collector resource (what the collector Deployment runs)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "/etc/kubetrade/collector.json"


def register(sub: Any) -> None:
    parser = sub.add_parser("collect", help="run a market or alternative data collector")
    parser.add_argument("--config", "--resource", dest="config", type=Path,
                        default=Path(os.environ.get("KUBETRADE_COLLECTOR_CONFIG", DEFAULT_CONFIG)),
                        help="the Collector resource as JSON or YAML (default: $KUBETRADE_COLLECTOR_CONFIG "
                             f"or {DEFAULT_CONFIG}, the operator's mounted ConfigMap)")
    parser.add_argument("--store", action=argparse.BooleanOptionalAction, default=None,
                        help="also store candles and points in the database (default: when "
                             "KUBETRADE_DATABASE_URL is set)")
    parser.add_argument("--exchange-url", help="send the exchange client to this base URL "
                                               "(default: $KUBETRADE_EXCHANGE_URL, else the exchange's own)")
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("KUBETRADE_METRICS_PORT", "9090")),
                        help="probes (/healthz, /readyz) and Prometheus metrics port (the pod's metrics port, "
                             "9090); 0 turns it off")
    parser.set_defaults(func=_collect)


def load_resource(path: Path) -> Any:
    import yaml

    from kubetrade.resources.collector import Collector

    try:
        text = path.read_text()
    except OSError as exc:
        raise SystemExit(f"kubetrade collect: cannot read {path}: {exc.strerror}") from exc
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict) or data.get("kind") != "Collector":
        raise SystemExit(f"kubetrade collect: {path} is not a Collector resource (kind: Collector)")
    return Collector.model_validate(data)


def _collect(args: argparse.Namespace) -> int:
    from kubetrade.collector import runtime
    from kubetrade.observability.logging import configure

    configure("collector", os.environ.get("KUBETRADE_LOG_LEVEL", "info"))
    resource = load_resource(args.config)
    opts = runtime.options_from_env(args.store, args.exchange_url)
    from kubetrade.observability.probes import ProbeServer

    # not ready until NATS is connected (runtime.run says what ready means once it is)
    probes = ProbeServer(lambda: ["nats: connecting"])

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if args.metrics_port:
            await probes.start(args.metrics_port)
        try:
            await runtime.run(resource, opts, stop, probes)
        finally:
            await probes.stop()

    asyncio.run(main())
    return 0
