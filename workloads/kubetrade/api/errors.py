"""The error body every refusal uses, and the responses each protected route documents.

FastAPI's own errors are ``{"detail": ...}``; ours are the same shape so a client has
one thing to parse, and the OpenAPI document says so for every status a route can return.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Problem(BaseModel):
    """What went wrong, in words a user can act on."""

    detail: str


def _doc(text: str, retry: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"model": Problem, "description": text}
    if retry:
        entry["headers"] = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                            "schema": {"type": "integer"}}}
    return entry


Responses = dict[int | str, dict[str, Any]]

PROTECTED_RESPONSES: Responses = {
    401: _doc("No API key, a malformed, unknown or revoked one."),
    403: _doc("The API key lacks the scope this route needs, or the cluster refuses the API the action."),
    413: _doc("The request body is larger than the API accepts."),
    429: _doc("Rate limit of the key or of the client address exceeded.", retry=True),
    502: _doc("A dependency (risk manager, cluster) answered something the API cannot use."),
    503: _doc("A dependency (database, NATS, risk manager, cluster) is unavailable.", retry=True),
}
"""Added to every route behind :func:`kubetrade.api.security.authenticate`."""

NOT_FOUND: Responses = {404: _doc("No such object.")}
CONFLICT: Responses = {409: _doc("The object exists already, or changed since it was read.")}
UNPROCESSABLE: Responses = {422: _doc("The request is not valid; the detail says which field and why.")}


def responses(*parts: Responses) -> Responses:
    merged: Responses = {}
    for part in parts:
        merged.update(part)
    return merged
