"""Binance market streams over websocket (``/ws/<n>``): kline events, as ccxt.pro subscribes to them.

A client sends ``{"method": "SUBSCRIBE", "params": ["btcusdt@kline_5m"], "id": 1}`` and gets
``{"result": null, "id": 1}``; from then on the server pushes, every ``push_seconds``, the
kline in progress for each subscription, and once the exchange clock has moved into a new
bar, the bar that just closed (``"x": true``) first - the order Binance uses.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from kubetrade_testbed.exchange.state import ExchangeState, Series

router = APIRouter()


def kline_event(market_id: str, interval: str, series: Series, i: int, now_ms: int) -> dict[str, Any]:
    t, o, h, low, c, v = series.bar(i, now_ms)
    closed = t + series.interval_ms <= now_ms
    return {
        "e": "kline",
        "E": now_ms,
        "s": market_id,
        "k": {
            "t": t,
            "T": t + series.interval_ms - 1,
            "s": market_id,
            "i": interval,
            "f": i * 4,
            "L": i * 4 + 3,
            "o": f"{o:.8f}",
            "c": f"{c:.8f}",
            "h": f"{h:.8f}",
            "l": f"{low:.8f}",
            "v": f"{v:.8f}",
            "n": 4,
            "x": closed,
            "q": f"{v * c:.8f}",
            "V": f"{v / 2:.8f}",
            "Q": f"{v * c / 2:.8f}",
            "B": "0",
        },
    }


@router.websocket("/ws/{stream}")
async def market_stream(ws: WebSocket, stream: str) -> None:
    st: ExchangeState = ws.app.state.exchange
    await ws.accept()
    subs: dict[str, tuple[str, str]] = {}  # "btcusdt@kline_5m" -> (market id, interval)
    last_bar: dict[str, int] = {}

    async def receive() -> None:
        while True:
            msg = await ws.receive_json()
            if msg.get("method") == "SUBSCRIBE":
                for name in msg.get("params", []):
                    market, _, kind = str(name).partition("@")
                    if kind.startswith("kline_") and market.upper() in st.markets:
                        subs[name] = (market.upper(), kind.removeprefix("kline_"))
            elif msg.get("method") == "UNSUBSCRIBE":
                for name in msg.get("params", []):
                    subs.pop(name, None)
            await ws.send_json({"result": None, "id": msg.get("id")})

    reader = asyncio.create_task(receive())
    try:
        while not reader.done():
            now = st.clock.now_ms()
            for name, (market, interval) in list(subs.items()):
                series = st.series.get((market, interval))
                if series is None or (n := series.visible(now)) == 0:
                    continue
                if name in last_bar and last_bar[name] < n - 1:
                    await ws.send_json(kline_event(market, interval, series, n - 2, now))  # the bar that closed
                last_bar[name] = n - 1
                await ws.send_json(kline_event(market, interval, series, n - 1, now))
            await asyncio.wait([reader], timeout=float(st.extensions.get("push_seconds", 0.2)))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await reader
