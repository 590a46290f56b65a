"""Hostile and careless input to every route that takes a body or a number: never a 5xx.

Real uvicorn over the session's PostgreSQL and NATS with the real risk manager answering.
Each request is sent as raw bytes (NaN and Infinity are not JSON, which is the point: Python's
``json`` reads them) and must get the 4xx it deserves - 422 for a value the models refuse, 413
for a body over the limit - with a body that is valid JSON and never echoes the input whole.
The count of 5xx over the whole list is printed: it was 82 of 186 before (the NaN, Infinity and
beyond-float cases, whose 422 could not be written, and infinities the risk manager answered with
an error the API read as a decision).  The console's Collector routes joined later (58 more cases).
The console's forms get the same hostile values as form fields (never a 5xx, the form again with
the field named).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest

HUGE_INT = "9" * 400
"""Beyond any float: Python's json reads it as an int, pydantic cannot make it a float."""
BIG_STRING = "x" * 100_000

SIGNAL = {"strategy": "s", "clientOrderId": "bad-input-1", "exchange": "binance", "symbol": "BTC/USDT",
          "side": "buy", "quantity": 0.01, "price": 50000, "time": 1700000000000, "dryRun": True}
ORDER = {"strategy": "manual", "symbol": "BTC/USDT", "side": "buy", "quantity": 0.001, "price": 50000,
         "environment": "paper"}
SIZING = {"target": {"capital": {"amount": 1000}, "returnPct": 0.05}, "equity": 1000, "price": 100}
POLICY = {"name": "bad-input", "spec": {"strategyLimits": {"maxPositionPct": 0.2},
                                        "portfolioLimits": {"varLimitPct": 0.05}}}
ALERT = {"name": "a", "metric": "price", "target": "binance:BTC/USDT", "operator": "gt", "threshold": 1}
INDICATORS = {"symbol": "BTC/USDT", "timeframe": "5m", "indicators": [{"name": "ema", "params": {"period": 20}}]}
STRATEGY = {"apiVersion": "kubetrade.io/v1alpha1", "kind": "Strategy", "metadata": {"name": "bad-input"},
            "spec": {"template": "ema-crossover", "parameters": {"fast": 12, "slow": 26}, "symbols": ["BTC/USDT"],
                     "capital": {"amount": 1000}, "riskPolicyRef": {"name": "default"}}}
BACKTEST = {"days": 5, "initialCash": 1000}
COLLECTOR = {"apiVersion": "kubetrade.io/v1alpha1", "kind": "Collector", "metadata": {"name": "bad-input-c"},
             "spec": {"source": "replay", "provider": "bundled", "exchange": "binance", "symbols": ["BTC/USDT"],
                      "timeframes": ["5m"], "replay": {"path": "bundled", "speed": 60}}}
COLLECTOR_BASE = {**COLLECTOR, "metadata": {"name": "bad-input-base-c"}}
COLLECTOR_NUMBERS = ["spec.intervalSeconds", "spec.backfillDays", "spec.replay.speed"]
COLLECTOR_STRINGS = ["metadata.name", "spec.provider", "spec.replay.path"]

# (route, a valid body, paths of numbers in it, paths of strings in it)
BODIES: list[tuple[str, str, dict[str, Any], list[str], list[str]]] = [
    ("POST", "/api/v1/risk/check", SIGNAL, ["quantity", "price", "stopPrice", "time"], ["strategy", "namespace"]),
    ("POST", "/api/v1/orders", ORDER, ["quantity", "price", "stopPrice"], ["strategy", "namespace"]),
    ("POST", "/api/v1/position-sizing/calculate", SIZING,
     ["equity", "price", "peakEquity", "target.capital.amount", "target.returnPct", "winRate"], ["goal"]),
    ("PUT", "/api/v1/risk/limits", POLICY, ["spec.strategyLimits.maxPositionPct", "spec.portfolioLimits.varLimitPct"],
     ["name"]),
    ("POST", "/api/v1/alerts", ALERT, ["threshold", "cooldownSeconds"], ["name", "target"]),
    ("POST", "/api/v1/indicators", INDICATORS, ["limit", "indicators.0.params.period"], ["symbol", "exchange"]),
    ("POST", "/api/v1/strategies", STRATEGY, ["spec.capital.amount", "spec.parameters.fast", "spec.warmupBars"],
     ["metadata.name", "spec.template"]),
    ("POST", "/api/v1/strategies/bad-input-base/backtest", BACKTEST, ["initialCash", "days"], []),
    ("POST", "/api/v1/collectors", COLLECTOR, COLLECTOR_NUMBERS, COLLECTOR_STRINGS),
    ("PUT", "/api/v1/collectors/bad-input-base-c", COLLECTOR_BASE, COLLECTOR_NUMBERS, COLLECTOR_STRINGS[1:]),
]

QUERIES: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/health/collectors", {"stale_after": "nan"}),
    ("GET", "/health/collectors", {"stale_after": "inf"}),
    ("GET", "/health/collectors", {"stale_after": "1e999"}),
    ("GET", "/api/v1/orders", {"limit": HUGE_INT}),
    ("GET", "/api/v1/orders", {"limit": "nan"}),
    ("GET", "/api/v1/trades", {"limit": "1e400"}),
    ("GET", "/api/v1/historical/BTC%2FUSDT", {"limit": "Infinity"}),
    ("GET", "/api/v1/market-data", {"symbols": "X" * 20_000}),
    ("GET", "/api/v1/strategies", {"limit": HUGE_INT}),
    ("GET", "/api/v1/backtests", {"after": "x" * 50_000}),

]


def _set(doc: dict[str, Any], path: str, raw: str) -> str:
    """The body with one value replaced by ``raw`` (JSON text, possibly NaN): returned as text."""
    marker = "__REPLACED__"
    doc = copy.deepcopy(doc)
    node: Any = doc
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
    node[keys[-1]] = marker
    return json.dumps(doc).replace(f'"{marker}"', raw)


def cases() -> list[tuple[str, str, str, str | None, dict[str, str], int]]:
    """(id, method, path, body text, query, expected status)."""
    out = []
    for method, path, base, numbers, strings in BODIES:
        tag = f"{method} {path}"
        for field in numbers:
            for raw in ("NaN", "Infinity", "-Infinity", "1e999", HUGE_INT):
                out.append((f"{tag} {field}={raw[:8]}", method, path, _set(base, field, raw), {}, 422))
        for field in strings:
            out.append((f"{tag} {field}=100k chars", method, path, _set(base, field, json.dumps(BIG_STRING)), {},
                        422))
            out.append((f"{tag} {field}=NUL", method, path, _set(base, field, '"a\\u0000b"'), {}, 422))
        out.append((f"{tag} 2 MB body", method, path, _set(base, "padding", json.dumps("p" * 2_000_000)), {}, 413))
        out.append((f"{tag} deep nesting", method, path, "[" * 200_000 + "]" * 200_000, {}, 400))
        out.append((f"{tag} not JSON", method, path, "{not json", {}, 422))
        out.append((f"{tag} a list", method, path, "[1, 2]", {}, 422))
    for method, path, query in QUERIES:
        out.append((f"{method} {path[:40]} {json.dumps(query)[:40]}", method, path, None, query, 422))
    return out


@pytest.fixture
def base_strategy(api) -> None:
    body = copy.deepcopy(STRATEGY)
    body["metadata"]["name"] = "bad-input-base"
    made = httpx.post(f"{api.url}/api/v1/strategies", json=body, headers=api.headers(), timeout=30)
    assert made.status_code in (201, 409), made.text
    made = httpx.post(f"{api.url}/api/v1/collectors", json=COLLECTOR_BASE, headers=api.headers(), timeout=30)
    assert made.status_code in (201, 409), made.text


@pytest.mark.slow
def test_bad_input_gets_a_clear_4xx_never_a_5xx(api, risk_manager, base_strategy) -> None:
    all_cases = cases()
    wrong: list[str] = []
    server_errors = 0
    with httpx.Client(base_url=api.url, headers={**api.headers(), "Content-Type": "application/json"},
                      timeout=60) as client:
        for case_id, method, path, body, query, expected in all_cases:
            try:
                got = client.request(method, path, content=body, params=query)
            except httpx.TransportError as exc:  # the server dropped the connection: a server error
                server_errors += 1
                wrong.append(f"{case_id}: no answer ({type(exc).__name__})")
                continue
            server_errors += got.status_code >= 500
            problem = None
            if got.status_code != expected:
                problem = f"{got.status_code} (wanted {expected}): {got.text[:300]}"
            else:
                try:
                    json.loads(got.text)
                except ValueError:
                    problem = f"body is not JSON: {got.text[:200]!r}"
                if len(got.content) > 20_000:
                    problem = f"answer of {len(got.content)} bytes echoes the input"
            if problem:
                wrong.append(f"{case_id}: {problem}")
    print(f"\n{server_errors} 5xx over {len(all_cases)} bad requests; {len(wrong)} not answered as they should be")
    assert not wrong, "\n".join(wrong)
    assert server_errors == 0


def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives(api) -> None:
    """No Content-Length to trust: the bytes are counted, and the read that passes 1 MiB ends it."""
    sent = 0

    def chunks():
        nonlocal sent
        yield b'{"strategy": "'
        for _ in range(64):  # 4 MiB in 64 KiB chunks, if the server kept reading
            sent += 65536
            yield b"x" * 65536
        yield b'"}'

    got = httpx.post(f"{api.url}/api/v1/orders", content=chunks(), timeout=60,
                     headers={**api.headers(), "Content-Type": "application/json"})
    assert got.status_code == 413, got.text[:300]
    assert "larger than" in got.json()["detail"]


def test_the_console_s_forms_never_answer_a_5xx(api, base_strategy) -> None:
    """The console's forms take the same hostile values as form fields: the form comes back with the
    field named (422) or the body is refused (413), never a 5xx, and nothing is made."""
    import re

    from tests.api.test_console_http import _csrf, _login

    client = _login(api.url, api.admin)
    csrf = _csrf(client.get("/console/datasources").text)
    collector = {"name": "bad-console", "source": "replay", "provider": "bundled", "exchange": "binance",
                 "symbols": "BTC/USDT", "timeframes": "5m", "replaySpeed": "60"}
    alert = {"name": "bad-console", "metric": "price", "target": "binance:BTC/USDT", "operator": "gt",
             "threshold": "1", "enabled": "on"}
    forms: list[tuple[str, dict[str, str], list[str]]] = [
        ("/console/datasources", collector, ["replaySpeed", "intervalSeconds", "backfillDays"]),
        ("/console/alerts", alert, ["threshold", "cooldownSeconds"]),
        ("/console/strategies/bad-input-base/backtest", {"days": "5"}, ["days", "initialCash"]),
        ("/console/datasources/bad-input-base-c/edit", {**collector, "name": "bad-input-base-c"}, ["replaySpeed"]),
    ]
    wrong = []
    tried = 0
    for path, base, numbers in forms:
        variants = [{**base, f: raw} for f in numbers for raw in ("nan", "inf", "-inf", "1e999", HUGE_INT, "x")]
        variants += [{**base, f: BIG_STRING} for f in base if f not in ("source", "operator", "metric", "enabled")]
        variants += [{**base, f: "a\x00b"} for f in base if f not in ("source", "operator", "metric", "enabled")]
        for form in variants:
            tried += 1
            got = client.post(path, data={"csrf": csrf, **form})
            if got.status_code >= 500 or got.status_code == 303:
                changed = next((k for k in form if form[k] != base.get(k)), "?")
                wrong.append(f"{path} {changed}={form[changed][:12]!r}: {got.status_code} {got.text[:200]}")
    big = client.post("/console/datasources", data={"csrf": csrf, **collector, "symbols": "p" * 2_000_000})
    assert big.status_code == 413, big.status_code
    print(f"\n{len(wrong)} of {tried} hostile console forms answered 5xx or were accepted")
    assert not wrong, "\n".join(wrong)
    listed = client.get("/console/datasources").text
    assert not re.search(r'data-collector="bad-console"', listed)
