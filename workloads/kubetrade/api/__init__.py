"""The HTTP API: one FastAPI application that later features add routers to."""

from kubetrade.api.app import create_app

__all__ = ["create_app"]
