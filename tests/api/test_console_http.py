"""The console and /docs over plain HTTP: login by key into an HTTP-only session cookie, CSRF on
every state-changing form, scopes of the API route each control stands for, revocation ending a
session, and every asset served from the API itself (the browser tests are tests/console)."""

from __future__ import annotations

import re

import httpx
import psycopg
import pytest

from tests.api.conftest import make_key, revoke_key

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)


def _login(url: str, key: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30, follow_redirects=False)
    form = client.get("/console/login")
    assert form.status_code == 200
    token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
    done = client.post("/console/login", data={"login_token": token, "api_key": key})
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/console/"
    return client


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_docs_page_loads_nothing_from_another_host(api) -> None:
    page = httpx.get(f"{api.url}/docs")
    assert page.status_code == 200
    assert not EXTERNAL.search(page.text), page.text
    for asset in re.findall(r"""(?:src|href)=["'](/static/[^"']+)""", page.text):
        got = httpx.get(f"{api.url}{asset}")
        assert got.status_code == 200 and len(got.content) > 500, asset
    assert "validatorUrl" in page.text and '"validatorUrl": null' in page.text
    assert httpx.get(f"{api.url}/redoc").status_code == 404  # it would load ReDoc from a CDN
    assert httpx.get(f"{api.url}/openapi.json").json()["paths"]


def test_login_session_cookie_csrf_and_logout(api) -> None:
    key_id, key = make_key(api.dsn, ["read", "trade"], "trader")
    anonymous = httpx.get(f"{api.url}/console/", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/console/login"

    # A wrong key: the login page again with the API's refusal, and no session.
    client = httpx.Client(base_url=api.url, timeout=30)
    form = client.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
    wrong = client.post("/console/login", data={"login_token": token, "api_key": "kt_aaaaaaaaaaaa_" + "x" * 43})
    assert wrong.status_code == 401 and "invalid API key" in wrong.text and "kt_session" not in wrong.cookies
    # A login without the login form's token is refused (login CSRF).
    assert client.post("/console/login", data={"api_key": key}).status_code == 403

    client = _login(api.url, key)
    cookie = next(c for c in client.cookies.jar if c.name == "kt_session")
    assert cookie.path == "/console" and cookie.has_nonstandard_attr("HttpOnly")
    assert key not in cookie.value and key_id not in cookie.value
    page = client.get("/console/")
    assert page.status_code == 200 and "Dashboard" in page.text
    assert key not in page.text  # the key is never shown back
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert not EXTERNAL.search(page.text.replace('href="https://www.tradingview.com/"', ""))

    # The stored session names the key by its id and keeps only a hash of the token.
    with psycopg.connect(api.dsn) as conn:
        rows = conn.execute("SELECT key_id, token_hash FROM console_sessions WHERE key_id = %s", (key_id,)).fetchall()
    assert len(rows) == 1 and bytes(rows[0][1]) != cookie.value.encode()

    # A state-changing form without the session's CSRF token is refused, and changes nothing.
    made = client.post("/console/alerts", data={"name": "x", "metric": "price", "target": "binance:BTC/USDT",
                                                "operator": ">", "threshold": "1", "enabled": "on"})
    assert made.status_code == 403 and "CSRF" in made.text
    with psycopg.connect(api.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM alert_rules WHERE name = 'x'").fetchone()[0] == 0

    logout = client.post("/console/logout", data={"csrf": _csrf(page.text)})
    assert logout.status_code == 303
    client.cookies.set("kt_session", cookie.value, path="/console")  # a copied cookie is dead after logout
    assert client.get("/console/").status_code == 303


def test_read_only_key_sees_and_uses_no_write_control(api) -> None:
    _, key = make_key(api.dsn, ["read"], "viewer")
    client = _login(api.url, key)
    csrf = _csrf(client.get("/console/").text)
    for path in ("/console/alerts", "/console/datasources", "/console/strategies"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert 'class="primary write"' not in page.text and "data-action=" not in page.text, path
    refused = client.post("/console/alerts", data={"csrf": csrf, "name": "ro", "metric": "price",
                                                   "target": "binance:BTC/USDT", "operator": ">", "threshold": "1"})
    assert refused.status_code == 403 and "lacks" in refused.text
    refused = client.post("/console/datasources", data={"csrf": csrf, "name": "ro", "source": "replay",
                                                        "provider": "bundled", "symbols": "BTC/USDT"})
    assert refused.status_code == 403
    with psycopg.connect(api.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM alert_rules WHERE name = 'ro'").fetchone()[0] == 0


def test_revoking_the_key_ends_its_sessions(api) -> None:
    key_id, key = make_key(api.dsn, ["read"], "short-lived")
    client = _login(api.url, key)
    assert client.get("/console/").status_code == 200
    revoke_key(api.dsn, key_id)
    import time

    deadline = time.monotonic() + 10  # the NOTIFY reaches the API's key cache
    while client.get("/console/").status_code == 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert client.get("/console/").headers["location"] == "/console/login"
    assert client.get("/console/live").status_code == 401


@pytest.mark.parametrize("field, value, words", [
    ("threshold", "NaN", "finite number"),  # the models refuse NaN before the rule's own check
    ("target", "BTC/USDT", "must be exchange:BASE/QUOTE"),
    ("cooldownSeconds", "-5", "greater than or equal to 0"),
])
def test_alert_form_shows_the_models_error_next_to_the_field(api, field, value, words) -> None:
    _, key = make_key(api.dsn, ["read", "trade"], "trader")
    client = _login(api.url, key)
    csrf = _csrf(client.get("/console/alerts").text)
    form = {"csrf": csrf, "name": f"bad-{field}", "metric": "price", "target": "binance:BTC/USDT", "operator": ">",
            "threshold": "1", "cooldownSeconds": "60", "enabled": "on", field: value}
    got = client.post("/console/alerts", data=form, headers={"HX-Request": "true"})
    assert got.status_code == 422
    error = re.search(rf'<p class="error field-error" data-field="{field}"[^>]*>([^<]+)</p>', got.text)
    assert error and words in error.group(1), got.text
    with psycopg.connect(api.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM alert_rules WHERE name = %s", (f"bad-{field}",)).fetchone()[0] == 0


def test_every_page_and_its_live_stream_render_over_the_api(api) -> None:
    """Every page (a strategy with no fill yet, a goal with no run) and the first message of each
    page's event stream: all panels, rendered by the same functions."""
    import json as _json

    from tests.api.test_strategies import STRATEGY

    with httpx.Client(base_url=api.url, headers=api.headers(), timeout=30) as admin:
        ns = admin.get("/api/v1/strategies").json()  # the API's own namespace
        assert "items" in ns
        made = admin.post("/api/v1/strategies", json={**STRATEGY, "metadata": {"name": "console-page"}})
        assert made.status_code in (201, 409), made.text
    _, key = make_key(api.dsn, ["read", "trade", "admin"], "pages")
    client = _login(api.url, key)
    for path in ("/console/", "/console/strategies?sort=trades&dir=asc", "/console/strategies/console-page",
                 "/console/goals", "/console/alerts", "/console/datasources"):
        got = client.get(path)
        assert got.status_code == 200, (path, got.text[-2000:])
        assert 'id="live-state"' in got.text
    assert client.get("/console/strategies/no-such-strategy").status_code == 404
    for page, panels in (("dashboard", 5), ("strategies", 1), ("strategy", 3), ("goals", 1), ("alerts", 2),
                         ("datasources", 1)):
        params = {"page": page, **({"name": "console-page"} if page == "strategy" else {})}
        seen = []
        with client.stream("GET", "/console/live", params=params) as stream:
            assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
            event = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "panel":
                    seen.append(_json.loads(line[6:])["id"])
                    if len(seen) == panels:
                        break
        assert len(seen) == panels and all(s.startswith("panel-") for s in seen), (page, seen)
    assert client.get("/console/live", params={"page": "nope"}).status_code == 404


def test_console_actions_go_through_the_kube_apiserver(pg_dsn, nats_url, kube, namespace, monkeypatch) -> None:
    """On a cluster the console's buttons and forms write the custom resources on the API server
    (through the same Strategy and Collector routes): pause, then create and stop a Collector."""
    from kubetrade import cluster
    from kubetrade.api import create_app
    from tests.api.conftest import settings_for
    from tests.api.test_strategies import STRATEGY
    from tests.support.server import serving

    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    cluster.api_client.cache_clear()
    try:
        _, key = make_key(pg_dsn, ["read", "trade", "admin"], "cluster-console")
        with serving(create_app(settings_for(pg_dsn, nats_url, namespace=namespace))) as url:
            with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as api:
                assert api.post("/api/v1/strategies", json=STRATEGY).status_code == 201
            client = _login(url, key)
            page = client.get("/console/strategies/btc-ema")
            assert page.status_code == 200 and 'data-action="pause"' in page.text
            done = client.post("/console/strategies/btc-ema/pause", data={"csrf": _csrf(page.text)})
            assert done.status_code == 303, done.text
            assert kube.get_json("strategy", "btc-ema", "-n", namespace)["spec"]["paused"] is True
            made = client.post("/console/datasources", data={
                "csrf": _csrf(page.text), "name": "replay-k8s", "source": "replay", "provider": "bundled",
                "exchange": "binance", "symbols": "BTC/USDT", "timeframes": "5m", "replaySpeed": "120"})
            assert made.status_code == 303, made.text
            stored = kube.get_json("collector", "replay-k8s", "-n", namespace)
            assert stored["spec"]["symbols"] == ["BTC/USDT"] and stored["spec"]["replay"]["speed"] == 120
            stopped = client.post("/console/datasources/replay-k8s/stop", data={"csrf": _csrf(page.text)})
            assert stopped.status_code == 303
            assert kube.get_json("collector", "replay-k8s", "-n", namespace)["spec"]["suspend"] is True
            listed = client.get("/console/datasources")
            assert 'data-collector="replay-k8s"' in listed.text
    finally:
        cluster.api_client.cache_clear()
