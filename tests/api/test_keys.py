"""API keys: made by the CLI or the admin endpoint, shown once, stored as a peppered hash,
revoked everywhere at once, and failed attempts logged without the key."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

import httpx
import psycopg

from kubetrade.api import create_app, keys
from tests.api.conftest import PEPPER, settings_for
from tests.support.server import serving


def _cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBETRADE_DATABASE_URL": dsn, "KUBETRADE_API_KEY_PEPPER": PEPPER}
    return subprocess.run([sys.executable, "-m", "kubetrade.cli", "api-keys", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_hashing_is_keyed_and_keys_are_well_formed() -> None:
    key_id, key = keys.generate()
    assert keys.split(key) == key_id
    assert keys.split(key + "x") is None and keys.split("kt_short_abc") is None
    assert keys.matches(key, keys.digest(key, "pepper-a"), "pepper-a")
    assert not keys.matches(key, keys.digest(key, "pepper-a"), "pepper-b")  # the database alone cannot verify
    assert len({keys.generate()[1] for _ in range(100)}) == 100


def test_cli_creates_lists_and_revokes_and_the_api_follows(pg_dsn, local_env) -> None:
    created = _cli(pg_dsn, "create", "grafana", "--scope", "read")
    assert created.returncode == 0, created.stderr
    record = json.loads(created.stdout)
    key = record["key"]
    assert record["scopes"] == ["read"] and "not shown again" in created.stderr

    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT row_to_json(k)::text, hash FROM api_keys k WHERE id = %s",
                           (record["id"],)).fetchone()
    assert key not in row[0] and key.split("_", 2)[2] not in row[0]  # only the hash is stored
    assert bytes(row[1]) == keys.digest(key, PEPPER)

    listed = _cli(pg_dsn, "list")
    assert listed.returncode == 0 and record["id"] in listed.stdout and key not in listed.stdout

    with serving(create_app(settings_for(pg_dsn, None))) as url:
        ok = httpx.get(f"{url}/api/v1/alerts", headers={"X-API-Key": key})
        assert ok.status_code == 200  # the key is now cached by this API process
        revoked = _cli(pg_dsn, "revoke", record["id"])
        assert revoked.returncode == 0, revoked.stderr
        # The CLI told every replica through NOTIFY; the cached key is refused without waiting for the cache.
        deadline = time.monotonic() + 10
        while (status := httpx.get(f"{url}/api/v1/alerts", headers={"X-API-Key": key}).status_code) == 200:
            assert time.monotonic() < deadline, "revoked key still accepted"
            time.sleep(0.05)
        assert status == 401
    assert _cli(pg_dsn, "revoke", "nosuchkey123").returncode == 1
    assert _cli(pg_dsn, "create", "x", "--scope", "root").returncode != 0


def test_admin_endpoint_shows_a_key_once_and_revokes_it(api) -> None:
    with httpx.Client(base_url=api.url, headers=api.headers(), timeout=30) as client:
        made = client.post("/api/v1/admin/api-keys", json={"name": "ci", "scopes": ["trade", "read"],
                                                            "rateLimit": 50})
        assert made.status_code == 201
        body = made.json()
        assert body["scopes"] == ["read", "trade"] and body["rateLimit"] == 50
        shown = client.get(f"/api/v1/admin/api-keys/{body['id']}").json()
        assert "key" not in shown and shown["name"] == "ci"
        page = client.get("/api/v1/admin/api-keys", params={"limit": 1}).json()
        assert len(page["items"]) == 1 and page["next"]
        assert all("key" not in k for k in client.get("/api/v1/admin/api-keys").json()["items"])

        assert httpx.get(f"{api.url}/api/v1/strategies", headers={"X-API-Key": body["key"]}).status_code == 200
        gone = client.delete(f"/api/v1/admin/api-keys/{body['id']}")
        assert gone.status_code == 200 and gone.json()["revokedAt"]
        refused = httpx.get(f"{api.url}/api/v1/strategies", headers={"X-API-Key": body["key"]})
        assert refused.status_code == 401 and refused.json()["detail"] == "this API key has been revoked"

        for bad in ({"name": "", "scopes": ["read"]}, {"name": "x", "scopes": []}, {"name": "x", "scopes": ["root"]},
                    {"name": "x", "scopes": ["read"], "rateLimit": 0}, {"name": "x", "scopes": ["read"], "extra": 1}):
            assert client.post("/api/v1/admin/api-keys", json=bad).status_code == 422, bad
        assert client.delete("/api/v1/admin/api-keys/nosuchkey123").status_code == 404
        assert client.get("/api/v1/admin/api-keys/NOT-AN-ID").status_code == 422


def test_failed_attempts_are_logged_without_the_key(api, caplog) -> None:
    _, key = keys.generate()  # well-formed, never stored
    wrong_secret = api.admin[:-4] + "AAAA"
    with caplog.at_level(logging.INFO):
        for headers in ({"X-API-Key": key}, {"X-API-Key": wrong_secret}, {"Authorization": f"Bearer {key}"}, {}):
            assert httpx.get(f"{api.url}/api/v1/strategies", headers=headers).status_code == 401
    refused = [r for r in caplog.records if r.getMessage() == "request refused"]
    assert len(refused) >= 4
    assert {r.reason for r in refused} >= {"unknown", "missing"}
    assert {r.key_id for r in refused} >= {keys.split(key), keys.split(api.admin)}  # the public id, for audit
    for record in caplog.records:
        text = json.dumps(record.__dict__, default=str)
        for secret in (key, wrong_secret, key.split("_", 2)[2], wrong_secret.split("_", 2)[2]):
            assert secret not in text
    metrics = httpx.get(f"{api.url}/metrics").text
    assert 'kubetrade_api_auth_failures_total{reason="unknown"}' in metrics
    assert key not in metrics and wrong_secret not in metrics
