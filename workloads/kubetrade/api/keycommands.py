"""``kubetrade api-keys create|revoke|list``: manage API keys from a shell (the first admin key too).

Talks to the database directly (``KUBETRADE_DATABASE_URL``) with the same functions as the
admin endpoints, and needs the same pepper as the API: ``KUBETRADE_API_KEY_PEPPER``, or where
that is unset the file ``kubetrade up`` keeps it in (``--pepper-file``, default
``.kubetrade/api-key-pepper``), so that a key made against ``kubetrade up``'s database works.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from kubetrade.api import keys


def register(sub: Any) -> None:
    parser = sub.add_parser("api-keys", help="create, revoke and list API keys")
    parser.add_argument("--dsn", default=os.environ.get("KUBETRADE_DATABASE_URL"),
                        help="PostgreSQL DSN (default $KUBETRADE_DATABASE_URL)")
    parser.add_argument("--pepper-file", default=keys.LOCAL_PEPPER_FILE,
                        help="the pepper, when KUBETRADE_API_KEY_PEPPER is unset (kubetrade up keeps it there)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key and print it once")
    create.add_argument("name", help="what the key is for, e.g. grafana or ci")
    create.add_argument("--scope", action="append", choices=keys.SCOPES, required=True, dest="scopes",
                        help="repeatable: read, trade, admin")
    create.add_argument("--rate-limit", type=int, help="requests per rate window for this key")
    create.set_defaults(func=_create)
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", help="the key's public id (kubetrade api-keys list)")
    revoke.set_defaults(func=_revoke)
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--active", action="store_true", help="leave out revoked keys")
    listing.set_defaults(func=_list)


def _run(args: argparse.Namespace, work: Any) -> int:
    if not args.dsn:
        print("error: no database; pass --dsn or set KUBETRADE_DATABASE_URL", file=sys.stderr)
        return 2
    import psycopg

    async def main() -> int:
        async with await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as conn:
            code: int = await work(conn)
            return code

    return asyncio.run(main())


def _pepper(args: argparse.Namespace) -> str:
    pepper = os.environ.get("KUBETRADE_API_KEY_PEPPER", "")
    if pepper:
        return pepper
    found = keys.local_pepper(args.pepper_file)
    if found:
        print(f"pepper from {args.pepper_file} (kubetrade up's)", file=sys.stderr)
        return found
    print("warning: no pepper (KUBETRADE_API_KEY_PEPPER, or kubetrade up's file): the key works only with an "
          "API that has none", file=sys.stderr)
    return ""


def _describe(k: keys.StoredKey) -> dict[str, Any]:
    return {"id": k.id, "name": k.name, "scopes": list(k.scopes), "rateLimit": k.rate_limit,
            "createdAt": k.created_at.isoformat(), "revokedAt": k.revoked_at.isoformat() if k.revoked_at else None}


def _create(args: argparse.Namespace) -> int:
    async def work(conn: Any) -> int:
        try:
            stored, key = await keys.create(conn, args.name, args.scopes, _pepper(args), args.rate_limit)
        except keys.KeyRequestError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps({**_describe(stored), "key": key}))
        print("store the key now: it is not shown again", file=sys.stderr)
        return 0

    return _run(args, work)


def _revoke(args: argparse.Namespace) -> int:
    async def work(conn: Any) -> int:
        stored = await keys.revoke(conn, args.key_id)
        if stored is None:
            print(f"error: no API key {args.key_id}", file=sys.stderr)
            return 1
        print(json.dumps(_describe(stored)))
        return 0

    return _run(args, work)


def _list(args: argparse.Namespace) -> int:
    async def work(conn: Any) -> int:
        after = None
        while page := await keys.listing(conn, include_revoked=not args.active, limit=500, after=after):
            for k in page:
                print(json.dumps(_describe(k)))
            after = page[-1].id
        return 0

    return _run(args, work)
