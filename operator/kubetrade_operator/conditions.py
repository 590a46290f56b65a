"""Status conditions shaped like ``metav1.Condition``.

``lastTransitionTime`` changes only when a condition's status changes, so that a person
reading ``kubectl describe`` sees since when something has been true, not when the
operator last looked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


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


def parse_spec(model: Any, body: dict[str, Any], problems_of: Any) -> tuple[Any, list[str]]:
    """(the typed spec or None, what is wrong with it): schema errors and semantic problems alike."""
    from pydantic import ValidationError

    try:
        spec = model.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        return None, [f"invalid spec: {exc.errors()[0]['msg']}"]
    return spec, list(problems_of(spec))


def invalid_spec(
    conditions: list[dict[str, Any]] | None, problems: list[str], generation: int
) -> tuple[str, list[dict[str, Any]]]:
    """The message and conditions of a resource whose spec cannot work: not Ready, Degraded."""
    message = "; ".join(problems)
    conds = set_condition(conditions, "Ready", False, "InvalidSpec", message, generation)
    return message, set_condition(conds, "Degraded", True, "InvalidSpec", message, generation)
