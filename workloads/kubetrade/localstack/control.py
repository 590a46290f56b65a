"""The operator's bookkeeping, locally: resources into the local resource store, workload status
reports merged into them, and an API key for the person at the keyboard.

In a cluster the API server holds the resources and the operator's status feed writes the
runners' reports into ``.status``; under ``kubetrade up`` the same objects live in the
database (:class:`kubetrade.cluster.database.DatabaseStore`, what the API reads) and this
module does the feed's job, with the same validation (:func:`merge_fields` of the operator).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from kubetrade.resources import BY_KIND

log = logging.getLogger("kubetrade.localstack.control")


async def store_resources(dsn: str, docs: list[dict[str, Any]]) -> None:
    """Create each object in the local store (what ``kubectl apply`` would do)."""
    from psycopg_pool import AsyncConnectionPool

    from kubetrade.cluster import Conflict
    from kubetrade.cluster.database import DatabaseStore

    async with AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False) as pool:
        store = DatabaseStore(pool)
        for d in docs:
            with contextlib.suppress(Conflict):
                await store.create(BY_KIND[d["kind"]].plural, "default", d)


async def write_status(dsn: str, kind: str, name: str, fields: dict[str, Any], namespace: str = "default") -> None:
    """Merge status fields into a stored object (the status subresource: spec and generation untouched)."""
    plural = BY_KIND[kind].plural
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            "UPDATE kube_resources SET body = jsonb_set(body, '{status}', coalesce(body->'status', '{}'::jsonb) || %s),"
            " resource_version = nextval('kube_resource_versions') WHERE kind = %s AND namespace = %s AND name = %s",
            (Jsonb(fields), plural, namespace, name))


def report_fields(kind: str, status: dict[str, Any]) -> dict[str, Any] | None:
    """The part of a workload's report the feed accepts (validated like the operator does), or None."""
    from kubetrade.messaging.schemas import StatusReport

    try:
        from kubetrade_operator.statusfeed import merge_fields
    except ImportError:  # the operator package is not installed: validate against the status model only
        model = BY_KIND[kind].status_model
        try:
            return model.model_validate(status).model_dump(by_alias=True, exclude_unset=True, mode="json")
        except ValueError:
            return None
    try:
        return merge_fields(StatusReport(kind=kind, namespace="default", name="-", status=status, time=0), {})
    except ValueError as exc:
        log.warning("status report refused", extra={"kind": kind, "error": str(exc)})
        return None


async def local_api_key(dsn: str, state_dir: Path) -> Path:
    """A read+trade key for the local API, written once to ``state_dir/api-key`` (mode 0600), never printed."""
    from kubetrade.api import keys

    # the pepper lives in the state folder, not in this process only: `kubetrade api-keys create --dsn ...`
    # in another shell reads the same file, and its key works with this API
    if not os.environ.get("KUBETRADE_API_KEY_PEPPER"):
        pepper = keys.local_pepper(state_dir / "api-key-pepper", create=True)
        assert pepper is not None
        os.environ["KUBETRADE_API_KEY_PEPPER"] = pepper
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        _, key = await keys.create(conn, "kubetrade-up", ["read", "trade"], os.environ["KUBETRADE_API_KEY_PEPPER"])
    path = state_dir / "api-key"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(key + "\n")
    return path
