"""Who may call what: API-key authentication, scopes per route, rate limits per key and address.

Every feature router is included by :func:`kubetrade.api.app.create_app` with
:func:`authenticate` as a router-level dependency, so a route another engineer adds is
protected without any edit to it.  The scope a route needs is decided in one place,
:func:`required_scopes`, in this order:

1. an explicit declaration on the route or its router: ``dependencies=[require("admin")]``;
2. :data:`SCOPE_POLICY`, for routes whose method does not tell (a POST that only reads);
3. the default: ``/api/v1/admin/...`` needs ``admin``, GET/HEAD need ``read``, anything
   that changes state needs ``trade``.

Scopes are independent (``admin`` does not imply ``read``), so a key carries exactly the
powers it was given.  Failed attempts are logged and counted with the key's public id at
most, never the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter

from kubetrade.api import keys
from kubetrade.api.keys import Scope, StoredKey
from kubetrade.api.ratelimit import DB_TIMEOUT, Limiter

log = logging.getLogger("kubetrade.api.security")

AUTH_FAILURES = Counter("kubetrade_api_auth_failures_total", "Refused API requests, by reason.", ["reason"])
RATE_LIMITED = Counter("kubetrade_api_rate_limited_total", "Requests refused by a rate limit.", ["bucket"])

SCOPE_POLICY: dict[tuple[str, str], Scope] = {
    ("POST", "/api/v1/risk/check"): "read",
    ("POST", "/api/v1/position-sizing/calculate"): "read",
    ("POST", "/api/v1/indicators"): "read",
    ("PUT", "/api/v1/risk/limits"): "admin",
    ("POST", "/api/v1/risk/breaker/reset"): "admin",
}
"""Routes whose HTTP method does not say what they need, keyed by (method, path template)."""

KEY_CACHE_SECONDS = 30.0
"""How long a verified key is trusted without asking the database; revocations evict at once (NOTIFY)."""

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key: kt_<id>_<secret>.")
_bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token.")
_EXPLICIT: dict[Callable[..., Any], frozenset[Scope]] = {}
_ROUTE_SCOPES: dict[tuple[str, str], frozenset[Scope]] = {}


@dataclass(frozen=True)
class Principal:
    """The caller, once authenticated."""

    key_id: str
    name: str
    scopes: frozenset[Scope]


class KeyCache:
    """Verified keys, per process; emptied by NOTIFY on revocation and on every reconnect."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, StoredKey]] = {}

    def get(self, key_id: str) -> StoredKey | None:
        entry = self._entries.get(key_id)
        if entry is None or time.monotonic() - entry[0] > KEY_CACHE_SECONDS:
            return None
        return entry[1]

    def put(self, key: StoredKey) -> None:
        self._entries[key.id] = (time.monotonic(), key)

    def evict(self, key_id: str) -> None:
        self._entries.pop(key_id, None)

    def clear(self) -> None:
        self._entries.clear()

    async def listen(self, dsn: str) -> None:
        """Follow revocations from any process (API replicas, the CLI) until cancelled."""
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {keys.NOTIFY_CHANNEL}")
                    self.clear()  # anything revoked while we were not listening
                    async for note in conn.notifies():
                        self.evict(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("api key listener reconnecting", extra={"error": type(exc).__name__})
                self.clear()
                await asyncio.sleep(1.0)


@dataclass
class Gate:
    """What :func:`authenticate` needs, kept on ``app.state.gate`` for the app's lifetime."""

    pool: Any
    limiter: Limiter
    cache: KeyCache
    pepper: str
    per_key: int
    per_address: int


def require(*scopes: Scope) -> Any:
    """Declare the scopes a route or router needs: ``dependencies=[require("trade")]``."""

    async def declared(request: Request) -> None:
        """A marker; the check itself is :func:`authenticate`'s, which finds this declaration."""

    _EXPLICIT[declared] = frozenset(scopes)
    return Depends(declared)


def _walk(dependant: Dependant | None) -> Iterator[Dependant]:
    for dep in dependant.dependencies if dependant is not None else ():
        yield dep
        yield from _walk(dep)


def default_scope(method: str, path: str) -> Scope:
    if path.startswith("/api/v1/admin"):
        return "admin"
    if (method, path) in SCOPE_POLICY:
        return SCOPE_POLICY[(method, path)]
    return "read" if method in ("GET", "HEAD") else "trade"


def required_scopes(route: Any, method: str) -> frozenset[Scope]:
    """The scopes a caller needs: explicit declaration, else the policy, else the method.

    ``route`` is anything with ``path`` and ``dependant`` (an APIRoute, or the route
    context FastAPI makes of a route in an included router).
    """
    path = getattr(route, "path_format", None) or route.path
    cache_key = (path, method)
    found = _ROUTE_SCOPES.get(cache_key)
    if found is None:
        explicit: set[Scope] = set()
        for dep in _walk(getattr(route, "dependant", None)):
            if dep.call in _EXPLICIT:
                explicit |= _EXPLICIT[dep.call]
        found = frozenset(explicit) if explicit else frozenset({default_scope(method, path)})
        _ROUTE_SCOPES[cache_key] = found
    return found


def is_protected(route: Any) -> bool:
    """Whether the route runs :func:`authenticate` (directly or through its router's inclusion)."""
    return any(dep.call is authenticate for dep in _walk(getattr(route, "dependant", None)))


def operations(app: Any) -> Iterator[tuple[str, str, Any]]:
    """(method, path as documented, route) of every operation, included routers flattened as FastAPI serves them."""
    from fastapi import routing

    for context in routing.iter_route_contexts(app.routes):
        for method in sorted(context.methods or ()):
            yield method, str(context.path_format or context.path), context


def _refuse(status: int, reason: str, detail: str, request: Request, key_id: str | None = None,
            headers: dict[str, str] | None = None) -> HTTPException:
    AUTH_FAILURES.labels(reason).inc()
    route = request.scope.get("route")
    log.warning(
        "request refused",
        extra={"reason": reason, "key_id": key_id, "client": _address(request),
               "method": request.method, "route": getattr(route, "path", None)},
    )
    return HTTPException(status, detail, headers=headers)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _too_many(request: Request, bucket: str, retry: int) -> HTTPException:
    RATE_LIMITED.labels(bucket).inc()
    return HTTPException(429, f"rate limit per {bucket} exceeded; retry in {retry} s",
                         headers={"Retry-After": str(retry)})


async def _lookup(gate: Gate, key_id: str) -> StoredKey | None:
    cached = gate.cache.get(key_id)
    if cached is not None:
        return cached
    async with gate.pool.connection(timeout=DB_TIMEOUT) as conn:
        stored = await keys.get(conn, key_id)
    if stored is not None and not stored.revoked:
        gate.cache.put(stored)
    return stored


async def authenticate(
    request: Request,
    header: Annotated[str | None, Depends(_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Authenticate the caller once per request, then check the route's scopes and the limits."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        principal = await _authenticate(request, header or (bearer.credentials if bearer else None))
        request.state.principal = principal
    route = request.scope.get("route")
    # No route in the scope cannot happen for a routed request; if it did, only an all-powerful key passes.
    needed = required_scopes(route, request.method) if route is not None else frozenset(keys.SCOPES)
    if not needed <= principal.scopes:
        raise _refuse(403, "scope", f"this key lacks the scope {', '.join(sorted(needed - principal.scopes))}",
                      request, principal.key_id)
    return principal


async def _authenticate(request: Request, presented: str | None) -> Principal:
    gate: Gate | None = getattr(request.app.state, "gate", None)
    if gate is None:
        raise HTTPException(503, "authentication is unavailable: the API has no database configured")
    try:
        retry = await gate.limiter.hit(f"addr:{_address(request)}", gate.per_address)
        if retry is not None:
            raise _too_many(request, "address", retry)
        if not presented:
            raise _refuse(401, "missing", "an API key is required (header X-API-Key)", request,
                          headers={"WWW-Authenticate": "Bearer"})
        key_id = keys.split(presented)
        if key_id is None:
            raise _refuse(401, "malformed", "invalid API key", request, headers={"WWW-Authenticate": "Bearer"})
        stored = await _lookup(gate, key_id)
        if stored is None or not keys.matches(presented, stored.hash, gate.pepper):
            raise _refuse(401, "unknown", "invalid API key", request, key_id, {"WWW-Authenticate": "Bearer"})
        if stored.revoked:
            raise _refuse(401, "revoked", "this API key has been revoked", request, key_id,
                          {"WWW-Authenticate": "Bearer"})
        retry = await gate.limiter.hit(f"key:{key_id}", stored.rate_limit or gate.per_key)
        if retry is not None:
            raise _too_many(request, "key", retry)
    except HTTPException:
        raise
    except Exception as exc:  # the database is down or overloaded: refuse rather than let anyone in
        log.error("authentication unavailable", extra={"error": type(exc).__name__})
        raise HTTPException(503, "authentication is temporarily unavailable", headers={"Retry-After": "1"}) from exc
    return Principal(stored.id, stored.name, frozenset(stored.scopes))


@contextlib.asynccontextmanager
async def gate_for(app_state: Any, settings: Any) -> Any:
    """Open the gate for an app's lifetime: limiter over the pool, key cache following revocations."""
    pool = app_state.db_pool
    if pool is None:
        app_state.gate = None
        yield
        return
    if not settings.api_key_pepper:
        log.warning("KUBETRADE_API_KEY_PEPPER is not set: API-key hashes are not peppered")
    cache = KeyCache()
    app_state.gate = Gate(pool, Limiter(pool, settings.rate_window_seconds), cache, settings.api_key_pepper,
                          settings.rate_limit_per_key, settings.rate_limit_per_address)
    listener = asyncio.create_task(cache.listen(settings.database_url), name="api-key-revocations")
    try:
        yield
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener


async def authenticate_key(request: Request, presented: str | None) -> Principal:
    """Check a full key as every request's header is checked (limits, revocation, refusals logged and
    counted the same way): the console's login, which receives the key in a form, not a header."""
    return await _authenticate(request, presented)


async def principal_of(request: Request, key_id: str) -> Principal:
    """The principal of a key verified earlier (a console session holds its key's id, never the key).

    The key is looked up as for any request, so a revoked key ends every session it opened at once
    (the cache follows revocations), and the key's and the address's rate limits count these requests.
    """
    gate: Gate | None = getattr(request.app.state, "gate", None)
    if gate is None:
        raise HTTPException(503, "authentication is unavailable: the API has no database configured")
    try:
        retry = await gate.limiter.hit(f"addr:{_address(request)}", gate.per_address)
        if retry is not None:
            raise _too_many(request, "address", retry)
        stored = await _lookup(gate, key_id)
        if stored is None or stored.revoked:
            raise _refuse(401, "revoked", "this session's API key has been revoked", request, key_id)
        retry = await gate.limiter.hit(f"key:{key_id}", stored.rate_limit or gate.per_key)
        if retry is not None:
            raise _too_many(request, "key", retry)
    except HTTPException:
        raise
    except Exception as exc:
        log.error("authentication unavailable", extra={"error": type(exc).__name__})
        raise HTTPException(503, "authentication is temporarily unavailable", headers={"Retry-After": "1"}) from exc
    return Principal(stored.id, stored.name, frozenset(stored.scopes))


def allows(app: Any, principal: Principal, method: str, path: str) -> bool:
    """Whether ``principal`` may call the API operation (method, path template): the console shows a
    control, and accepts its form, only when the API route it stands for would let the same key through."""
    for m, p, route in operations(app):
        if m == method and p == path:
            return required_scopes(route, method) <= principal.scopes
    raise KeyError(f"no API operation {method} {path}")
