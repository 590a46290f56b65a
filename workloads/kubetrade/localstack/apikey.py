"""An API key for the person at the keyboard of ``kubetrade up``, written once to the state folder."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

from kubetrade.api import keys


async def local_api_key(dsn: str, state_dir: Path) -> Path:
    """A read+trade key for the local API, written once to ``state_dir/api-key`` (mode 0600), never printed."""
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
