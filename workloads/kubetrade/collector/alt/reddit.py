"""Reddit community activity: OAuth app-only token, then ``/r/<sub>/about`` and ``/r/<sub>/new``.

The Secret holds the app's client id (``apiKey``) and secret (``secret``); a token comes from
``POST /api/v1/access_token`` (``grant_type=client_credentials``, HTTP basic auth) and is
reused until it expires.  Per subreddit (the topic) each poll yields ``subscribers`` and
``active_users`` now, and ``posts`` per hour of the newest submissions.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import httpx

from kubetrade.collector.alt.base import Credentials, Provider, ProviderError
from kubetrade.messaging.schemas import AltPoint

HOUR_MS = 3_600_000


class Reddit(Provider):
    name = "reddit"
    source = "social"
    base_url = "https://oauth.reddit.com"
    auth_url = "https://www.reddit.com"
    needs_secret = True
    _token: tuple[str, float] | None = None

    def __init__(self, credentials: Credentials, base_url: str | None = None, auth_url: str | None = None) -> None:
        super().__init__(credentials, base_url)
        self.auth = (auth_url or os.environ.get("KUBETRADE_REDDIT_AUTH_URL") or self.auth_url).rstrip("/")

    async def token(self, http: httpx.AsyncClient) -> str:
        if self._token is None or self._token[1] < time.monotonic():
            r = self.check(await http.post(
                f"{self.auth}/api/v1/access_token", data={"grant_type": "client_credentials"},
                auth=(self.credentials.api_key or "", self.credentials.secret or "")))
            body = r.json()
            if "access_token" not in body:
                raise ProviderError(f"reddit token: {body.get('error', 'no access_token')}")
            self._token = (body["access_token"], time.monotonic() + float(body.get("expires_in", 3600)) - 60)
        return self._token[0]

    async def fetch(self, http: httpx.AsyncClient, topic: str, since_ms: int | None) -> list[AltPoint]:
        headers = {"Authorization": f"Bearer {await self.token(http)}"}
        about = self.check(await http.get(f"{self.url}/r/{topic}/about", headers=headers)).json()["data"]
        now = int(time.time() * 1000)
        points = [
            AltPoint(source="social", provider=self.name, topic=topic, metric=metric, time=now - now % 60_000,
                     value=float(about[field]))
            for metric, field in (("subscribers", "subscribers"), ("active_users", "active_user_count"))
            if isinstance(about.get(field), (int, float))
        ]
        listing = self.check(await http.get(f"{self.url}/r/{topic}/new", params={"limit": 100},
                                            headers=headers)).json()
        hours: Counter[int] = Counter()
        for child in listing["data"]["children"]:
            created = int(float(child["data"]["created_utc"]) * 1000)
            hours[created - created % HOUR_MS] += 1
        current = now - now % HOUR_MS
        points += [AltPoint(source="social", provider=self.name, topic=topic, metric="posts", time=h, value=float(n))
                   for h, n in hours.items() if h < current]  # the current hour is not over
        return points
