"""Alternative-data collectors, one module per provider, all normalised into :class:`AltPoint`.

=============  =======  ============================================  ==================
provider       source   API                                           credentials
=============  =======  ============================================  ==================
moralis        onchain  ``/api/v2.2/<address>/erc20/transfers``       ``X-API-Key``
glassnode      onchain  ``/v1/metrics/<group>/<metric>``              ``X-Api-Key``
twitter        social   ``/2/tweets/counts/recent``                   bearer token
reddit         social   OAuth client credentials, ``/r/<sub>/...``    client id + secret
lunarcrush     social   ``/api4/public/coins/<coin>/time-series/v2``  bearer key
yahoo          macro    ``/v8/finance/chart/<ticker>``                none
stooq          macro    ``/q/d/l/?s=<ticker>``                        none (optional key)
=============  =======  ============================================  ==================

Every base URL can be overridden with ``KUBETRADE_<PROVIDER>_URL`` (a proxy, or the local
servers the tests use).
"""

from kubetrade.collector.alt.base import AltCollector, Credentials, Provider, ProviderError
from kubetrade.collector.alt.glassnode import Glassnode
from kubetrade.collector.alt.lunarcrush import LunarCrush
from kubetrade.collector.alt.moralis import Moralis
from kubetrade.collector.alt.reddit import Reddit
from kubetrade.collector.alt.stooq import Stooq
from kubetrade.collector.alt.twitter import Twitter
from kubetrade.collector.alt.yahoo import Yahoo

PROVIDERS: dict[str, type[Provider]] = {
    p.name: p for p in (Moralis, Glassnode, Twitter, Reddit, LunarCrush, Yahoo, Stooq)
}

__all__ = ["PROVIDERS", "AltCollector", "Credentials", "Provider", "ProviderError"]
