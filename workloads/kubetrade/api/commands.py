"""``kubetrade api``: serve the HTTP API."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("api", help="serve the HTTP API")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from kubetrade.api import create_app
    from kubetrade.observability.logging import configure

    configure("api", args.log_level)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_config=None, access_log=False)
    return 0
