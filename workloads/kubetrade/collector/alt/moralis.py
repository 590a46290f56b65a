"""Moralis whale watching: ERC-20 transfers of watched wallets, ``GET /api/v2.2/<address>/erc20/transfers``.

Topics are wallet addresses (optionally ``chain:address``, default chain ``eth``).  The key
goes in ``X-API-Key``; the answer is a page ``{"cursor", "result": [transfer, ...]}``, newest
first.  Transfers are summed per wallet, token and block time into ``transfer_<token>``
points (value in token units, positive = into the wallet), with the count and the first
transaction hash in ``attrs`` - a time series, as every alternative source is here.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import httpx

from kubetrade.collector.alt.base import Provider, ProviderError
from kubetrade.messaging.schemas import AltPoint

MAX_PAGES = 5


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class Moralis(Provider):
    name = "moralis"
    source = "onchain"
    base_url = "https://deep-index.moralis.io"

    async def fetch(self, http: httpx.AsyncClient, topic: str, since_ms: int | None) -> list[AltPoint]:
        chain, _, address = topic.rpartition(":")
        chain = chain or "eth"
        params: dict[str, str | int] = {"chain": chain, "limit": 100, "order": "DESC"}
        if since_ms is not None:
            params["from_date"] = datetime.fromtimestamp(since_ms / 1000 + 1, UTC).isoformat()
        sums: dict[tuple[int, str], list[float | str]] = defaultdict(lambda: [0.0, 0, ""])
        for _ in range(MAX_PAGES):
            r = self.check(await http.get(f"{self.url}/api/v2.2/{address}/erc20/transfers", params=params,
                                          headers={"X-API-Key": self.credentials.api_key or ""}))
            page = r.json()
            if not isinstance(page, dict) or not isinstance(page.get("result"), list):
                raise ProviderError("moralis: expected a page with a result list")
            for tx in page["result"]:
                if tx.get("possible_spam"):
                    continue
                value = float(tx.get("value_decimal") or int(tx["value"]) / 10 ** int(tx.get("token_decimals") or 18))
                sign = 1.0 if tx["to_address"].lower() == address.lower() else -1.0
                entry = sums[(_ms(tx["block_timestamp"]), (tx.get("token_symbol") or "unknown").lower())]
                entry[0] = float(entry[0]) + sign * value
                entry[1] = int(entry[1]) + 1
                entry[2] = entry[2] or tx["transaction_hash"]
            if not page.get("cursor"):
                break
            params["cursor"] = page["cursor"]
        return [
            AltPoint(source="onchain", provider=self.name, topic=address.lower(), metric=f"transfer_{token}",
                     time=t, value=float(v), attrs={"count": int(n), "hash": str(h), "chain": chain})
            for (t, token), (v, n, h) in sums.items()
        ]
