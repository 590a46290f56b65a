"""Stock indices from Yahoo Finance's chart API: ``GET /v8/finance/chart/<ticker>`` (no key).

Topics are tickers: ``^GSPC`` (S&P 500), ``^IXIC`` (NASDAQ Composite), ``^VIX``.  The answer
is ``{"chart": {"result": [{"timestamp": [...], "indicators": {"quote": [{"close": [...]}]}}]}}``;
each daily close becomes a ``close`` point at the bar's time.
"""

from __future__ import annotations

import httpx

from kubetrade.collector.alt.base import Provider, ProviderError
from kubetrade.messaging.schemas import AltPoint


class Yahoo(Provider):
    name = "yahoo"
    source = "macro"
    base_url = "https://query1.finance.yahoo.com"
    needs_key = False

    async def fetch(self, http: httpx.AsyncClient, topic: str, since_ms: int | None) -> list[AltPoint]:
        params = {"interval": "1d", "range": "1mo" if since_ms is not None else "1y"}
        r = self.check(await http.get(f"{self.url}/v8/finance/chart/{topic}", params=params))
        chart = r.json().get("chart", {})
        if chart.get("error") or not chart.get("result"):
            raise ProviderError(f"yahoo {topic}: {chart.get('error') or 'no result'}")
        res = chart["result"][0]
        closes = res["indicators"]["quote"][0]["close"]
        return [
            AltPoint(source="macro", provider=self.name, topic=topic, metric="close", time=int(t) * 1000,
                     value=float(c))
            for t, c in zip(res.get("timestamp", []), closes, strict=False)
            if c is not None
        ]
