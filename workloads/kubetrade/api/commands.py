"""``kubetrade api``: serve the HTTP API (one process, or several workers sharing the port)."""

from __future__ import annotations

import argparse
import os
from typing import Any

STOP_GRACE = 5
"""Seconds a stopping server waits for open requests: the console's event streams never end by
themselves, so without a bound a browser left open would hold a rollout or a Ctrl-C forever."""


def register(sub: Any) -> None:
    parser = sub.add_parser("api", help="serve the HTTP API")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error (default info)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes; rate limits and key revocations hold across them (PostgreSQL)")
    parser.add_argument("--forwarded-allow-ips", default=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
                        help="proxies (the ingress) trusted for X-Forwarded-For: the per-address rate limit "
                             "then counts the real client, not the proxy")
    parser.set_defaults(func=_serve)


def served_app() -> Any:
    """The app as a worker process serves it: JSON logs configured in that process first."""
    from kubetrade.api import create_app
    from kubetrade.observability.logging import configure

    configure("api", os.environ.get("KUBETRADE_LOG_LEVEL", "info"))
    return create_app()


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    os.environ["KUBETRADE_LOG_LEVEL"] = args.log_level
    uvicorn.run("kubetrade.api.commands:served_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_config=None, access_log=False, proxy_headers=True,
                forwarded_allow_ips=args.forwarded_allow_ips, timeout_graceful_shutdown=STOP_GRACE)
    return 0
