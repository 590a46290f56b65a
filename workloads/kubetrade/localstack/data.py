"""The local stack's market data: the replay collectors' candle files, split into stored
history (for the evolution and the runners' warm-up) and the part replayed live.

A cluster's collector backfills history and then streams; locally the same happens in
one step: everything before the replay start is written to PostgreSQL at once (binary
COPY), everything after it is published on NATS at the collector's speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubetrade.candles import CandleError, Candles
from kubetrade.collector.replay import data_dir, load_series
from kubetrade.resources.collector import Collector
from kubetrade.storage.candles import SeriesKey

DAY_MS = 86_400_000


@dataclass
class ReplayData:
    collector: Collector
    exchange: str
    history: dict[SeriesKey, Candles]
    live: dict[SeriesKey, Candles]
    speed: float

    @property
    def provides(self) -> set[tuple[str, str, str]]:
        return {(self.exchange, k.symbol, k.timeframe) for k in self.live}


@dataclass
class MarketData:
    replays: list[ReplayData] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def provides(self, exchange: str, symbol: str, timeframe: str) -> bool:
        return any((exchange, symbol, timeframe) in r.provides for r in self.replays)

    def offered(self) -> str:
        pairs = sorted({f"{e} {s} {t}" for r in self.replays for e, s, t in r.provides})
        return ", ".join(pairs) or "nothing"

    def history_for(self, exchange: str, timeframe: str) -> dict[str, Candles]:
        return {k.symbol: c for r in self.replays if r.exchange == exchange
                for k, c in r.history.items() if k.timeframe == timeframe}


def split(c: Candles, live_days: float) -> tuple[Candles, Candles]:
    """History up to ``live_days`` before the end, and the rest (at least one bar each)."""
    cut = int(c.time[-1]) - int(live_days * DAY_MS)
    i = int((c.time <= cut).sum())
    i = min(max(i, 1), len(c) - 1)
    return c.slice(0, i), c.slice(i, len(c))


def load(collectors: list[Collector], live_days: float, speed: float | None) -> MarketData:
    """The replay collectors' data; other sources need the network and are reported, not run."""
    out = MarketData()
    for col in collectors:
        name = col.metadata.get("name", "?")
        spec = col.spec
        if spec.suspend:
            continue
        if spec.source != "replay" or spec.replay is None:
            out.problems.append(f"Collector/{name}: source {spec.source} is not run by kubetrade up "
                                f"(it needs the network); use a replay collector locally")
            continue
        try:
            series = load_series(data_dir(spec.replay.path), list(spec.symbols), list(spec.timeframes))
        except CandleError as exc:
            out.problems.append(f"Collector/{name}: {exc}")
            continue
        exchange = spec.exchange or "binance"
        history, live = {}, {}
        for key, c in series.items():
            h, lv = split(c, live_days)
            history[SeriesKey(exchange, key.symbol, key.timeframe)] = h
            live[SeriesKey(exchange, key.symbol, key.timeframe)] = lv
        out.replays.append(ReplayData(col, exchange, history, live, speed or spec.replay.speed))
    return out
