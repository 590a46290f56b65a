"""Who is looking at the console: a session opened with an API key, and the CSRF token of its forms.

A person pastes an API key into the login form once (a POST body: never a URL, never a log
line; the key is checked exactly as a request's ``X-API-Key`` is, by
:func:`kubetrade.api.security.authenticate_key`).  The browser then holds only a random
256-bit session token in an HTTP-only, ``SameSite=Strict`` cookie scoped to ``/console``;
the database holds the token's SHA-256, the key's public id and the session's CSRF token
(table ``console_sessions``), so every API replica knows every session.  On each request the
key behind the session is looked up again (:func:`kubetrade.api.security.principal_of`): a
revoked key ends its sessions at once, and its scopes are what the console may do.

Every state-changing form carries the session's CSRF token (a hidden field, or the
``X-CSRF-Token`` header htmx sends), compared in constant time; the login form, which has no
session yet, uses a double-submit token (a cookie and a field that must match).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request
from starlette.responses import Response

from kubetrade.api import security
from kubetrade.api.security import Principal

COOKIE = "kt_session"
LOGIN_COOKIE = "kt_login"
PATH = "/console"
LIFETIME = timedelta(hours=12)
MAX_FORM_BYTES = 64 * 1024


class LoginRequired(Exception):
    """No valid session: a page answers with a redirect to the login form, a fragment with 401."""


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _pool(request: Request) -> Any:
    pool = getattr(request.app.state, "db_pool", None)
    if pool is None:
        raise HTTPException(503, "the console needs the API's database (sessions are kept there)")
    return pool


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: the key's principal and the session's CSRF token."""

    principal: Principal
    csrf: str
    app: Any = field(repr=False)

    def can(self, method: str, path: str) -> bool:
        """Whether the API operation a control stands for would accept this viewer's key."""
        return security.allows(self.app, self.principal, method, path)

    def require(self, method: str, path: str) -> None:
        if not self.can(method, path):
            needed = "the scope this action needs"
            raise HTTPException(403, f"this key ({self.principal.name}) lacks {needed}: {method} {path}")


async def open_session(request: Request, principal: Principal) -> tuple[str, datetime]:
    """Store a new session for an authenticated key; returns the token for the cookie and its expiry."""
    token = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + LIFETIME
    async with _pool(request).connection() as conn:
        await conn.execute("DELETE FROM console_sessions WHERE expires_at < now()")
        await conn.execute(
            "INSERT INTO console_sessions (token_hash, key_id, csrf, expires_at) VALUES (%s, %s, %s, %s)",
            (_hash(token), principal.key_id, secrets.token_urlsafe(32), expires),
        )
    return token, expires


async def close_session(request: Request) -> None:
    token = request.cookies.get(COOKIE)
    if token:
        async with _pool(request).connection() as conn:
            await conn.execute("DELETE FROM console_sessions WHERE token_hash = %s", (_hash(token),))


async def viewer(request: Request) -> Viewer:
    """The session's viewer, or :class:`LoginRequired`."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 100:
        raise LoginRequired
    async with _pool(request).connection() as conn:
        cur = await conn.execute(
            "SELECT key_id, csrf FROM console_sessions WHERE token_hash = %s AND expires_at > now()", (_hash(token),)
        )
        row = await cur.fetchone()
    if row is None:
        raise LoginRequired
    key_id, csrf = row
    try:
        principal = await security.principal_of(request, key_id)
    except HTTPException as exc:
        if exc.status_code == 401:
            raise LoginRequired from exc
        raise
    request.state.principal = principal  # the access log names the key by its public id
    return Viewer(principal, csrf, request.app)


def set_session_cookie(request: Request, response: Response, token: str, expires: datetime) -> None:
    response.set_cookie(COOKIE, token, expires=expires, path=PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")


class Form:
    """A url-encoded form body, read with a size limit (no multipart: the console sends none)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def get(self, name: str, default: str = "") -> str:
        for k, v in reversed(self.pairs):
            if k == name:
                return v
        return default

    def getlist(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]

    def has(self, name: str) -> bool:
        return any(k == name for k, _ in self.pairs)


async def read_form(request: Request) -> Form:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, f"form larger than {MAX_FORM_BYTES} bytes")
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise HTTPException(400, "form is not UTF-8") from exc
    return Form(parse_qsl(text, keep_blank_values=True, max_num_fields=500))


def check_csrf(request: Request, presented: str, expected: str) -> None:
    token = request.headers.get("x-csrf-token") or presented
    if not token or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(403, "the form's CSRF token is missing or wrong: reload the page and try again")


async def submitted(request: Request) -> tuple[Viewer, Form]:
    """A state-changing form from a logged-in viewer, its CSRF token checked."""
    v = await viewer(request)
    form = await read_form(request)
    check_csrf(request, form.get("csrf"), v.csrf)
    return v, form


def new_login_token() -> str:
    return secrets.token_urlsafe(24)
