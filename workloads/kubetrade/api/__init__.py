"""The HTTP API: one FastAPI application; each area of the API is a router in ``routes/``.

``create_app`` is imported on first use, so the CLI (``kubetrade api-keys``, ``--help``) does not load
FastAPI and every router just to build its parser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubetrade.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from kubetrade.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
