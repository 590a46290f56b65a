"""Refuse a scalar query parameter given more than once (``?limit=5&limit=9``).

Starlette keeps every value and FastAPI quietly takes the last, so a client (or a proxy
that appends parameters) can believe one value applies while another does.  A parameter
that takes one value and arrives several times is a 422 that names it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, get_origin

from fastapi import HTTPException, Request

_SEQUENCES = (list, tuple, set, frozenset)


def _query_fields(dependant: Any) -> list[Any]:
    """The query parameters of a route and of every dependency it has."""
    fields = list(dependant.query_params)
    for sub in dependant.dependencies:
        fields += _query_fields(sub)
    return fields


def _takes_many(field: Any) -> bool:
    annotation = field.field_info.annotation
    origins = {get_origin(annotation)} | {get_origin(a) for a in getattr(annotation, "__args__", ())}
    return any(o in _SEQUENCES for o in origins) or annotation in _SEQUENCES


async def reject_repeated_scalars(request: Request) -> None:
    counts = Counter(key for key, _ in request.query_params.multi_items())
    repeated = [key for key, n in counts.items() if n > 1]
    route = request.scope.get("route")
    if not repeated or route is None:
        return
    many = {f.alias for f in _query_fields(route.dependant) if _takes_many(f)}
    for key in repeated:
        if key not in many:
            raise HTTPException(422, f"query parameter {key!r} was given {counts[key]} times; it takes one value")
