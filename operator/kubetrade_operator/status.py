"""Status patches built from the status models: a reconciler's fields are checked against the same
model the CRD is generated from before they are written (a typo or a wrong type fails here, in a
test, not as a field the API server prunes)."""

from __future__ import annotations

from typing import Any

from kubetrade.resources import BY_KIND


def typed(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` (camelCase) validated by ``kind``'s status model, dumped as the API server stores them."""
    model = BY_KIND[kind].status_model
    out: dict[str, Any] = model.model_validate(fields).model_dump(by_alias=True, exclude_unset=True, mode="json")
    return out
