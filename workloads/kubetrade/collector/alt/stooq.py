"""Stock indices from Stooq's CSV download: ``GET /q/d/l/?s=<ticker>&i=d``.

Topics are Stooq tickers: ``^spx`` (S&P 500), ``^ndq`` (NASDAQ Composite), ``^vix``.  The answer
is CSV ``Date,Open,High,Low,Close,Volume``; each close becomes a ``close`` point at 00:00 UTC of
its date.  An API key, if the Secret has one, is sent as Stooq's ``apikey`` parameter.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import httpx

from kubetrade.collector.alt.base import Provider, ProviderError
from kubetrade.messaging.schemas import AltPoint


class Stooq(Provider):
    name = "stooq"
    source = "macro"
    base_url = "https://stooq.com"
    needs_key = False

    async def fetch(self, http: httpx.AsyncClient, topic: str, since_ms: int | None) -> list[AltPoint]:
        params = {"s": topic, "i": "d"}
        if since_ms is not None:
            params["d1"] = datetime.fromtimestamp(since_ms / 1000, UTC).strftime("%Y%m%d")
        if self.credentials.api_key:
            params["apikey"] = self.credentials.api_key
        r = self.check(await http.get(f"{self.url}/q/d/l/", params=params))
        text = r.text
        if not text.startswith("Date,"):
            raise ProviderError(f"stooq {topic}: {text.strip()[:100] or 'empty answer'}")
        out = []
        for row in csv.DictReader(io.StringIO(text)):
            day = datetime.strptime(row["Date"], "%Y-%m-%d").replace(tzinfo=UTC)
            out.append(AltPoint(source="macro", provider=self.name, topic=topic, metric="close",
                                time=int(day.timestamp() * 1000), value=float(row["Close"])))
        return out
