"""Alternative data as genome operands: the collectors' series joined to bars as of each bar's close.

A point in ``alt_points`` is stamped with the time its provider gives it, which is usually the
*start* of the period it describes (Glassnode's hour, Twitter's count bucket, Stooq's trading
day): its value is only known once that period is over.  :data:`KNOWN_AFTER_MS` says, per
provider and metric, how long after its stamp a value becomes known (each figure from the
provider module's own docstring in ``kubetrade.collector.alt``); :class:`AltSeries` keeps the
*known* times, and :func:`as_of` gives every bar the last value known at its close, NaN
before the first.  Nothing a bar's decision uses was known after that bar closed: this is
the no-look-ahead rule (``tests/engine/test_altdata.py`` moves and changes future points and
checks that no earlier decision changes).

The backtester, the evolution and the live runner all join through :func:`as_of`
(:func:`kubetrade.engine.compile.build_features`), so they see the same values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from kubetrade.candles import FloatArray, IntArray
from kubetrade.resources.genome import AltSeriesRef

HOUR_MS = 3_600_000
DAY_MS = 86_400_000

KNOWN_AFTER_MS: dict[str, dict[str, int]] = {
    "glassnode": {"*": HOUR_MS},  # i=1h: a point is stamped with the start of its hour
    "twitter": {"mentions": HOUR_MS},  # tweet counts per hour, stamped with the bucket's start
    "lunarcrush": {"*": HOUR_MS},  # hourly time series, stamped with the hour's start
    "reddit": {"posts": HOUR_MS, "*": 60_000},  # posts per past hour; subscribers/active users: the poll's minute
    "stooq": {"close": DAY_MS},  # a day's close stamped 00:00 UTC of its date: known once the day is over
    "yahoo": {"close": DAY_MS},  # a daily bar stamped at the session's open: its close comes hours later
    "moralis": {"*": 0},  # transfers at their block's time: known when the block is
}
"""How long after its stamp a provider's point is known, per metric (``*``: every other metric)."""


class AltDataError(ValueError):
    """An alternative-data series that cannot be used; the message names the series and the problem."""


def known_after(provider: str, metric: str) -> int:
    table = KNOWN_AFTER_MS.get(provider)
    if table is None:
        raise AltDataError(f"alternative data from provider {provider!r}: unknown provider, so unknown when its "
                           f"points are known; known providers: {', '.join(sorted(KNOWN_AFTER_MS))}")
    delay = table.get(metric, table.get("*"))
    if delay is None:
        raise AltDataError(f"alternative data {provider} metric {metric!r}: unknown metric; known: "
                           f"{', '.join(sorted(table))}")
    return delay


@dataclass(frozen=True)
class AltSeries:
    """One series: the times its values became known (ascending) and the values."""

    ref: AltSeriesRef
    known: IntArray
    values: FloatArray

    @property
    def key(self) -> str:
        return self.ref.key

    def __len__(self) -> int:
        return int(self.known.shape[0])

    def known_before(self, t: int) -> FloatArray:
        """The values known strictly before ``t`` (e.g. to draw thresholds from a search's past only)."""
        out: FloatArray = self.values[: int(np.searchsorted(self.known, t, side="left"))]
        return out


def series(ref: AltSeriesRef, times: Sequence[int] | IntArray, values: Sequence[float] | FloatArray) -> AltSeries:
    """A series from stamped points (any order; a repeated stamp keeps the last value), NaN and inf refused."""
    t = np.asarray(times, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if t.shape != v.shape or t.ndim != 1:
        raise AltDataError(f"{ref.key}: {t.shape} times for {v.shape} values")
    if (bad := np.flatnonzero(~np.isfinite(v))).size:
        raise AltDataError(f"{ref.key}: value {v[bad[0]]} at {int(t[bad[0]])} is not a finite number")
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    last = np.ones(t.shape, dtype=bool)
    last[:-1] = t[1:] != t[:-1]  # for a repeated stamp, the last one stored wins (as the sink's upsert)
    t, v = t[last], v[last]
    return AltSeries(ref, np.ascontiguousarray(t + known_after(ref.provider, ref.metric)), np.ascontiguousarray(v))


def append(s: AltSeries, time: int, value: float) -> AltSeries:
    """The series with one more point (as it arrives live); a stamp seen before replaces its value."""
    if not math.isfinite(value):
        raise AltDataError(f"{s.key}: value {value} at {time} is not a finite number")
    known = int(time) + known_after(s.ref.provider, s.ref.metric)
    i = int(np.searchsorted(s.known, known, side="left"))
    if i < len(s) and int(s.known[i]) == known:
        values = s.values.copy()
        values[i] = value
        return AltSeries(s.ref, s.known, values)
    return AltSeries(s.ref, np.insert(s.known, i, known), np.insert(s.values, i, value))


def as_of(s: AltSeries, bar_open: IntArray, bar_ms: int) -> FloatArray:
    """For each bar, the last value known at its close (``open + bar_ms``); NaN before the first."""
    idx = np.searchsorted(s.known, bar_open + bar_ms, side="right") - 1
    out = np.full(bar_open.shape[0], np.nan)
    ok = idx >= 0
    out[ok] = s.values[idx[ok]]
    return out


AltData = Mapping[str, AltSeries]
"""Series by :attr:`AltSeriesRef.key`."""


@dataclass(frozen=True)
class AltOperand:
    """An alternative-data series the evolution may use, with the levels its rules compare it to."""

    ref: AltSeriesRef
    levels: tuple[float, ...]


def operands(refs: Iterable[AltSeriesRef], alt: AltData, before: int, quantiles: int = 9) -> list[AltOperand]:
    """Rule levels for each series: its deciles among the values known before ``before`` (no later one shapes them)."""
    out = []
    for ref in refs:
        s = alt.get(ref.key)
        if s is None:
            raise AltDataError(f"alternative data {ref.key}: no points stored (is a Collector providing it?)")
        past = s.known_before(before)
        if past.size < quantiles:
            raise AltDataError(f"alternative data {ref.key}: {past.size} points known before the search's last bar, "
                               f"too few to draw {quantiles} levels from")
        qs = np.quantile(past, np.linspace(0.1, 0.9, quantiles))
        levels = tuple(sorted({float(round_level(q)) for q in qs}))
        out.append(AltOperand(ref, levels))
    return out


def round_level(x: float) -> float:
    """Four significant digits: levels readable in a manifest, and few distinct ones."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, 3 - math.floor(math.log10(abs(x))))
