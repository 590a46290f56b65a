"""Encoding and decoding of messages, with dead-lettering of what cannot be parsed.

A consumer never crashes on a bad message: :func:`decode` raises :class:`BadMessage`
with the reason, and :func:`dead_letter` republishes the raw bytes to ``dlq.<subject>``
with the reason in a header, so nothing is lost and someone can look at it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kubetrade.messaging import subjects

M = TypeVar("M", bound=BaseModel)


class BadMessage(ValueError):
    """A payload that does not match its schema."""


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json(by_alias=True, exclude_none=True).encode()


def decode(model: type[M], data: bytes) -> M:
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise BadMessage(f"{model.__name__}: {where}: {first['msg']} ({exc.error_count()} error(s))") from exc


async def dead_letter(nc: Any, subject: str, data: bytes, reason: str, headers: dict[str, str] | None = None) -> None:
    """Publish an unparseable message to the dead-letter subject with the reason attached."""
    hdrs = dict(headers or {})
    hdrs["Kubetrade-Dlq-Reason"] = reason[:1000]
    hdrs["Kubetrade-Dlq-Subject"] = subject
    js = nc.jetstream()
    await js.publish(subjects.dead_letter(subject), data, headers=hdrs)
