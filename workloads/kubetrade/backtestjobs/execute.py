"""Run one recorded backtest: the strategy spec as it was asked, candles from the database."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import Any

from kubetrade.backtestjobs import store
from kubetrade.candles import from_arrays
from kubetrade.engine.runs import Costs, backtest
from kubetrade.engine.templates import expand
from kubetrade.resources.strategy import StrategySpec
from kubetrade.storage import history
from kubetrade.storage.candles import SeriesKey

log = logging.getLogger("kubetrade.backtestjobs")

MAX_BARS = 2_000_000


async def _candles(conn: Any, spec: StrategySpec, symbol: str, start: datetime, end: datetime) -> Any:
    rows, _ = await history.page(conn, SeriesKey(spec.exchange, symbol, spec.timeframe), start, end, MAX_BARS)
    if len(rows) < 2:
        raise ValueError(f"no candles stored for {spec.exchange} {symbol} {spec.timeframe} "
                         f"between {start.isoformat()} and {end.isoformat()}")
    cols = list(zip(*rows, strict=True))
    return from_arrays(*cols, symbol=symbol, timeframe=spec.timeframe, check=False)


def _compute(spec: StrategySpec, series: dict[str, Any], cash: float) -> dict[str, Any]:
    genome = spec.genome or expand(spec.template or "", spec.parameters)
    costs = Costs(fee=spec.execution.fee_rate, slippage=spec.execution.slippage_bps / 10_000, init_cash=cash)
    out = {}
    for symbol, candles in series.items():
        r = backtest(genome, candles, costs, market=spec.market)
        out[symbol] = {**r.metrics.as_dict(), "first": int(candles.time[0]), "last": int(candles.time[-1])}
    return out


async def execute(conn: Any, backtest_id: uuid.UUID) -> str:
    """Run a pending backtest to its end; returns the final status.  Errors are recorded, not raised."""
    row = await store.start(conn, backtest_id)
    if row is None:
        return "skipped"
    request = row["request"]
    try:
        spec = StrategySpec.model_validate(request["spec"])
        start, end = datetime.fromisoformat(request["start"]), datetime.fromisoformat(request["end"])
        series = {s: await _candles(conn, spec, s, start, end) for s in spec.symbols}
        result = await asyncio.to_thread(_compute, spec, series, float(request["initialCash"]))
    except Exception as exc:  # a backtest that cannot run is a result too: say why
        log.warning("backtest failed", extra={"backtest": str(backtest_id), "error": str(exc)})
        await store.finish(conn, backtest_id, error=f"{type(exc).__name__}: {exc}")
        return "failed"
    await store.finish(conn, backtest_id, result=result)
    return "succeeded"
