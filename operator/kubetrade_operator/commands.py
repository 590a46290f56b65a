"""``kubetrade operator``: the control plane, from the same image and CLI as every workload."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("operator", help="run the kopf operator (control plane)")
    from kubetrade_operator.arguments import add_arguments

    add_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from kubetrade.observability.logging import configure

    configure("operator", args.log_level)
    from kubetrade_operator.main import run

    return asyncio.run(run(args))
