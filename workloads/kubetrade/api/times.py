"""Times the API takes, in queries and bodies: one rule, and the OpenAPI document says it.

An ISO 8601 time with its offset (``2026-01-01T00:00:00Z``), or an integer of UTC **milliseconds**
(``1767225600000``; negative before 1970).  Anything else is a 422: a time without an offset (UTC or
local time would be a guess), a boolean, a fraction, an exponent, an integer out of range.
(Pydantic alone takes a number as seconds or as milliseconds by its size, and a boolean as 0 or 1,
while the schema said "a date-time string": a client could not tell what ``since=1700000000``
meant, and the API fuzz sent such values and had them accepted.)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

_INTEGER = re.compile(r"[+-]?[0-9]{1,16}")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LOW, _HIGH = datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)


def _from_ms(ms: int) -> datetime:
    try:
        when = _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        when = None
    if when is None or not _LOW <= when <= _HIGH:
        raise ValueError(f"{ms} milliseconds is out of range for a time (years 1 to 9999)")
    return when


def _parse(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a time is ISO 8601 or an integer of UTC milliseconds, not a boolean")
    if isinstance(value, int):
        return _from_ms(value)
    if isinstance(value, float):
        raise ValueError("a time is ISO 8601 or an integer of UTC milliseconds, not a fraction")
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return _from_ms(int(text))
        if _NUMBER.fullmatch(text):
            raise ValueError(f"{text[:40]!r} is not a time: ISO 8601 or an integer of UTC milliseconds")
    return value  # an ISO 8601 string (or a datetime): pydantic parses it; one without an offset is refused below


def _zoned(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a time needs a time zone (e.g. 2024-01-01T00:00:00Z) or an integer of UTC milliseconds")
    return value


ApiTime = Annotated[
    datetime,
    BeforeValidator(_parse),
    AfterValidator(_zoned),
    WithJsonSchema({
        "anyOf": [
            {"type": "string", "format": "date-time"},
            {"type": "integer", "minimum": -62135510400000, "maximum": 253402128000000,
             "description": "UTC milliseconds"},
        ],
        "description": "ISO 8601 time with its offset (e.g. 2026-01-01T00:00:00Z) or an integer of UTC milliseconds",
    }),
]
"""A time in a query or a body: ISO 8601, or an integer of UTC milliseconds."""

__all__ = ["ApiTime"]
