"""Every failure answered with a status that says whose it is, never a 500 for bad input.

* Request validation (FastAPI's 422): the errors as FastAPI shapes them, without the input
  values - a NaN cannot be written as JSON (the default handler's 422 became a 500) and a
  20 MB field must not come back whole.  Locations and messages are cut short too.
* PostgreSQL's class 22 ("data exception": a NUL character in text, a number out of range,
  an impossible date) is raised by values the client sent; the database is the last
  validator, and its refusal is the client's 422, with its message.  A unique violation is a
  409; a database that cannot be reached (or a pool with no free connection) is a 503 with
  Retry-After, like every dependency that is down.
* NATS refusing a message as too large is the client's 413.
* A resource store's refusal (:class:`kubetrade.cluster.StoreError`: the API server's 403,
  404, 409 or 422, the cluster unreachable) keeps the status it carries, wherever a route
  lets it through.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from kubetrade.cluster import StoreError

log = logging.getLogger("kubetrade.api")

MAX_ERRORS = 20
"""At most this many validation errors are listed (a list of 10,000 bad items gets 20 lines)."""


def _loc_part(part: Any) -> str | int:
    if isinstance(part, int):
        return part
    text = str(part)
    return text if len(text) <= 64 else f"{text[:60]}..."


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    detail = [
        {
            "loc": [_loc_part(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", ""))[:300],
            "type": str(err.get("type", ""))[:64],
        }
        for err in errors[:MAX_ERRORS]
    ]
    if len(errors) > MAX_ERRORS:
        detail.append({"loc": [], "msg": f"... and {len(errors) - MAX_ERRORS} more errors", "type": "truncated"})
    return JSONResponse({"detail": detail}, status_code=422)


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    message = _first_line(exc)
    log.info("value refused by the database", extra={"error": message, "path": request.url.path})
    return JSONResponse({"detail": f"a value in the request cannot be stored: {message}"}, status_code=422)


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    message = _first_line(exc)
    log.info("write refused by the database", extra={"error": message, "path": request.url.path})
    return JSONResponse({"detail": f"conflicts with what is stored: {message}"}, status_code=409)


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable", extra={"error": _first_line(exc), "path": request.url.path})
    return JSONResponse({"detail": "the database is unavailable; retry shortly"}, status_code=503,
                        headers={"Retry-After": "5"})


async def _store_error(request: Request, exc: Exception) -> JSONResponse:

    assert isinstance(exc, StoreError)
    headers = {"Retry-After": "5"} if exc.status == 503 else None
    if exc.status >= 500:
        log.warning("resource store failed", extra={"error": exc.message[:300], "path": request.url.path})
    return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)


async def _too_large(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "the request is too large to pass on"}, status_code=413)


def install(app: FastAPI) -> None:
    from nats.errors import MaxPayloadError
    from psycopg_pool import PoolTimeout

    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(psycopg.errors.DataError, _data_error)
    app.add_exception_handler(psycopg.errors.IntegrityError, _integrity_error)
    app.add_exception_handler(psycopg.OperationalError, _database_down)
    app.add_exception_handler(PoolTimeout, _database_down)
    app.add_exception_handler(MaxPayloadError, _too_large)
    app.add_exception_handler(StoreError, _store_error)
