"""LunarCrush social sentiment: API v4 ``GET /api4/public/coins/<coin>/time-series/v2``.

Topics are coins (``BTC``).  Bearer key; the answer is ``{"config": ..., "data": [{"time": unix
seconds, "sentiment", "galaxy_score", "alt_rank", "social_dominance", "interactions", ...}]}``.
"""

from __future__ import annotations

import math

import httpx

from kubetrade.collector.alt.base import Provider, ProviderError
from kubetrade.messaging.schemas import AltPoint

METRICS = ("sentiment", "galaxy_score", "alt_rank", "social_dominance", "interactions", "posts_active",
           "contributors_active")


class LunarCrush(Provider):
    name = "lunarcrush"
    source = "social"
    base_url = "https://lunarcrush.com"

    async def fetch(self, http: httpx.AsyncClient, topic: str, since_ms: int | None) -> list[AltPoint]:
        params: dict[str, str | int] = {"bucket": "hour"}
        if since_ms is not None:
            params["start"] = since_ms // 1000 + 1
        else:
            params["interval"] = "1w"
        r = self.check(await http.get(f"{self.url}/api4/public/coins/{topic}/time-series/v2", params=params,
                                      headers={"Authorization": f"Bearer {self.credentials.api_key}"}))
        body = r.json()
        if not isinstance(body.get("data"), list):
            raise ProviderError(f"lunarcrush {topic}: {body.get('error') or 'no data list'}")
        out = []
        for row in body["data"]:
            for metric in METRICS:
                v = row.get(metric)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    out.append(AltPoint(source="social", provider=self.name, topic=topic.upper(), metric=metric,
                                        time=int(row["time"]) * 1000, value=float(v)))
        return out
