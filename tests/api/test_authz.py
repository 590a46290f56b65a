"""Every route refuses a missing key, a revoked key and a key without the scope it needs.

The routes are taken from the application itself, so a route another area adds later is
covered without touching this file; a route that is reachable without a key must be on
the short public list below, or the test fails.
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from kubetrade.api import create_app, keys
from kubetrade.api.security import is_protected, operations, required_scopes
from tests.api.conftest import make_key, revoke_key, settings_for
from tests.support.server import serving

PUBLIC = {"/health", "/readyz", "/healthz", "/livez", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect",
          "/redoc"}
"""Probes, Prometheus and the API description: public by design, nothing else."""
RECEIVER_PREFIX = "/api/v1/alerts/receiver/"
"""Alertmanager's webhooks: no API key, the receiver token (tested below)."""

CONSOLE_PUBLIC = {"/console/login", "/console"}
"""The console's login form, and the redirect of /console to /console/; every other console route
needs a session opened with a key (tests/api/test_console_http.py), checked below."""


def _concrete(path: str) -> str:
    """A path with plausible values for its parameters (what they are does not matter: auth comes first)."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(uuid.uuid4()) if name.endswith("id") and "key" not in name else "abcdefabcdef"
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", value, path)


def _cases(app) -> list[tuple[str, str, frozenset[str]]]:
    """(method, path, scopes needed); no scopes: the route is public."""
    return [(method, path, required_scopes(route, method) if is_protected(route) else frozenset())
            for method, path, route in operations(app)]


def test_every_route_is_protected_or_deliberately_public(local_env) -> None:
    app = create_app(settings_for("postgresql://unused", None))
    cases = _cases(app)
    assert len(cases) >= 15  # the app's routes, not an empty list
    unprotected = {path for _, path, scopes in cases if not scopes and not path.startswith("/console")}
    receiver = {p for p in unprotected if p.startswith(RECEIVER_PREFIX) and _takes_the_receiver_token(app, p)}
    assert len(receiver) == 3
    unprotected -= receiver
    assert unprotected <= PUBLIC, f"routes reachable without an API key: {sorted(unprotected - PUBLIC)}"
    for _, path, scopes in cases:
        assert scopes <= set(keys.SCOPES)
        if path.startswith("/api/v1/admin"):
            assert scopes == {"admin"}


def _takes_the_receiver_token(app, path: str) -> bool:
    from kubetrade.api.routes.alertreceiver import alertmanager_token
    from kubetrade.api.security import _walk

    return any(dep.call is alertmanager_token for m, p, route in operations(app) if p == path
               for dep in _walk(route.dependant))


def test_alertmanager_webhooks_take_the_receiver_token_and_no_api_key(pg_dsn, local_env) -> None:
    admin = make_key(pg_dsn, list(keys.SCOPES), "admin")[1]
    body = {"version": "4", "groupKey": "g", "status": "firing", "receiver": "r",
            "alerts": [{"status": "firing", "labels": {"alertname": "X"}, "startsAt": "2026-01-01T00:00:00Z",
                        "fingerprint": "0123456789abcdef"}]}
    paths = ["/api/v1/alerts/receiver/record", "/api/v1/alerts/receiver/copy/slack", "/api/v1/alerts/receiver/sms"]
    with serving(create_app(settings_for(pg_dsn, None, alert_receiver_token="tok-" + uuid.uuid4().hex))) as url:
        for path in paths:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": admin},
                            {"Authorization": f"Bearer {admin}"}):
                got = httpx.post(url + path, json=body, headers=headers, timeout=30)
                assert got.status_code == 401, (path, headers.keys(), got.status_code, got.text)
                assert "tok-" not in got.text
    with serving(create_app(settings_for(pg_dsn, None, alert_receiver_token=""))) as url:  # none: retried later
        for path in paths:
            got = httpx.post(url + path, json=body, headers={"Authorization": "Bearer anything"}, timeout=30)
            assert got.status_code == 503 and got.headers["retry-after"] == "30"


def test_every_console_route_needs_a_session(pg_dsn, local_env) -> None:
    """The console's routes use a session cookie instead of the key header: without one, a page
    sends the browser to the login form, the live stream answers 401, and nothing else happens."""
    app = create_app(settings_for(pg_dsn, None))
    console = [(m, p) for m, p, _ in operations(app) if p.startswith("/console") and p not in CONSOLE_PUBLIC]
    assert len(console) >= 10
    with serving(app) as url:
        for method, path in console:
            for cookie in ({}, {"kt_session": "forged-session-token"}):
                with httpx.Client(base_url=url, timeout=30, follow_redirects=False, cookies=cookie) as client:
                    got = client.request(method, _concrete(path))
                if path == "/console/live":
                    assert got.status_code == 401, (method, path)
                else:
                    assert got.status_code == 303 and got.headers["location"] == "/console/login", \
                        (method, path, got.status_code, got.text[:200])


def test_every_route_refuses_missing_revoked_and_unscoped_keys(pg_dsn, local_env) -> None:
    app = create_app(settings_for(pg_dsn, None))
    cases = [c for c in _cases(app) if c[2]]
    revoked_id, revoked = make_key(pg_dsn, ["read", "trade", "admin"], "revoked")
    revoke_key(pg_dsn, revoked_id)
    without = {s: make_key(pg_dsn, [o for o in keys.SCOPES if o != s], f"no-{s}")[1] for s in keys.SCOPES}
    failures = []
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for method, path, scopes in cases:
            target = _concrete(path)
            for label, headers, expected in (
                ("missing", {}, 401),
                ("malformed", {"X-API-Key": "not-a-key"}, 401),
                ("revoked", {"X-API-Key": revoked}, 401),
                ("bearer revoked", {"Authorization": f"Bearer {revoked}"}, 401),
                *((f"without {s}", {"X-API-Key": without[s]}, 403) for s in sorted(scopes)),
            ):
                got = client.request(method, target, headers=headers)
                if got.status_code != expected:
                    failures.append(f"{method} {path} with {label} key: {got.status_code} {got.text[:120]}")
                elif expected == 401:
                    assert got.headers.get("www-authenticate") == "Bearer"
    assert not failures, "\n".join(failures)
    assert len(cases) >= 14


@pytest.mark.parametrize("scope", keys.SCOPES)
def test_a_key_with_the_scope_gets_past_the_gate(pg_dsn, local_env, scope) -> None:
    """The other side of the refusals: the right scope is not refused (the route may still say 404/422)."""
    app = create_app(settings_for(pg_dsn, None))
    key = make_key(pg_dsn, [scope], f"only-{scope}")[1]
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for method, path, scopes in _cases(app):
            if scopes == {scope}:
                got = client.request(method, _concrete(path), headers={"X-API-Key": key})
                assert got.status_code not in (401, 403), f"{method} {path}: {got.status_code} {got.text}"
