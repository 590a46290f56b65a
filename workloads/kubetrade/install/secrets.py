"""The Secrets an install needs, created in the cluster when missing and never touched again.

``helm template`` with ``lookup`` + ``randAlphaNum`` gives a new password on every render
where there is no cluster to look in - which is how Argo CD and Flux render - so the database
password (and the webhook certificate, and every NATS password) changed on each sync.  Here
the chart renders no secret at all: its install Job creates each missing Secret with random
contents, and an existing one - made by an earlier install, or by you (the GitOps way: sealed,
external or SOPS secrets under the same names) - is kept as it is.  The Job may only *create*
Secrets (RBAC), which cannot overwrite: it never reads one.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubetrade.cluster import api_client
from kubetrade.install.pki import webhook_certificate

LABELS = {"app.kubernetes.io/part-of": "kubetrade", "app.kubernetes.io/managed-by": "kubetrade-install"}


@dataclass(frozen=True)
class Wanted:
    name: str
    make: Callable[[], dict[str, str]]
    """The contents, made only when the Secret is created."""
    why: str
    type: str = "Opaque"


@dataclass(frozen=True)
class Database:
    user: str
    name: str
    host: str
    port: int = 5432


def _password() -> str:
    return secrets.token_urlsafe(24)


def plan(
    prefix: str,
    *,
    nats_roles: list[str],
    database: Database | None,
    database_secret: str | None = None,
    webhook_hosts: list[str] | None,
    webhook_days: int = 3650,
    pepper_secret: str | None = None,
    order_signing: bool = True,
) -> list[Wanted]:
    """The Secrets of a release named ``prefix`` (the chart's fullname), in the order they are made."""
    out: list[Wanted] = []
    for role in nats_roles:
        out.append(Wanted(f"{prefix}-nats-{role}", lambda: {"password": _password()},
                          f"the NATS password of the {role} role (key password)"))
    if order_signing:
        out.append(Wanted(f"{prefix}-order-signing", lambda: {"key": secrets.token_hex(32)},
                          "the key the risk manager signs orders with and the executors check (key key)"))
    if pepper_secret:
        out.append(Wanted(pepper_secret, lambda: {"pepper": secrets.token_hex(32)},
                          "the API key pepper (key pepper): without it the stored key hashes cannot be checked"))
    if database is not None:
        db = database

        def dsn() -> dict[str, str]:
            password = _password()
            return {"username": db.user, "password": password,
                    "url": f"postgresql://{db.user}:{password}@{db.host}:{db.port}/{db.name}"}

        out.append(Wanted(database_secret or f"{prefix}-db", dsn,
                          "the bundled database's user, password and DSN (keys username, password, url)"))
    if webhook_hosts:
        hosts = list(webhook_hosts)

        def cert() -> dict[str, str]:

            return webhook_certificate(hosts, webhook_days)

        out.append(Wanted(f"{prefix}-webhook-cert", cert, "the admission webhook's certificate and its CA",
                          type="kubernetes.io/tls"))
    return out


def core_api() -> Any:
    from kubernetes import client

    return client.CoreV1Api(api_client())


def create_if_missing(namespace: str, name: str, data: Callable[[], dict[str, str]], type_: str = "Opaque",
                      core: Any = None) -> bool:
    """Create the Secret; True if it was created, False if one of that name exists (left as it is)."""
    from kubernetes.client.exceptions import ApiException

    body = {"apiVersion": "v1", "kind": "Secret", "type": type_,
            "metadata": {"name": name, "namespace": namespace, "labels": LABELS}, "stringData": data()}
    try:
        (core or core_api()).create_namespaced_secret(namespace, body)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True


def ensure(namespace: str, wanted: list[Wanted], core: Any = None) -> list[tuple[str, str]]:
    """Create every missing Secret of the plan; (name, "created" or "kept") for each."""
    core = core or core_api()
    return [(w.name, "created" if create_if_missing(namespace, w.name, w.make, w.type, core) else "kept")
            for w in wanted]
