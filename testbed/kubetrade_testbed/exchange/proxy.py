"""A TCP proxy in front of the local exchange that can drop connections, for fault tests.

Some faults cannot be produced from inside an HTTP handler: a connection that dies after
the exchange accepted the request, so the client never sees the answer (the order may
well exist).  The proxy forwards bytes both ways and, when told to, closes the client's
side after forwarding the request but before the response - a real reset, which ccxt
reports as a network error, exactly as a dropped link would.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from kubetrade.localstack.servers.processes import free_port


class DroppingProxy:
    """Forward 127.0.0.1:``port`` to ``target_port``; the next ``drop_responses`` new-order answers are cut off."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.drop_responses = 0
        """The next N connections lose their response (the request still reaches the exchange)."""
        self.dropped = 0
        self.match = b"POST /api/v3/order"
        """Only requests starting with these bytes are dropped (by default: new orders)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dropping-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()

    def _take_drop(self) -> bool:
        with self._lock:
            if self.drop_responses > 0:
                self.drop_responses -= 1
                self.dropped += 1
                return True
            return False

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        dropping = False

        async def upstream() -> None:
            nonlocal dropping
            with contextlib.suppress(ConnectionError, OSError):
                while data := await client_r.read(65536):
                    if data.startswith(self.match) and self._take_drop():
                        dropping = True  # the exchange gets the order; the client will not get the answer
                    up_w.write(data)
                    await up_w.drain()
            up_w.close()

        async def downstream() -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await up_r.read(65536):
                    if dropping:
                        client_w.transport.abort()
                        up_w.close()
                        return
                    client_w.write(data)
                    await client_w.drain()
            client_w.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)

    def start(self) -> DroppingProxy:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._handle, "127.0.0.1", self.port), self._loop)
        self._server = fut.result(10)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> DroppingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
