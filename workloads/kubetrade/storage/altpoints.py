"""Reading alternative-data points back (``alt_points``, written by the collectors' sink) as series.

The one named query for the table's readers: the Goal's evolution and the strategy runner
load the series a genome or a Goal names, each as an :class:`~kubetrade.engine.altdata.AltSeries`
(its points' stamps moved to when each value became known).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg

from kubetrade.engine.altdata import AltDataError, AltSeries, series
from kubetrade.resources.genome import AltSeriesRef

SERIES_SQL = """SELECT (extract(epoch FROM time) * 1000)::bigint AS t, value FROM alt_points
 WHERE provider = %(provider)s AND topic = %(topic)s AND metric = %(metric)s AND time >= %(since)s
 ORDER BY time"""


async def load(conn: psycopg.AsyncConnection, refs: Iterable[AltSeriesRef], since: datetime, *,
               required: bool = True) -> dict[str, AltSeries]:
    """Every point of each series stamped at or after ``since``; a series with none is an error when ``required``."""
    out: dict[str, AltSeries] = {}
    for ref in refs:
        cur = await conn.execute(SERIES_SQL, {"provider": ref.provider, "topic": ref.topic, "metric": ref.metric,
                                              "since": since})
        rows = await cur.fetchall()
        if not rows:
            if required:
                raise AltDataError(f"alternative data {ref.key}: no points stored since {since.isoformat()} "
                                   f"(is a Collector of provider {ref.provider} following topic {ref.topic!r}?)")
            continue
        out[ref.key] = series(ref, [int(r[0]) for r in rows], [float(r[1]) for r in rows])
    return out
