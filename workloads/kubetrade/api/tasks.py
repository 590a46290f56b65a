"""Work the API process does besides answering requests, started and stopped with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from kubetrade.alerts.dispatcher import Dispatcher
from kubetrade.alerts.evaluator import Evaluator
from kubetrade.alerts.sms import SmsSender
from kubetrade.alerts.twilio import TwilioClient
from kubetrade.api.console.rejections import RejectionLog

log = logging.getLogger("kubetrade.api")


def sms_client(settings: Any) -> Any:
    """The Twilio client of the SMS notifier, or None when SMS is not configured."""
    if not settings.sms_configured:
        return None
    return TwilioClient(settings.twilio_account_sid, settings.twilio_auth_token, settings.sms_from,
                        api_url=settings.twilio_api_url, username=settings.twilio_api_key_sid or None)


@contextlib.asynccontextmanager
async def background_tasks(app_state: Any, settings: Any) -> AsyncIterator[None]:
    """The console's record of the risk manager's refusals (when there is NATS), and the alert loops (each
    one leader among the replicas, when there is a database).

    The evaluator needs NATS (it follows status reports and prices); the dispatcher posts the
    outbox to Alertmanager when one is configured (and follows platform events on NATS); the
    SMS notifier sends what Alertmanager's SMS webhook queued.
    """
    tasks: list[asyncio.Task[Any]] = []
    app_state.rejections = RejectionLog()
    if app_state.nats is not None:
        tasks.append(asyncio.create_task(app_state.rejections.follow(app_state.nats), name="risk-rejections"))
    pool = app_state.db_pool
    deliver = bool(settings.alertmanager_urls)
    if settings.alert_evaluation and pool is not None:
        if app_state.nats is not None:
            app_state.alert_evaluator = Evaluator(pool, app_state.nats, settings.database_url, deliver=deliver,
                                                  limits=settings.alert_channel_limits)
            tasks.append(asyncio.create_task(app_state.alert_evaluator.run(), name="alert-evaluator"))
        if deliver:
            app_state.alert_dispatcher = Dispatcher(pool, app_state.nats, settings.database_url,
                                                    settings.alertmanager_urls)
            tasks.append(asyncio.create_task(app_state.alert_dispatcher.run(), name="alert-dispatcher"))
        app_state.sms_sender = SmsSender(pool, settings.database_url, sms_client(settings),
                                         max_attempts=settings.sms_max_attempts,
                                         limit_per_hour=settings.alert_channel_limits.get("sms"), deliver=deliver)
        tasks.append(asyncio.create_task(app_state.sms_sender.run(), name="sms-sender"))
    try:
        yield
    finally:
        for task in [*tasks, *(getattr(app_state, "backtest_tasks", None) or ())]:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
