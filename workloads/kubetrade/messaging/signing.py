"""Orders the executor accepts carry the risk manager's signature.

NATS permissions let only the risk manager (and an executor, for the closing orders of a
deleted strategy) publish on ``orders.<environment>.submit``; this is the second lock, for a
NATS that is not the chart's (an external server with broader permissions, an operator
account that manages streams): every approved order carries an HMAC-SHA256 of its subject,
message id and body under a key that only the risk manager and the executors hold
(``KUBETRADE_ORDER_SIGNING_KEY``, from a Secret).  An executor with a key refuses (and
dead-letters) any order without a valid signature.  A replayed signed order changes nothing:
the executor records each client order id once.
"""

from __future__ import annotations

import hashlib
import hmac
import os

HEADER = "Kubetrade-Signature"
ENV = "KUBETRADE_ORDER_SIGNING_KEY"


def key_from_env() -> bytes | None:
    """The signing key, or None where none is configured (then orders are neither signed nor checked)."""
    value = os.environ.get(ENV, "")
    return value.encode() if value else None


def signature(key: bytes, subject: str, msg_id: str, data: bytes) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in (subject.encode(), msg_id.encode(), data):
        mac.update(len(part).to_bytes(8, "big"))
        mac.update(part)
    return mac.hexdigest()


def headers(key: bytes | None, subject: str, msg_id: str, data: bytes) -> dict[str, str]:
    """The headers of an order message: its de-duplication id and, with a key, its signature."""
    out = {"Nats-Msg-Id": msg_id}
    if key is not None:
        out[HEADER] = signature(key, subject, msg_id, data)
    return out


def verified(key: bytes | None, subject: str, msg_headers: dict[str, str] | None, data: bytes) -> bool:
    """Whether the message may be executed: always without a key, else only with its valid signature."""
    if key is None:
        return True
    given = (msg_headers or {}).get(HEADER, "")
    msg_id = (msg_headers or {}).get("Nats-Msg-Id", "")
    return hmac.compare_digest(given, signature(key, subject, msg_id, data))
