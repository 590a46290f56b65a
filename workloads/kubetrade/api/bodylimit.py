"""Request bodies over the limit get a JSON 413, before they are parsed.

A declared ``Content-Length`` over the limit is answered at once, without reading a byte.
A body without one (chunked) is counted as it arrives: the read that passes the limit raises
an :class:`HTTPException` (413), which FastAPI's body parsing lets through to its exception
handler, so the answer has the shape of every other refusal (``{"detail": ...}``).
"""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the {limit} bytes this API accepts")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else -1
                if declared < 0 or declared > self.max_bytes:
                    await self._refuse(send, declared)
                    return
                break
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, send: Send, declared: int) -> None:
        status, detail = (
            (413, f"the request body ({declared} bytes) is larger than the {self.max_bytes} bytes this API accepts")
            if declared >= 0 else (400, "Content-Length is not a number")
        )
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
