"""Twitter/X mention counts: API v2 ``GET /2/tweets/counts/recent`` with a bearer token.

Topics are search queries (``bitcoin OR btc``).  The answer is ``{"data": [{"start", "end",
"tweet_count"}], "meta": {...}}`` per hour; each bucket becomes a ``mentions`` point at its start.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from kubetrade.collector.alt.base import Provider, ProviderError
from kubetrade.messaging.schemas import AltPoint


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class Twitter(Provider):
    name = "twitter"
    source = "social"
    base_url = "https://api.twitter.com"

    async def fetch(self, http: httpx.AsyncClient, topic: str, since_ms: int | None) -> list[AltPoint]:
        params = {"query": topic, "granularity": "hour"}
        if since_ms is not None:
            params["start_time"] = datetime.fromtimestamp(since_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        r = self.check(await http.get(f"{self.url}/2/tweets/counts/recent", params=params,
                                      headers={"Authorization": f"Bearer {self.credentials.api_key}"}))
        body = r.json()
        if "data" not in body:
            raise ProviderError(f"twitter: no data ({body.get('title') or body.get('errors') or 'empty answer'})")
        now = datetime.now(UTC).timestamp() * 1000
        return [
            AltPoint(source="social", provider=self.name, topic=topic, metric="mentions", time=_ms(b["start"]),
                     value=float(b["tweet_count"]))
            for b in body["data"]
            if _ms(b["end"]) <= now  # the current hour is still counting
        ]
