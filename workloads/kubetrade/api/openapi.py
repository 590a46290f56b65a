"""The OpenAPI document, finished so it describes what the API really does.

- every protected operation says which API-key scope it needs (``x-required-scopes``,
  from :func:`kubetrade.api.security.required_scopes`, the function that enforces it);
- 422 has two shapes: FastAPI's list of field errors, or one sentence from a check the
  schema cannot express (a genome that does not compile, a start after the end);
- any operation may answer 404 (an object it names is missing), one with a body 400 (not JSON).

Done here, once, so routes added by any area are described the same way.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from kubetrade.api.security import is_protected, operations, required_scopes

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_PROBLEM_SCHEMA = {"title": "Problem", "type": "object", "required": ["detail"],
                   "properties": {"detail": {"type": "string", "title": "Detail"}}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _finish(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    if "422" in responses:
        shapes = [_PROBLEM, {"$ref": "#/components/schemas/HTTPValidationError"}]
        responses["422"] = {"description": "The request is not valid; the detail says which field and why.",
                            "content": _json({"anyOf": shapes})}
    # A path names an object, and so may a body (the Goal of a sizing request): either may not exist.
    responses.setdefault("404", {"description": "No such object, or an object the request names does not exist.",
                                 "content": _json(_PROBLEM)})
    if "requestBody" in operation:
        responses.setdefault("400", {"description": "The body is not JSON.", "content": _json(_PROBLEM)})


def document_scopes(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        doc.setdefault("components", {}).setdefault("schemas", {}).setdefault("Problem", _PROBLEM_SCHEMA)
        doc["components"]["schemas"].setdefault("HTTPValidationError", {
            "title": "HTTPValidationError", "type": "object",
            "properties": {"detail": {"type": "array", "items": {"type": "object"}}}})
        for method, path, route in operations(app):
            operation = doc["paths"].get(path, {}).get(method.lower())
            if operation is None:
                continue
            if is_protected(route):
                scopes = sorted(required_scopes(route, method))
                operation["x-required-scopes"] = scopes
                note = f"Needs an API key with scope `{'`, `'.join(scopes)}`."
                operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
            if is_protected(route) or path.startswith("/api/"):  # the receiver routes too (Alertmanager's token)
                _finish(operation)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
