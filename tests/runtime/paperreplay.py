"""Replaying real candles through a real runner process, risk manager and paper executor (the parity harness)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

import psycopg

from kubetrade.candles import Candles
from kubetrade.ledger import allocation
from kubetrade.localstack.servers import free_port
from kubetrade.localstack.servers.processes import ManagedProcess
from kubetrade.localstack.services import (
    kubetrade_argv,
    publish_policy,
    risk_metrics,
    start_executor,
    start_risk_manager,
)
from kubetrade.messaging import codec, subjects
from kubetrade.messaging.schemas import Candle, StatusReport
from kubetrade.storage.candles import SeriesKey, ingest
from tests.runtime.conftest import eventually

PERMISSIVE = {
    "strategyLimits": {"maxPositionPct": 1.0, "maxRiskPerTradePct": 1.0},
    "portfolioLimits": {"maxDrawdownPct": 1.0, "dailyLossLimitPct": 1.0, "maxSymbolExposurePct": 1.0,
                        "maxGrossExposurePct": 1.0, "maxCorrelation": 1.0, "varLimitPct": 1.0, "cvarLimitPct": 1.0},
    "stopLoss": {"defaultStopPct": 0.9, "trailing": False, "enforceWithoutRunner": False},
    "circuitBreaker": {"priceAnomalyPct": 1.0, "staleDataSeconds": 86400},
}


async def replay(tmp_path: Any, nats_url: str, dsn: str, rnc: Any, conn: Any, doc: dict[str, Any], candles: Candles,
                 warmup: int, live: int, *, watch: bool = False) -> list[StatusReport]:
    """Store ``warmup`` bars, start the runner on the Strategy ``doc`` and publish the next ``live`` bars one by
    one, each after the runner reported the previous one; the runner's status reports.

    Bars come as fast as the runner takes them, so an exit often follows its entry by a bar or two, decided
    while the risk manager's book is between two reads of the ledger: that is the race this harness once had
    to wait out (a ``settle`` option, until the book counted what the runner held) and now does not.
    """
    name = doc["metadata"]["name"]
    symbol, timeframe = doc["spec"]["symbols"][0], doc["spec"]["timeframe"]
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as plain:
        await ingest(plain, SeriesKey("binance", symbol, timeframe), candles.slice(0, warmup))
    await allocation.allocate(conn, "paper", name, doc["spec"]["capital"]["amount"], risk_policy="loose")
    policy = json.loads(json.dumps(PERMISSIVE))
    policy["stopLoss"]["enforceWithoutRunner"] = watch  # the risk manager's own stop watch, racing the runner
    await publish_policy(rnc, "default", "loose", policy)
    risk = start_risk_manager(nats_url, dsn, tmp_path, refresh_seconds=0.2)
    executor = start_executor(nats_url, dsn, tmp_path)
    config = tmp_path / "strategy.json"
    config.write_text(json.dumps(doc))
    runner = ManagedProcess("runner", kubetrade_argv("runner", "--config", str(config), "--port", str(free_port()),
                                                     "--status-min-interval", "0"),
                            tmp_path / "runner.log", env={**os.environ, "KUBETRADE_NATS_URL": nats_url,
                                                          "KUBETRADE_DATABASE_URL": dsn,
                                                          "KUBETRADE_ENVIRONMENT": "paper"})
    reports: list[StatusReport] = []

    async def on_status(msg: Any) -> None:
        reports.append(codec.decode(StatusReport, msg.data))

    await rnc.subscribe(subjects.status_report("Strategy", "default", name), cb=on_status)
    try:
        async def risk_knows() -> bool:
            reply = await risk_metrics(rnc)
            return any(name in p.strategies for p in reply.portfolios)

        await eventually(risk_knows)
        runner.start()
        runner.wait_ready(lambda: "runner started" in runner.log_path.read_text(), 120)
        # the runner logs its start only once the server has its subscriptions (it flushes first)
        js = rnc.jetstream()
        bar = candles.bar_ms
        for i in range(warmup, warmup + live):
            c = Candle(exchange="binance", symbol=symbol, timeframe=timeframe, time=int(candles.time[i]),
                       open=candles.open[i], high=candles.high[i], low=candles.low[i], close=candles.close[i],
                       volume=candles.volume[i])
            await js.publish(subjects.candle("binance", symbol, timeframe), codec.encode(c),
                             headers={"Nats-Msg-Id": c.msg_id()})
            close = (c.time + bar) // 1000

            async def processed(close: int = close) -> bool:
                return any(r.status.get("lastSignalTime") and
                           int(datetime.fromisoformat(str(r.status["lastSignalTime"]).replace("Z", "+00:00"))
                               .timestamp()) >= close for r in reports[-3:])
            await eventually(processed, timeout=60, interval=0.01)
        runner.stop(timeout=30)
        assert runner.proc is not None and runner.proc.returncode == 0, runner.log_tail()
    finally:
        runner.stop()
        executor.stop()
        risk.stop()
    return reports
