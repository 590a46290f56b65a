"""Custom resources in PostgreSQL, for running without Kubernetes (``kubetrade up``).

Implements :class:`kubetrade.cluster.seam.ResourceStore` with the API server's semantics that
the API relies on: ``uid``, ``creationTimestamp``, a ``resourceVersion`` that changes on
every write and must match when a replacement names one, a ``generation`` bumped only by
changes of ``spec``, and a ``status`` that a replacement of the object does not touch (as
with the status subresource).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from kubetrade.cluster.seam import Conflict, NotFound
from kubetrade.resources import API_VERSION

_COLUMNS = "uid, generation, resource_version, body, created_at"


Objects = list[dict[str, Any]]
"""A listing of resources, as the API server returns them."""


def _object(row: tuple[Any, ...]) -> dict[str, Any]:
    uid, generation, version, body, created = row
    body = dict(body)
    meta = dict(body.get("metadata") or {})
    meta.update(uid=str(uid), generation=generation, resourceVersion=str(version),
                creationTimestamp=created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    body["metadata"] = meta
    return body


def _clean(body: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
    meta = {k: v for k, v in (body.get("metadata") or {}).items()
            if k in ("labels", "annotations", "finalizers")}
    meta.update(name=name, namespace=namespace)
    return {**body, "apiVersion": body.get("apiVersion", API_VERSION), "metadata": meta}


class DatabaseStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM kube_resources WHERE kind = %s AND namespace = %s AND name = %s",  # noqa: S608
                (plural, namespace, name),
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f'{plural}/{name}: {plural} "{name}" not found in namespace {namespace}')
        return _object(row)

    async def list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM kube_resources WHERE kind = %s AND namespace = %s ORDER BY name",  # noqa: S608
                (plural, namespace),
            )
            return [_object(r) for r in await cur.fetchall()]

    async def list_all(self, plural: str) -> Objects:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM kube_resources WHERE kind = %s ORDER BY namespace, name",  # noqa: S608
                (plural,),
            )
            return [_object(r) for r in await cur.fetchall()]

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = str((body.get("metadata") or {}).get("name", ""))
        clean = _clean(body, namespace, name)
        clean.pop("status", None)
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"""INSERT INTO kube_resources (kind, namespace, name, uid, body, created_at)
                    VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING {_COLUMNS}""",  # noqa: S608
                (plural, namespace, name, uuid.uuid4(), Jsonb(clean), datetime.now(UTC)),
            )
            row = await cur.fetchone()
        if row is None:
            raise Conflict(f'{plural}/{name}: {plural} "{name}" already exists in namespace {namespace}')
        return _object(row)

    async def replace(self, plural: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT resource_version, body FROM kube_resources WHERE kind = %s AND namespace = %s AND name = %s "
                "FOR UPDATE",
                (plural, namespace, name),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f'{plural}/{name}: {plural} "{name}" not found in namespace {namespace}')
            version, old = row
            if wanted is not None and str(wanted) != str(version):
                raise Conflict(f"{plural}/{name}: the object has been modified (resourceVersion {version}, "
                               f"not {wanted}); read it again and apply your changes to the latest version")
            clean = _clean(body, namespace, name)
            clean.pop("status", None)
            if "status" in old:
                clean["status"] = old["status"]
            bump = 1 if clean.get("spec") != old.get("spec") else 0
            cur = await conn.execute(
                f"""UPDATE kube_resources SET body = %s, generation = generation + %s,
                           resource_version = nextval('kube_resource_versions')
                     WHERE kind = %s AND namespace = %s AND name = %s RETURNING {_COLUMNS}""",  # noqa: S608
                (Jsonb(clean), bump, plural, namespace, name),
            )
            updated = await cur.fetchone()
        assert updated is not None
        return _object(updated)

    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Merge fields into the object's status (JSON merge: a None value removes the field); the
        resourceVersion moves, spec and generation do not - the status subresource's semantics."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT body FROM kube_resources WHERE kind = %s AND namespace = %s AND name = %s FOR UPDATE",
                (plural, namespace, name),
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f'{plural}/{name}: {plural} "{name}" not found in namespace {namespace}')
            body = dict(row[0])
            merged = {**(body.get("status") or {}), **status}
            body["status"] = {k: v for k, v in merged.items() if v is not None}
            cur = await conn.execute(
                f"""UPDATE kube_resources SET body = %s, resource_version = nextval('kube_resource_versions')
                     WHERE kind = %s AND namespace = %s AND name = %s RETURNING {_COLUMNS}""",  # noqa: S608
                (Jsonb(body), plural, namespace, name),
            )
            updated = await cur.fetchone()
        assert updated is not None
        return _object(updated)

    async def delete(self, plural: str, namespace: str, name: str) -> None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM kube_resources WHERE kind = %s AND namespace = %s AND name = %s",
                (plural, namespace, name),
            )
        if cur.rowcount == 0:
            raise NotFound(f'{plural}/{name}: {plural} "{name}" not found in namespace {namespace}')
