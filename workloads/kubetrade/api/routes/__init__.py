"""API routers, one module per area, each exposing ``router`` (a FastAPI APIRouter).

Add a module here and list it in :data:`kubetrade.api.app.ROUTER_MODULES`.
Routers reach shared connections through ``request.app.state`` (``db_pool``: a
psycopg AsyncConnectionPool or None; ``nats``: a connected nats client or None).
"""
