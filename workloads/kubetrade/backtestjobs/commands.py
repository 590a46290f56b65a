"""``kubetrade backtest-job <id>``: what a backtest Job's pod runs."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("backtest-job", help="run a backtest recorded by the API (a Job's command)")
    parser.add_argument("id", type=uuid.UUID, help="the backtest's id, as the API recorded it")
    parser.add_argument("--dsn", default=os.environ.get("KUBETRADE_DATABASE_URL"),
                        help="PostgreSQL DSN (default $KUBETRADE_DATABASE_URL)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if not args.dsn:
        print("error: no database; pass --dsn or set KUBETRADE_DATABASE_URL", file=sys.stderr)
        return 2
    import psycopg

    from kubetrade.backtestjobs.execute import execute

    async def main() -> str:
        async with await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as conn:
            return await execute(conn, args.id)

    status = asyncio.run(main())
    print(status)
    return 0 if status in ("succeeded", "skipped") else 1
