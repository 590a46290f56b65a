"""A parameter that takes one value, given twice, is refused rather than silently last-wins."""

from __future__ import annotations

import httpx


def test_repeated_scalar_query_parameter_is_refused(api) -> None:
    url = f"{api.url}/api/v1/historical/BTC-USDT"
    once = httpx.get(url, params={"limit": 5}, headers=api.headers())
    assert once.status_code == 200
    twice = httpx.get(f"{url}?limit=5&limit=900", headers=api.headers())
    assert twice.status_code == 422
    assert "'limit' was given 2 times" in twice.text


def test_bad_symbols_get_a_clear_422(api) -> None:
    for symbol in ("BTC", "ÄÖÜ-USDT", "BTC-US$T"):
        resp = httpx.get(f"{api.url}/api/v1/bulk", params={"symbol": symbol}, headers=api.headers())
        assert resp.status_code == 422, symbol
        assert "BASE/QUOTE" in resp.text
