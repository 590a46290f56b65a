"""The stop-loss manager: watches every open position's stop on each price, in the risk
manager's process, so stops hold even when a strategy's runner is gone.

A triggered stop becomes a reduce-only market order through the ordinary path (JetStream,
executor, ledger) with a client order id derived from the position and its stop
generation: a repeated trigger (every tick below the stop, a restart) sends the same id,
which JetStream and the database each refuse to double.  A paper stop triggered by a
closed candle names that bar and its level (``bar_exit``): the paper venue fills it from the
candle by the kernel's rule - at the stop level, or at the bar's open when the bar opened
beyond it - not at the close that revealed it.
Trailing levels are written back to ``positions`` so a restarted risk manager resumes from
the tightened stop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from psycopg import AsyncConnection

from kubetrade.ledger import stops as ledger_stops
from kubetrade.messaging import codec, signing, subjects
from kubetrade.messaging.schemas import BarExit, OrderRequest
from kubetrade.resources.riskpolicy import StopLossSettings
from kubetrade.risk import stops

log = logging.getLogger("kubetrade.risk.stops")
Row = dict[str, Any]


Held = Callable[[tuple[str, str, str, str]], float | None]
"""What the risk book holds of a position right now, approved orders in flight included:
(environment, namespace, strategy, symbol) -> signed quantity, or None if it does not know."""


Reserve = Callable[[tuple[str, str, str, str], str, float | None], None]
"""Count a stop's close in the risk book, as an approved order is: (key, client order id, signed
quantity), from the moment it is sent until the executor's outcome is read back; a quantity of
None takes back a reservation whose close never reached the stream."""


class StopWatch:
    def __init__(self, held: Held | None = None, reserve: Reserve | None = None) -> None:
        self.held = held
        """The risk book's view, checked before a stop closes a position: a close the strategy
        itself sent (approved, not yet filled) makes the stop moot until the next reload."""
        self.reserve = reserve
        """Tells the risk book of a close the stop sends, so that the strategy's own exit decided
        meanwhile sees the position as closing (and is refused by the risk manager, with its
        reason, rather than by the executor)."""
        self.stops: dict[tuple[str, str, str, str], stops.Stop] = {}
        """(environment, namespace, strategy, symbol) -> stop"""
        self.exchange: dict[tuple[str, str, str, str], str] = {}
        self.closing: set[str] = set()
        self.moved: set[tuple[str, str, str, str]] = set()
        self.triggered = 0
        self.moot = 0
        """Stops crossed while the book held nothing left to close (the strategy's own close in flight)."""
        self.by_symbol: dict[str, list[tuple[str, str, str, str]]] = {}
        """symbol -> the keys of its stops, as of the last load (a price only visits its own)"""

    def load(self, rows: list[Row], settings_for: Any) -> None:
        """Positions from the database; ``settings_for(env, ns, strategy)`` gives the policy's StopLossSettings."""
        for _ in self.loading(rows, settings_for):
            pass

    def loading(self, rows: list[Row], settings_for: Any, chunk: int = 64) -> Iterator[None]:
        """:meth:`load`, yielding every ``chunk`` rows so that a caller on an event loop can let
        other work in between (a few hundred positions are milliseconds of Python).

        Stops are rebuilt from the rows aside and replace the current ones at the end, merged
        with them as they are *then*: what this process has tightened since (a price that
        arrived in between included) but not yet written back is kept.
        """
        fresh: dict[tuple[str, str, str, str], stops.Stop] = {}
        exchange: dict[tuple[str, str, str, str], str] = {}
        settings_of: dict[tuple[str, str, str], StopLossSettings | None] = {}
        for i, r in enumerate(rows):
            if i and i % chunk == 0:
                yield
            qty = float(r["quantity"])
            if qty == 0:
                continue
            book = (r["environment"], r["namespace"], r["strategy"])
            if book not in settings_of:
                settings_of[book] = settings_for(*book)
            settings = settings_of[book]
            if settings is None or not settings.enforce_without_runner:
                continue
            key = (*book, r["symbol"])
            entry = float(r["average_price"])
            fresh[key] = stops.initial(
                settings,
                r["strategy"],
                r["symbol"],
                qty,
                entry,
                r["stop_price"],
                r["trailing_pct"],
                float(r["best_price"] or entry),
                int(r["stop_generation"]),
            )
            exchange[key] = r["exchange"]
        for key, stop in fresh.items():
            old = self.stops.get(key)
            if old is not None and old.entry == stop.entry and (old.quantity > 0) == (stop.quantity > 0):
                tighter = max(old.stop, stop.stop) if stop.quantity > 0 else min(old.stop, stop.stop)
                generation = max(old.generation, stop.generation)
                if (tighter, old.best, generation) != (stop.stop, stop.best, stop.generation):
                    fresh[key] = replace(stop, stop=tighter, best=old.best, generation=generation)
        self.stops = fresh
        self.exchange.update(exchange)
        self.by_symbol = {}
        for key in fresh:
            self.by_symbol.setdefault(key[3], []).append(key)

    def forget(self, key: tuple[str, str, str, str]) -> None:
        """Drop a position's stop until the next load (a new position opens where the old one was closed)."""
        if self.stops.pop(key, None) is not None:
            keys = self.by_symbol.get(key[3], [])
            if key in keys:
                keys.remove(key)

    async def on_price(self, js: Any, symbol: str, price: float, bar: tuple[str, int] | None = None) -> int:
        """Move stops for ``symbol``; submit closing orders for those hit.  Returns how many were sent.

        ``bar`` (timeframe, open time) is given when ``price`` is a closed candle's close: a paper stop it
        triggers names that bar, so the paper fill is the backtest's (the stop, or the open if it gapped past).
        A ticker or trade price is where the market is now: the fill is there.
        """
        sent = 0
        for key in self.by_symbol.get(symbol, ()):
            stop = self.stops.get(key)
            if stop is None:
                continue
            moved = stops.on_price(stop, price)
            if moved is not stop:
                self.stops[key] = moved
                # written back when the level moved, or a trailing stop's best price (which it
                # resumes from after a restart); a fixed stop's best price is of no use to anyone
                if moved.stop != stop.stop or (moved.trailing_pct and moved.best != stop.best):
                    self.moved.add(key)
            if not stops.triggered(moved, price):
                continue
            quantity = abs(moved.quantity)
            held = self.held(key) if self.held is not None else None
            if held is not None:
                if abs(held) <= 1e-9 * quantity or (held > 0) != (moved.quantity > 0):
                    self.moot += 1
                    continue  # the strategy is already closing it (or has): nothing left to close
                quantity = min(quantity, abs(held))  # a partial close in flight: close what will be left
            coid = stops.close_order_id(moved)
            if coid in self.closing:
                continue
            env, ns, strategy, sym = key
            order = OrderRequest(
                client_order_id=coid,
                strategy=strategy,
                namespace=ns,
                environment=env,
                exchange=self.exchange.get(key, "binance"),
                symbol=sym,
                side="sell" if moved.quantity > 0 else "buy",
                quantity=quantity,
                price=price,
                reduce_only=True,
                bar_exit=(BarExit(timeframe=bar[0], bar_time=bar[1], stop=moved.stop)
                          if env == "paper" and bar is not None else None),
                time=int(time.time() * 1000),
            )
            self.closing.add(coid)  # before the await: a concurrent price must not send it again
            signed = -quantity if moved.quantity > 0 else quantity
            if self.reserve is not None:  # before the await too: a decision meanwhile sees it closing
                self.reserve(key, coid, signed)
            try:
                subject, data = subjects.order_submit(env), codec.encode(order)
                await js.publish(subject, data, headers=signing.headers(signing.key_from_env(), subject, coid, data))
            except Exception:
                self.closing.discard(coid)  # not in the stream: the next price tries again, same id
                if self.reserve is not None:
                    self.reserve(key, coid, None)
                raise
            self.triggered += 1
            sent += 1
            log.warning(
                "stop triggered",
                extra={
                    "strategy": strategy,
                    "symbol": sym,
                    "stop": moved.stop,
                    "price": price,
                    "client_order_id": coid,
                },
            )
        return sent

    async def save(self, conn: AsyncConnection[Row]) -> None:
        """Write tightened trailing stops back, all in one transaction (monotonic in SQL too: a stop never
        loosens and a best price never goes back, whatever an older view of the stop says)."""
        rows = []
        for key in list(self.moved):
            stop = self.stops.get(key)
            self.moved.discard(key)
            if stop is None:
                continue
            env, ns, strategy, symbol = key
            rows.append(
                {"s": stop.stop, "b": stop.best, "a": stop.entry, "e": env, "n": ns, "t": strategy, "y": symbol}
            )
        await ledger_stops.tighten(conn, rows)
