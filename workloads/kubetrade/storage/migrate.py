"""Apply the SQL migrations in ``migrations/`` in order, once each.

Migrations are plain SQL files named ``NNNN_description.sql``.  Each runs in its own
transaction and is recorded with its checksum in ``kubetrade_migrations``; a file that
changed after it was applied is an error, not something to re-run silently.  An
advisory lock keeps two processes (say, two API replicas starting together) from
migrating at once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x6B75_6265_7472  # "kubetr"


class MigrationError(RuntimeError):
    """A migration could not be applied, or an applied one was edited."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files must be named NNNN_description.sql")
        migrations.append(Migration(int(match.group(1)), path.name, path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration numbers in {folder}")
    return migrations


def apply(dsn: str, folder: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; returns the names applied now."""
    applied_now = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS kubetrade_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {
                row[0]: (row[1], row[2])
                for row in conn.execute("SELECT version, name, checksum FROM kubetrade_migrations")
            }
            for migration in discover(folder):
                if migration.version in done:
                    name, checksum = done[migration.version]
                    if checksum != migration.checksum:
                        raise MigrationError(
                            f"{migration.name} changed after it was applied (as {name}); "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                try:
                    with conn.transaction():
                        conn.execute(migration.sql.encode())
                        conn.execute(
                            "INSERT INTO kubetrade_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"{migration.name} failed: {exc}") from exc
                applied_now.append(migration.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
