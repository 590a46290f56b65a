"""Rate limits per key and per address, shared by several API replicas through PostgreSQL."""

from __future__ import annotations

import httpx

from kubetrade.api import create_app
from kubetrade.api.ratelimit import chunk_for, granted
from tests.api.conftest import make_key, settings_for
from tests.support.server import serving


def test_leases_never_grant_past_the_limit() -> None:
    assert chunk_for(10) == 1 and chunk_for(1000) == 20 and chunk_for(1) == 1
    assert granted(used_after=20, chunk=20, limit=1000) == 20
    assert granted(used_after=1010, chunk=20, limit=1000) == 10  # the claim straddles the limit
    assert granted(used_after=1030, chunk=20, limit=1000) == 0
    # However claims interleave, the grants add up to the limit at most.
    limit, chunk, used, total = 95, chunk_for(95), 0, 0
    for _ in range(200):
        used += chunk
        total += granted(used, chunk, limit)
    assert total == limit


def _burst(urls: list[str], key: str, n: int) -> list[httpx.Response]:
    out = []
    for i in range(n):
        out.append(httpx.get(f"{urls[i % len(urls)]}/api/v1/alerts", headers={"X-API-Key": key}, timeout=30))
    return out


def test_per_key_limit_holds_across_two_replicas(pg_dsn, local_env) -> None:
    settings = settings_for(pg_dsn, None, rate_limit_per_key=10, rate_window_seconds=3600)
    _, key = make_key(pg_dsn, ["read"], "limited")
    with serving(create_app(settings)) as a, serving(create_app(settings)) as b:
        answers = _burst([a, b], key, 16)
        other = httpx.get(f"{a}/api/v1/alerts", headers={"X-API-Key": make_key(pg_dsn, ["read"])[1]})
    codes = [r.status_code for r in answers]
    assert codes.count(200) == 10 and codes.count(429) == 6, codes
    assert codes[:10] == [200] * 10  # one at a time: exactly the first ten pass, whichever replica served them
    refused = next(r for r in answers if r.status_code == 429)
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert "per key" in refused.json()["detail"]
    assert other.status_code == 200  # another key has its own budget


def test_a_key_can_carry_its_own_limit(pg_dsn, local_env) -> None:
    _, key = make_key(pg_dsn, ["read"], "tight", rate_limit=3)
    with serving(create_app(settings_for(pg_dsn, None, rate_window_seconds=3600))) as url:
        codes = [r.status_code for r in _burst([url], key, 5)]
    assert codes == [200, 200, 200, 429, 429]


def test_per_address_limit_counts_every_key_and_failed_attempts(own_db, local_env) -> None:
    settings = settings_for(own_db, None, rate_limit_per_address=6, rate_window_seconds=3600)
    keys_ = [make_key(own_db, ["read"])[1] for _ in range(2)]
    with serving(create_app(settings)) as a, serving(create_app(settings)) as b:
        codes = [httpx.get(f"{(a, b)[i % 2]}/api/v1/alerts", headers={"X-API-Key": keys_[i % 2]}).status_code
                 for i in range(4)]
        codes += [httpx.get(f"{a}/api/v1/alerts", headers={"X-API-Key": "guess"}).status_code for _ in range(4)]
        limited = httpx.get(f"{b}/api/v1/alerts", headers={"X-API-Key": keys_[0]})
        health = httpx.get(f"{b}/health")
    assert codes == [200] * 4 + [401, 401, 429, 429]
    assert limited.status_code == 429 and "per address" in limited.json()["detail"]
    assert int(limited.headers["retry-after"]) >= 1
    assert health.status_code == 200  # probes are not rate limited


def test_without_its_database_the_gate_refuses_quickly(local_env) -> None:
    """Fail closed: no database, no way to check a key or count a request, so 503 with Retry-After."""
    from kubetrade.localstack.servers import free_port

    settings = settings_for(f"postgresql://nobody:x@127.0.0.1:{free_port()}/none", None)
    with serving(create_app(settings)) as url:
        answer = httpx.get(f"{url}/api/v1/strategies", headers={"X-API-Key": "kt_abcdefabcdef_" + "A" * 43},
                           timeout=30)
        health = httpx.get(f"{url}/health", timeout=30)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert "temporarily unavailable" in answer.json()["detail"]
    assert health.status_code == 503  # and the probe says why
