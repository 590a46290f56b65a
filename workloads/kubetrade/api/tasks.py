"""Work the API process does besides answering requests, started and stopped with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

log = logging.getLogger("kubetrade.api")


@contextlib.asynccontextmanager
async def background_tasks(app_state: Any, settings: Any) -> AsyncIterator[None]:
    """The alert evaluator (one leader among the replicas), when there is a database and NATS; the
    console's record of the risk manager's refusals, when there is NATS."""
    tasks: list[asyncio.Task[Any]] = []
    from kubetrade.api.console.rejections import RejectionLog

    app_state.rejections = RejectionLog()
    if app_state.nats is not None:
        tasks.append(asyncio.create_task(app_state.rejections.follow(app_state.nats), name="risk-rejections"))
    if settings.alert_evaluation and app_state.db_pool is not None and app_state.nats is not None:
        from kubetrade.alerts.evaluator import Evaluator

        app_state.alert_evaluator = Evaluator(app_state.db_pool, app_state.nats, settings.database_url)
        tasks.append(asyncio.create_task(app_state.alert_evaluator.run(), name="alert-evaluator"))
    try:
        yield
    finally:
        for task in [*tasks, *(getattr(app_state, "backtest_tasks", None) or ())]:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
