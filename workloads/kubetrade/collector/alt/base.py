"""What every alternative-data provider shares: credentials, the poll loop, Disabled without a key.

A provider module only knows its API: :meth:`Provider.fetch` turns one HTTP exchange into
:class:`AltPoint` s.  :class:`AltCollector` does the rest - publish, health, backoff,
a resume point per topic, and the ``Disabled`` phase (reason ``NoCredentials``) when a
provider that needs a key has none, instead of failing and restarting forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import httpx

from kubetrade import retrying
from kubetrade.collector.health import Health, wall_ms
from kubetrade.collector.publish import Publisher
from kubetrade.messaging.schemas import AltPoint

log = logging.getLogger("kubetrade.collector.alt")

CREDENTIALS_DIR = Path("/var/run/secrets/kubetrade/collector")


@dataclass(frozen=True, repr=False)
class Credentials:
    """A provider's key (and secret, where it has one); ``repr`` never shows them."""

    api_key: str | None = None
    secret: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(api_key={'set' if self.api_key else 'unset'}, secret={'set' if self.secret else 'unset'})"

    @classmethod
    def from_env(cls, prefix: str = "COLLECTOR", folder: Path = CREDENTIALS_DIR) -> Credentials:
        """``COLLECTOR_API_KEY`` / ``COLLECTOR_SECRET`` (what the operator sets from the Secret),
        else files ``apiKey`` / ``secret`` in a mounted Secret folder.  Empty means unset."""
        def read(env: str, file: str) -> str | None:
            value = os.environ.get(env, "").strip()
            if not value and (folder / file).is_file():
                value = (folder / file).read_text().strip()
            return value or None

        return cls(read(f"{prefix}_API_KEY", "apiKey"), read(f"{prefix}_SECRET", "secret"))


class ProviderError(RuntimeError):
    """The provider answered, but not with data (bad key, unknown metric, quota)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
    """Seconds the provider asked us to wait (its Retry-After), if it said."""


class Provider:
    """One provider's HTTP API.  Subclasses set the class attributes and implement ``fetch``."""

    name: ClassVar[str]
    source: ClassVar[str]
    base_url: ClassVar[str]
    needs_key: ClassVar[bool] = True
    needs_secret: ClassVar[bool] = False

    def __init__(self, credentials: Credentials, base_url: str | None = None) -> None:
        self.credentials = credentials
        env = os.environ.get(f"KUBETRADE_{self.name.upper()}_URL")
        self.url = (base_url or env or self.base_url).rstrip("/")

    def missing_credentials(self) -> str | None:
        if self.needs_key and not self.credentials.api_key:
            return f"{self.name} needs an API key: set credentialsSecretRef to a Secret with it"
        if self.needs_secret and not self.credentials.secret:
            return f"{self.name} needs a key and a secret in the credentials Secret"
        return None

    async def fetch(self, http: httpx.AsyncClient, topic: str, since_ms: int | None) -> list[AltPoint]:
        raise NotImplementedError

    @staticmethod
    def check(response: httpx.Response) -> httpx.Response:
        """Raise with the status and a short body; the request URL is left out (it may carry a key)."""
        if response.status_code >= 400:
            raise ProviderError(f"HTTP {response.status_code}: {response.text[:200]}",
                                retrying.retry_after_header(response.headers))
        return response


@dataclass
class AltCollector:
    provider: Provider
    topics: list[str]
    publisher: Publisher
    health: Health
    interval_seconds: float = 300.0
    max_backoff: float = 300.0
    timeout: float = 15.0
    clock: Callable[[], int] = wall_ms
    since: dict[str, int] = field(default_factory=dict)
    """Newest point time per topic: the next poll asks only for what is newer."""

    async def cycle(self, http: httpx.AsyncClient) -> int:
        n = 0
        for topic in self.topics:
            points = await self.provider.fetch(http, topic, self.since.get(topic))
            for p in sorted(points, key=lambda p: p.time):
                if p.time <= self.since.get(f"{topic}|{p.metric}", -1):
                    continue  # already published on an earlier poll
                await self.publisher.publish(p)
                self.health.sample(p.time)
                self.since[f"{topic}|{p.metric}"] = p.time
                self.since[topic] = max(self.since.get(topic, 0), p.time)
                n += 1
        return n

    async def run(self, stop: asyncio.Event) -> None:
        missing = self.provider.missing_credentials()
        if missing:
            self.health.set_phase("Disabled", "NoCredentials")
            self.health.last_error = missing
            log.warning("collector disabled", extra={"provider": self.provider.name, "reason": "NoCredentials"})
            await stop.wait()
            return
        self.health.set_phase("Running")

        def failed(exc: BaseException, wait: float) -> None:  # HTTP errors, timeouts, odd payloads
            self.health.error(exc)
            self.health.lag_seconds()

        async with httpx.AsyncClient(timeout=self.timeout, headers={"User-Agent": "kubetrade/0.1"}) as http:
            while not stop.is_set():
                try:
                    await retrying.call(lambda: self.cycle(http), first=1.0, maximum=self.max_backoff, stop=stop,
                                        retry_after=_retry_after, on_retry=failed)
                except retrying.Stopped:
                    break
                self.health.lag_seconds()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval_seconds)
        self.health.set_phase("Suspended")


def _retry_after(exc: BaseException) -> float | None:
    """A provider's Retry-After, when its answer was a 429 or 503 that said how long to wait."""
    return exc.retry_after if isinstance(exc, ProviderError) else None
