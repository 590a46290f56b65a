"""Glassnode on-chain metrics (NVT, MVRV, ...): ``GET /v1/metrics/<group>/<metric>``.

Topics are ``ASSET:metric`` (``BTC:mvrv``) or a bare metric for BTC; known short names map
to their API paths, anything else is taken as a path (``market/price_usd_close``).  The key
goes in the ``X-Api-Key`` header; the answer is ``[{"t": unix seconds, "v": value}, ...]``.
"""

from __future__ import annotations

import math

import httpx

from kubetrade.collector.alt.base import Provider, ProviderError
from kubetrade.messaging.schemas import AltPoint

PATHS = {
    "mvrv": "market/mvrv",
    "mvrv_z_score": "market/mvrv_z_score",
    "nvt": "indicators/nvt",
    "nvts": "indicators/nvts",
    "sopr": "indicators/sopr",
    "active_addresses": "addresses/active_count",
    "exchange_netflow": "transactions/transfers_volume_exchanges_net",
}


class Glassnode(Provider):
    name = "glassnode"
    source = "onchain"
    base_url = "https://api.glassnode.com"
    resolution = "1h"

    async def fetch(self, http: httpx.AsyncClient, topic: str, since_ms: int | None) -> list[AltPoint]:
        asset, _, metric = topic.rpartition(":")
        asset = asset or "BTC"
        path = PATHS.get(metric, metric)
        params: dict[str, str | int] = {"a": asset, "i": self.resolution, "f": "JSON"}
        if since_ms is not None:
            params["s"] = since_ms // 1000 + 1
        r = self.check(await http.get(f"{self.url}/v1/metrics/{path}", params=params,
                                      headers={"X-Api-Key": self.credentials.api_key or ""}))
        rows = r.json()
        if not isinstance(rows, list):
            raise ProviderError(f"glassnode {path}: expected a list, got {type(rows).__name__}")
        out = []
        for row in rows:
            v = row.get("v")
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                continue  # Glassnode sends null for hours it has not computed yet
            out.append(AltPoint(source="onchain", provider=self.name, topic=asset, metric=metric.replace("/", "_"),
                                time=int(row["t"]) * 1000, value=float(v)))
        return out
