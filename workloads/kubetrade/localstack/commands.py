"""``kubetrade up``: the local default."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("up", help="run the whole platform locally (embedded NATS and PostgreSQL)")
    parser.add_argument(
        "-f", "--resources", type=Path, action="append",
        help="resource YAML files or folders (default: examples/)",
    )
    parser.add_argument("--state-dir", type=Path, default=Path(".kubetrade"), help="where data is kept")
    parser.add_argument("--api-port", type=int, default=8000)
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.set_defaults(func=_up)


def _up(args: argparse.Namespace) -> int:
    from kubetrade.localstack.up import UpOptions, run
    from kubetrade.observability.logging import configure

    configure("local", "WARNING")
    return run(
        UpOptions(
            resources=args.resources or [Path("examples")],
            state_dir=args.state_dir.resolve(),
            api_port=args.api_port,
            duration=args.duration,
        )
    )
