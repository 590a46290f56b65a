"""The model store: trained models in PostgreSQL (table ``models``, migration 0700), by name and digest.

Why the database and not a volume: every runner and the training Job already reach PostgreSQL with the
credentials they have (``KUBETRADE_DATABASE_URL``), so a model trained by a Job on one node is readable by
runners on every other without a ReadWriteMany volume (which many clusters lack); a model is small (the
LSTM-Transformer is ~20 KB, a policy ~30 KB), and its file, digest, metrics and training window are
written in one transaction, so a row is either whole or absent.  A Strategy names a model as
``registry://NAME`` with its ``sha256``: the row with that name and digest, nothing else (a newer model
under the same name does not replace what a running Strategy trades with).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from kubetrade.prediction.model import REGISTRY_SCHEME, ModelError
from kubetrade.resources.strategy import ModelReference


@dataclass(frozen=True)
class StoredModel:
    name: str
    sha256: str
    kind: str
    features: str
    train_from: datetime
    train_to: datetime
    metrics: dict[str, Any]
    config: dict[str, Any]
    created_at: datetime | None = None

    @property
    def reference(self) -> ModelReference:
        return ModelReference(uri=f"{REGISTRY_SCHEME}{self.name}", sha256=self.sha256, features=self.features)


def store(dsn: str, name: str, blob: bytes, *, kind: str, features: str, train_from: datetime, train_to: datetime,
          metrics: dict[str, Any], config: dict[str, Any]) -> StoredModel:
    """Write a model (idempotent: the same name and bytes again leave the first row)."""
    digest = hashlib.sha256(blob).hexdigest()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO models (name, sha256, kind, features, onnx, metrics, config, train_from, train_to) "
            "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s) ON CONFLICT (name, sha256) DO NOTHING",
            (name, digest, kind, features, blob, json.dumps(metrics), json.dumps(config), train_from, train_to))
    return StoredModel(name, digest, kind, features, train_from, train_to, metrics, config)


def fetch(dsn: str, ref: ModelReference) -> bytes:
    """The ONNX bytes of ``registry://NAME`` with the reference's digest, or ModelError saying what is there."""
    name = ref.uri.removeprefix(REGISTRY_SCHEME)
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("SELECT onnx FROM models WHERE name = %s AND sha256 = %s",
                               (name, ref.sha256)).fetchone()
            if row is None:
                have = [r[0] for r in conn.execute(
                    "SELECT sha256 FROM models WHERE name = %s ORDER BY created_at DESC LIMIT 3", (name,))]
    except psycopg.Error as exc:
        raise ModelError(f"{ref.uri}: the model store cannot be read: {str(exc).strip()[:200]}") from None
    if row is None:
        known = f"it has {name} with sha256 {', '.join(h[:12] + '...' for h in have)}" if have else \
            f"it has no model named {name}"
        raise ModelError(f"{ref.uri} with sha256 {ref.sha256} is not in the model store ({known})")
    return bytes(row[0])


def describe(dsn: str, name: str | None = None, limit: int = 50) -> list[StoredModel]:
    """The stored models (newest first), without their bytes."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT name, sha256, kind, features, train_from, train_to, metrics, config, created_at FROM models "
            "WHERE %(name)s::text IS NULL OR name = %(name)s ORDER BY created_at DESC LIMIT %(limit)s",
            {"name": name, "limit": limit}).fetchall()
    return [StoredModel(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows]
