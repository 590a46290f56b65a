"""``/api/v1/alerts/receiver/*``: where Alertmanager's webhooks deliver (:mod:`kubetrade.alerts.receiver`).

Alertmanager is not a user with an API key: it presents one bearer token, the Secret both
it (``http_config.authorization.credentials_file``) and the API
(``KUBETRADE_ALERT_RECEIVER_TOKEN``) read.  These routes take that token and nothing else,
and no API key takes them; an API without a token configured refuses every webhook (503),
so an Alertmanager pointed at it retries and loses nothing.

* ``POST /record``: every alert Alertmanager handles, for the history;
* ``POST /copy/{channel}``: Alertmanager notified ``channel`` (its own integration) of these alerts;
* ``POST /sms``: send these alerts by SMS (the notifier queues them and answers at once).
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kubetrade.alerts import receiver
from kubetrade.alerts.conditions import Channel
from kubetrade.api.deps import Connection
from kubetrade.resources.base import Model

log = logging.getLogger("kubetrade.api.alertreceiver")

_bearer = HTTPBearer(auto_error=False, description="The Alertmanager receiver token (not an API key).")


async def alertmanager_token(
    request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Only Alertmanager, with the receiver token, may deliver here."""
    expected: str = request.app.state.settings.alert_receiver_token
    if not expected:
        raise HTTPException(503, "this API has no Alertmanager receiver token (KUBETRADE_ALERT_RECEIVER_TOKEN)",
                            headers={"Retry-After": "30"})
    if bearer is None or not hmac.compare_digest(bearer.credentials.encode(), expected.encode()):
        log.warning("alertmanager webhook refused", extra={"reason": "token", "route": request.url.path})
        raise HTTPException(401, "a valid Alertmanager receiver token is required",
                            headers={"WWW-Authenticate": "Bearer"})


router = APIRouter(prefix="/api/v1/alerts/receiver", tags=["alert receiver"],
                   dependencies=[Depends(alertmanager_token)],
                   responses={400: {"description": "The body cannot be read (not UTF-8 JSON)"},
                              401: {"description": "No valid Alertmanager receiver token"},
                              413: {"description": "The request body is larger than the API accepts"},
                              503: {"description": "This API has no receiver token configured (Alertmanager retries)"}})


class Received(Model):
    """What kubetrade made of a webhook."""

    recorded: int = 0
    """History rows or deliveries added (0: already known, e.g. Alertmanager's retry)."""
    queued: list[int] = []
    """SMS queued (delivery ids)."""


@router.post("/record", response_model=Received, summary="Alertmanager: every alert, for the history")
async def record(body: receiver.Notification, conn: Connection) -> Received:
    return Received(recorded=await receiver.record(conn, body))


@router.post("/copy/{channel}", response_model=Received, summary="Alertmanager: a channel was notified")
async def copy(channel: Channel, body: receiver.Notification, conn: Connection) -> Received:
    got = await receiver.copy(conn, channel, body)
    return Received(recorded=0 if got is None else 1)


@router.post("/sms", response_model=Received, summary="Alertmanager: send these alerts by SMS")
async def sms(body: receiver.Notification, request: Request, conn: Connection) -> Any:
    settings = request.app.state.settings
    # queued even when SMS is not configured: the notifier records why it is not sent, and a person can retry
    ids = await receiver.enqueue_sms(conn, body, settings.sms_to or [""])
    return Received(recorded=len(ids), queued=ids)
