"""Alternative-data collectors against a local server answering like each provider, into JetStream and the DB."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import numpy as np
import psycopg
import pytest

from kubetrade.collector.alt import PROVIDERS, AltCollector, Credentials
from kubetrade.collector.health import Health
from kubetrade.collector.publish import Publisher
from kubetrade.collector.sink import ALT_FILTER, Sink
from kubetrade.messaging import codec
from kubetrade.messaging.schemas import AltPoint
from tests.support.server import serving

from .helpers import until
from .providers import KEY, SECRET, T0, WHALE, create_app

H = 3_600_000
T0_MS = T0 * 1000


@pytest.fixture(scope="module")
def provider_url() -> object:
    with serving(create_app()) as url:
        yield url


def _collector(provider: str, url: str, js: object, topics: list[str], creds: Credentials) -> AltCollector:
    p = PROVIDERS[provider](creds, url)
    if provider == "reddit":
        p.auth = url  # type: ignore[attr-defined]
    return AltCollector(p, topics, Publisher(js), Health("test", f"alt-{uuid.uuid4().hex[:6]}", p.source, provider),
                        interval_seconds=0.05, max_backoff=0.1)


async def _points(js: object) -> list[AltPoint]:
    sub = await js.pull_subscribe(ALT_FILTER, durable=None, stream="ALT_DATA")  # type: ignore[attr-defined]
    out = []
    try:
        while True:
            try:
                msgs = await sub.fetch(500, timeout=0.5)
            except TimeoutError:
                break
            out += [codec.decode(AltPoint, m.data) for m in msgs]
    finally:
        await sub.unsubscribe()
    return out


CASES = {
    "glassnode": (["BTC:mvrv", "nvt"], {("BTC", "mvrv", T0_MS): 1.5, ("BTC", "mvrv", T0_MS + 23 * H): 1.73,
                                        ("BTC", "nvt", T0_MS + H): 1.51}, 48),
    "moralis": ([WHALE], {(WHALE, "transfer_usdt", T0_MS + 30_000): 5_000_000 - 1_000_000,
                          (WHALE, "transfer_usdt", T0_MS + 10_000): 2500.0}, 2),
    "twitter": (["bitcoin OR btc"], {("bitcoin OR btc", "mentions", T0_MS + 2 * H): 1002.0}, 3),
    "lunarcrush": (["btc"], {("BTC", "sentiment", T0_MS + H): 81.0, ("BTC", "galaxy_score", T0_MS): 65.0}, 14),
    "yahoo": (["^GSPC", "^VIX"], {("^GSPC", "close", T0_MS + 13 * H + 1_800_000): 5277.51,
                                  ("^VIX", "close", T0_MS + 13 * H + 1_800_000 + 24 * H): 13.11}, 4),
    "stooq": (["^spx"], {("^spx", "close", T0_MS - 24 * H): 5277.51}, 2),
}


@pytest.mark.parametrize("provider", sorted(CASES))
async def test_provider_is_normalised_into_alt_points(provider: str, provider_url: str, js: object) -> None:
    topics, expected, count = CASES[provider]
    col = _collector(provider, provider_url, js, topics, Credentials(KEY, SECRET))
    async with httpx.AsyncClient() as http:
        assert await col.cycle(http) == count
        assert await col.cycle(http) == 0, "a second poll publishes nothing it already sent"
    got = {(p.topic, p.metric, p.time): p.value for p in await _points(js)}
    assert len(got) == count
    for k, v in expected.items():
        assert got[k] == pytest.approx(v), k
    assert {p.source for p in await _points(js)} == {PROVIDERS[provider].source}


async def test_reddit_uses_the_oauth_token_and_counts_posts_per_closed_hour(provider_url: str, js: object) -> None:
    col = _collector("reddit", provider_url, js, ["bitcoin"], Credentials(KEY, SECRET))
    async with httpx.AsyncClient() as http:
        await col.cycle(http)
    got = await _points(js)
    assert {(p.metric, p.value) for p in got if p.metric != "posts"} == {("subscribers", 7_500_000),
                                                                          ("active_users", 12_345)}
    assert sorted((p.time, p.value) for p in got if p.metric == "posts") == [(T0_MS, 3.0), (T0_MS + H, 2.0)]


@pytest.mark.parametrize("provider", ["moralis", "glassnode", "twitter", "reddit", "lunarcrush"])
async def test_without_a_key_the_collector_is_disabled_and_calls_nobody(provider: str, provider_url: str,
                                                                       js: object) -> None:
    col = _collector(provider, provider_url, js, ["x"], Credentials())
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    await until(lambda: col.health.phase != "Pending", "the collector to decide")
    stop.set()
    await task
    snap = col.health.snapshot()
    assert (snap.phase, snap.reason, snap.error_count) == ("Disabled", "NoCredentials", 0)
    assert "credentialsSecretRef" in (snap.last_error or "") or "secret" in (snap.last_error or "")


async def test_a_wrong_key_is_an_error_that_never_shows_the_key(provider_url: str, js: object) -> None:
    col = _collector("glassnode", provider_url, js, ["mvrv"], Credentials("wrong-key-zzz"))
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    await until(lambda: col.health.errors >= 2, "two failed polls")
    stop.set()
    await task
    assert "HTTP 401" in (col.health.last_error or "") and "wrong-key-zzz" not in (col.health.last_error or "")
    assert "wrong-key-zzz" not in repr(col.provider.credentials)


def test_credentials_come_from_env_or_mounted_files(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("COLLECTOR_API_KEY", raising=False)
    monkeypatch.delenv("COLLECTOR_SECRET", raising=False)
    assert Credentials.from_env(folder=tmp_path).api_key is None
    (tmp_path / "apiKey").write_text("from-file\n")
    assert Credentials.from_env(folder=tmp_path).api_key == "from-file"
    monkeypatch.setenv("COLLECTOR_API_KEY", "from-env")
    assert Credentials.from_env(folder=tmp_path).api_key == "from-env"


async def test_alt_points_reach_the_database_once(provider_url: str, js: object, nats_client: object,
                                                  pg_dsn: str) -> None:
    col = _collector("lunarcrush", provider_url, js, ["eth"], Credentials(KEY))
    async with httpx.AsyncClient() as http:
        await col.cycle(http)
    await Publisher(js).publish_all(await _points(js))  # a replay of the same points: de-duplicated
    sink = Sink(nats_client, pg_dsn, durable=f"alt-{uuid.uuid4().hex[:6]}", stream="ALT_DATA",
                filter_subject=ALT_FILTER)
    await sink.run(asyncio.Event(), idle_exit=True)
    with psycopg.connect(pg_dsn) as conn:
        n, = conn.execute("SELECT count(*) FROM alt_points WHERE provider='lunarcrush' AND topic='ETH'").fetchone()
        v, = conn.execute("SELECT value FROM alt_points WHERE topic='ETH' AND metric='sentiment' "
                          "AND time = to_timestamp(%s)", (T0 + 3600,)).fetchone()
    assert n == 14 and v == 81.0


async def test_stored_points_come_back_as_operand_series(provider_url: str, js: object, nats_client: object,
                                                          pg_dsn: str) -> None:
    """What a collector stored is what a strategy's genome sees: loaded by the runner's and the evolution's
    query, each value known from the end of the hour it is stamped with, joined to real candles."""
    from datetime import UTC, datetime

    from kubetrade.candles import load_csv
    from kubetrade.data import SAMPLE_DIR
    from kubetrade.engine.altdata import AltDataError, as_of
    from kubetrade.resources.genome import AltSeriesRef
    from kubetrade.storage import altpoints

    col = _collector("lunarcrush", provider_url, js, ["btc"], Credentials(KEY))
    async with httpx.AsyncClient() as http:
        await col.cycle(http)
    sink = Sink(nats_client, pg_dsn, durable=f"alt-{uuid.uuid4().hex[:6]}", stream="ALT_DATA",
                filter_subject=ALT_FILTER)
    await sink.run(asyncio.Event(), idle_exit=True)
    ref = AltSeriesRef(provider="lunarcrush", topic="BTC", metric="sentiment")
    since = datetime.fromtimestamp(T0 - 86_400, UTC)
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        loaded = await altpoints.load(conn, [ref], since)
        with pytest.raises(AltDataError, match="lunarcrush/BTC/nosuch: no points stored"):
            await altpoints.load(conn, [ref.model_copy(update={"metric": "nosuch"})], since)
    s = loaded[ref.key]
    assert s.known[0] == T0_MS + H  # stamped at the hour's start, known at its end
    c = load_csv(SAMPLE_DIR / "BTC_USDT-5m.csv.gz")
    i = int(np.searchsorted(c.time, T0_MS))
    bars = c.slice(i - 12, i + 36)
    joined = as_of(s, bars.time, bars.bar_ms)
    assert np.isnan(joined[:23]).all()  # nothing is known before the first hour is over (its last bar closes 01:00)
    assert joined[23] == s.values[0] and joined[35] == s.values[1]  # the bar closing at 01:00 / 02:00
