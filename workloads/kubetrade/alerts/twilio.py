"""Twilio's Messages API, as the SMS notifier uses it (https://www.twilio.com/docs/sms/api/message-resource).

* send: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, HTTP Basic auth (the
  Account SID and Auth Token, or an API key's SID and secret), form fields ``To``,
  ``From`` (or ``MessagingServiceSid`` for a sender ``MG...``) and ``Body``; 201 and the
  Message (``sid``, ``status``) on success, an error object (``code``, ``message``,
  ``more_info``, ``status``) otherwise.
* look up: ``GET .../Messages.json?To=&From=&PageSize=`` (newest first), to find a message
  an earlier attempt may have sent before its answer was lost.

:meth:`TwilioClient.send` classifies the answer: sent; retry (429 Too Many Requests - Twilio
says never processed, safe to retry - honouring ``Retry-After``; 5xx; no answer), with
``ambiguous`` when the request may have been processed; or failed for good (any other
4xx: a wrong credential, a bad number), with Twilio's code and message.  Credentials
never appear in a result, a log line or an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx

DEFAULT_API_URL = "https://api.twilio.com"


@dataclass(frozen=True)
class SendResult:
    outcome: Literal["sent", "retry", "failed"]
    sid: str | None = None
    reason: str = ""
    retry_after: float | None = None
    """Seconds the provider asked to wait (Retry-After), if it did."""
    ambiguous: bool = False
    """The request may have been processed: look the message up before sending it again."""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # the HTTP-date form
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _reason(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP {resp.status_code}: {resp.text.strip()[:200]}"
    if isinstance(body, dict) and "code" in body:
        return f"HTTP {resp.status_code}: Twilio error {body.get('code')}: {str(body.get('message', ''))[:200]}"
    return f"HTTP {resp.status_code}: {str(body)[:200]}"


class TwilioClient:
    def __init__(self, account_sid: str, auth_token: str, sender: str, *, api_url: str = DEFAULT_API_URL,
                 username: str | None = None, timeout: float = 10.0) -> None:
        self.account_sid = account_sid
        self._auth = (username or account_sid, auth_token)
        self.sender = sender
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"TwilioClient(account={self.account_sid[:6]}…, api_url={self.api_url!r})"

    @property
    def messages_url(self) -> str:
        return f"{self.api_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def _sender_field(self) -> dict[str, str]:
        return {"MessagingServiceSid": self.sender} if self.sender.startswith("MG") else {"From": self.sender}

    async def send(self, to: str, body: str) -> SendResult:
        form = {"To": to, **self._sender_field(), "Body": body}
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                resp = await client.post(self.messages_url, data=form, auth=self._auth)
        except httpx.ConnectError as exc:
            return SendResult("retry", reason=f"Twilio unreachable: {type(exc).__name__}")
        except httpx.HTTPError as exc:  # sent, perhaps processed, but no answer
            return SendResult("retry", reason=f"no answer from Twilio: {type(exc).__name__}", ambiguous=True)
        if resp.status_code in (200, 201):
            try:
                sid = str(resp.json()["sid"])
            except (ValueError, KeyError, TypeError):
                return SendResult("retry", reason=f"HTTP {resp.status_code} without a message sid", ambiguous=True)
            return SendResult("sent", sid=sid)
        if resp.status_code == 429:
            return SendResult("retry", reason=_reason(resp), retry_after=_retry_after(resp.headers.get("Retry-After")))
        if resp.status_code >= 500:
            return SendResult("retry", reason=_reason(resp), retry_after=_retry_after(resp.headers.get("Retry-After")),
                              ambiguous=True)
        return SendResult("failed", reason=_reason(resp))

    async def find(self, to: str, marker: str) -> str | None:
        """The sid of a message to ``to`` whose body ends with ``marker``, among the newest 50; None if none."""
        params = {"To": to, "PageSize": "50"}
        if not self.sender.startswith("MG"):
            params["From"] = self.sender
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            resp = await client.get(self.messages_url, params=params, auth=self._auth)
        resp.raise_for_status()
        body: Any = resp.json()
        for message in body.get("messages", []) if isinstance(body, dict) else []:
            if str(message.get("body", "")).endswith(marker):
                return str(message["sid"])
        return None
