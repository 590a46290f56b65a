"""Status conditions shaped like ``metav1.Condition``.

``lastTransitionTime`` changes only when a condition's status changes, so that a person
reading ``kubectl describe`` sees since when something has been true, not when the
operator last looked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubetrade.validation.manifests import parse_spec as judge_spec
from kubetrade_operator import kube


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict[str, Any]] | None,
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    generation: int | None,
    now: str | None = None,
) -> list[dict[str, Any]]:
    """A new list with ``type_`` set; other conditions are kept as they are."""
    value = status if isinstance(status, str) else ("True" if status else "False")
    existing = {c.get("type"): c for c in (conditions or [])}
    previous = existing.get(type_)
    transition = (
        previous["lastTransitionTime"]
        if previous and previous.get("status") == value and previous.get("lastTransitionTime")
        else (now or now_iso())
    )
    updated = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": transition,
    }
    if generation is not None:
        updated["observedGeneration"] = generation
    existing[type_] = updated
    return list(existing.values())


def condition_status(conditions: list[dict[str, Any]] | None, type_: str) -> str | None:
    for c in conditions or []:
        if c.get("type") == type_:
            return str(c.get("status"))
    return None


def parse_spec(kind: str, body: dict[str, Any]) -> tuple[Any, list[str]]:
    """(the typed spec or None, what is wrong with it): the one judgement the webhook makes too."""

    return judge_spec(kind, body.get("spec") or {})


def invalid_spec(
    conditions: list[dict[str, Any]] | None, problems: list[str], generation: int, reason: str = "InvalidSpec"
) -> tuple[str, list[dict[str, Any]]]:
    """The message and conditions of a resource whose spec cannot work: not Ready, Degraded."""
    message = "; ".join(problems)
    conds = set_condition(conditions, "Ready", False, reason, message, generation)
    return message, set_condition(conds, "Degraded", True, reason, message, generation)


def newly_refused(
    conditions: list[dict[str, Any]] | None, reason: str, message: str, type_: str = "Ready"
) -> bool:
    """Whether the condition does not already say this (so an Event is due: once per change, not per resync)."""
    for c in conditions or []:
        if c.get("type") == type_:
            bad = "True" if type_ == "Degraded" else "False"
            return not (c.get("status") == bad and c.get("reason") == reason and c.get("message") == message[:32768])
    return True


def warn(body: dict[str, Any], reason: str, message: str) -> None:
    """A Warning Event on the resource (the audit trail of every refusal)."""
    import kopf

    kopf.event(kube.as_body(body), type="Warning", reason=reason, message=message[:1024])


def refusal(exc: Exception) -> str | None:
    """The API server's reason when it refused a child for good (invalid, forbidden), else None.

    A refusal does not go away by retrying: it becomes a condition and an Event, and the next
    resync (or an edit) tries again.  Timeouts, conflicts, throttling and server errors are
    transient: None, and the caller lets kopf retry.
    """
    import json

    from kubernetes.client.exceptions import ApiException

    if not isinstance(exc, ApiException) or exc.status not in (400, 403, 404, 405, 413, 415, 422):
        return None
    try:
        message = json.loads(exc.body or "{}").get("message") or exc.reason
    except (ValueError, AttributeError):
        message = exc.reason
    return f"{exc.status} {message}"[:2000]
