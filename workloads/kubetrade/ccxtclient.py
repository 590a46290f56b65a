"""ccxt clients: the one place that knows how a client is pointed at another base URL.

The collector and the live venue build their own ccxt clients; both may be told to talk to
an exchange at a given base URL (a regional endpoint, a recording proxy, a local exchange
in tests) instead of the one ccxt ships with.
"""

from __future__ import annotations

from typing import Any


def point_ccxt(exchange: Any, base_url: str) -> None:
    """Send every API (and websocket) URL of a ccxt client to ``base_url``, keeping the paths.

    This is ccxt's own extension point (``urls['api']``), not a patch: the client's signing,
    parsing, rate limiting and error mapping all run unchanged.
    """
    ws_base = "ws" + base_url.removeprefix("http")

    def rewrite(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: rewrite(v) for k, v in value.items()}
        if isinstance(value, str) and "://" in value:
            scheme, rest = value.split("://", 1)
            path = rest.split("/", 1)[1] if "/" in rest else ""
            return f"{ws_base if scheme.startswith('ws') else base_url}/{path}"
        return value

    exchange.urls["api"] = rewrite(exchange.urls["api"])
