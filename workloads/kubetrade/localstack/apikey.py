"""An API key for the person at the keyboard of ``kubetrade up``, written once to the state folder."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import psycopg

from kubetrade.api import keys


async def local_api_key(dsn: str, state_dir: Path) -> Path:
    """A read+trade key for the local API, written once to ``state_dir/api-key`` (mode 0600), never printed."""
    os.environ.setdefault("KUBETRADE_API_KEY_PEPPER", secrets.token_hex(16))
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        _, key = await keys.create(conn, "kubetrade-up", ["read", "trade"], os.environ["KUBETRADE_API_KEY_PEPPER"])
    path = state_dir / "api-key"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(key + "\n")
    return path
