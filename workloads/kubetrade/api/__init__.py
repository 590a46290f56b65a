"""The HTTP API: one FastAPI application; each area of the API is a router in ``routes/``."""

from kubetrade.api.app import create_app

__all__ = ["create_app"]
