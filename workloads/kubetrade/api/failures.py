"""Errors raised deep inside that are the request's fault, answered as such (4xx, not 500).

PostgreSQL's class 22 ("data exception": a NUL character in text, a number out of range,
an impossible date) is raised by values the client sent; the database is the last
validator, and its refusal is the client's 422, with its message, not a server error.
"""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

log = logging.getLogger("kubetrade.api")


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    log.info("value refused by the database", extra={"error": message, "path": request.url.path})
    return JSONResponse({"detail": f"a value in the request cannot be stored: {message}"}, status_code=422)


def install(app: FastAPI) -> None:
    app.add_exception_handler(psycopg.errors.DataError, _data_error)
