"""``kubetrade install-secrets`` and ``kubetrade install-admin-key``: the chart's install Jobs."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("install-secrets", help="create the Secrets an install needs that do not exist yet (a Job)")
    p.add_argument("--namespace", required=True, help="the release's namespace, where the Secrets are made")
    p.add_argument("--prefix", required=True, help="the release's name prefix (the chart's fullname)")
    p.add_argument("--nats-role", action="append", default=[], help="a NATS role to make a password for")
    p.add_argument("--database-user", help="the bundled database's user (makes <prefix>-db)")
    p.add_argument("--database-name", default="kubetrade", help="the bundled database's name")
    p.add_argument("--database-host", help="the bundled database's host name")
    p.add_argument("--database-secret", help="name of the bundled database's Secret (default <prefix>-db)")
    p.add_argument("--webhook-host", action="append", default=[], help="a DNS name of the admission webhook")
    p.add_argument("--webhook-days", type=int, default=3650, help="validity of the webhook certificate, in days")
    p.add_argument("--pepper-secret", help="name of the API key pepper's Secret to make")
    p.add_argument("--no-order-signing", action="store_true", help="make no order signing key")
    p.set_defaults(func=_secrets)

    a = sub.add_parser("install-admin-key", help="create the first admin API key into a Secret, once (a Job)")
    a.add_argument("--namespace", required=True, help="namespace of the Secret")
    a.add_argument("--secret", required=True, help="the Secret the key is written to (keys id, key)")
    a.add_argument("--database-url", default=os.environ.get("KUBETRADE_DATABASE_URL"),
                   help="PostgreSQL DSN (KUBETRADE_DATABASE_URL)")
    a.set_defaults(func=_admin_key)

    n = sub.add_parser("nats-authorization",
                       help="print the nats-server authorization block of kubetrade's roles (for an external NATS)")
    n.add_argument("--local", action="store_true", help="the kubetrade up variant (the API writes risk policies)")
    n.set_defaults(func=_nats_authorization)


def _nats_authorization(args: argparse.Namespace) -> int:
    """The users and permissions; each password is a variable the server reads from its environment."""
    from kubetrade.messaging import auth

    print(auth.server_authorization({r: f"${auth.password_variable(r)}" for r in auth.ROLES}, local=args.local),
          end="")
    return 0


def _secrets(args: argparse.Namespace) -> int:
    from kubetrade.install.secrets import Database, ensure, plan

    database = None
    if args.database_user:
        if not args.database_host:
            print("--database-user needs --database-host", file=sys.stderr)
            return 2
        database = Database(args.database_user, args.database_name, args.database_host)
    wanted = plan(args.prefix, nats_roles=args.nats_role, database=database, database_secret=args.database_secret,
                  webhook_hosts=args.webhook_host or None, webhook_days=args.webhook_days,
                  pepper_secret=args.pepper_secret, order_signing=not args.no_order_signing)
    for (name, outcome), w in zip(ensure(args.namespace, wanted), wanted, strict=True):
        print(f"{outcome:8s} Secret {args.namespace}/{name}: {w.why}")
    return 0


def _admin_key(args: argparse.Namespace) -> int:
    """The first key with every scope, made only while its Secret does not exist.

    Its value goes into the Secret and nowhere else (not the Job's log): ``kubectl get secret
    <name> -o jsonpath='{.data.key}' | base64 -d``.  Delete the Secret and re-run the Job (or
    ``helm upgrade``) for a new one; revoke the old one with ``kubetrade api-keys revoke``.
    """
    from kubernetes.client.exceptions import ApiException

    from kubetrade.api import keys
    from kubetrade.install.secrets import core_api, create_if_missing
    from kubetrade.storage import migrate

    if not args.database_url:
        print("no database: set KUBETRADE_DATABASE_URL", file=sys.stderr)
        return 2
    pepper = os.environ.get("KUBETRADE_API_KEY_PEPPER", "")
    if not pepper:
        print("KUBETRADE_API_KEY_PEPPER is not set: the key could not be checked by the API", file=sys.stderr)
        return 2
    core = core_api()
    try:
        core.read_namespaced_secret(args.secret, args.namespace)
        print(f"kept     Secret {args.namespace}/{args.secret}: an admin key was made before")
        return 0
    except ApiException as exc:
        if exc.status != 404:
            raise
    migrate.apply(args.database_url)

    async def make() -> tuple[str, str]:
        import psycopg

        async with await psycopg.AsyncConnection.connect(args.database_url, autocommit=True) as conn:
            stored, key = await keys.create(conn, "admin (install)", ["read", "trade", "admin"], pepper)
            return stored.id, key

    key_id, key = asyncio.run(make())
    if not create_if_missing(args.namespace, args.secret, lambda: {"id": key_id, "key": key}, core=core):
        # another run made the Secret meanwhile: this key is nowhere to be found, so it must not work
        async def revoke() -> None:
            import psycopg

            async with await psycopg.AsyncConnection.connect(args.database_url, autocommit=True) as conn:
                await keys.revoke(conn, key_id)

        asyncio.run(revoke())
        print(f"kept     Secret {args.namespace}/{args.secret}: made by another run; key {key_id} revoked")
        return 0
    print(f"created  Secret {args.namespace}/{args.secret}: admin API key {key_id} (keys id, key)")
    return 0
