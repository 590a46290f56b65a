"""The price a market-data message carries, whatever its kind (candle, ticker, public trade).

The risk manager's feed and the paper venue both follow ``md.>`` for the last price; a
message that does not parse gives None here (the collector's own consumers dead-letter it).
"""

from __future__ import annotations

from kubetrade.messaging import codec
from kubetrade.messaging.schemas import Candle, PublicTrade, Ticker


def price_of(subject: str, data: bytes) -> tuple[str, str, float, int] | None:
    """(exchange, symbol, price, time ms) of a market-data message, or None."""
    try:
        if ".candle." in subject:
            c = codec.decode(Candle, data)
            return c.exchange, c.symbol, c.close, c.time
        if subject.endswith(".ticker"):
            t = codec.decode(Ticker, data)
            return t.exchange, t.symbol, t.last, t.time
        if subject.endswith(".trades"):
            p = codec.decode(PublicTrade, data)
            return p.exchange, p.symbol, p.price, p.time
    except codec.BadMessage:
        return None
    return None
