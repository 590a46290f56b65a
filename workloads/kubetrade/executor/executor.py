"""The executor process: lease, reconcile, then consume approved orders from JetStream.

Recovery rules, each of which a fault test exercises:

* **Record before sending.**  An order row (``pending``) is committed before the venue
  hears of it, and ``submit_attempts`` is bumped and committed before each send.  So after
  any crash, an order with attempts > 0 is *looked up by its client order id* before it can
  be sent again, and one with attempts = 0 was certainly never sent.
* **A timeout is not a rejection.**  :class:`~kubetrade.executor.venues.Uncertain` leaves
  the order ``pending``; we wait ``settle_seconds`` (longer than the exchange's recvWindow,
  after which a delayed request can no longer be accepted), look it up, and only when the
  exchange does not know the id do we send again - with the same id.
* **Ack last.**  The JetStream message is acknowledged only after the outcome is in the
  database; a crash before that means redelivery, and redelivery of a known id changes
  nothing (``client_order_id`` is UNIQUE, fills are keyed by trade id).
* **Reconcile first.**  On start (and after losing the database or the lease) every
  non-terminal order is checked against the venue before new work is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from kubetrade.executor import intake
from kubetrade.executor.closing import close_strategy
from kubetrade.executor.gate import Gate
from kubetrade.executor.lease import AlreadyHeld, Lease, LeaseLost
from kubetrade.executor.venues import CcxtVenue, PaperVenue, Rejected, Uncertain, Venue, VenueOrder
from kubetrade.ledger import connection, paperbatch, queries, record
from kubetrade.messaging import auth, codec, signing, subjects
from kubetrade.messaging.prices import price_of
from kubetrade.messaging.schemas import CancelRequest, Candle, Fill, OrderEvent, OrderRequest
from kubetrade.messaging.streams import ensure_order_streams
from kubetrade.observability import heap
from kubetrade.observability import tracecontext as tracing
from kubetrade.observability.metrics import FEES, FILLS, ORDERS, labelled

log = logging.getLogger("kubetrade.executor")
CANCEL_PATIENCE_MS = 10 * 60_000
"""How long a cancel waits for an order it overtook to be recorded before it is given up."""
IDLE_RECONCILIATION_RECORD_SECONDS = 3600.0
"""A reconciliation that checked no order and found no difference is recorded at most this often
(every one would be ~17,000 rows a day of nothing, at one every 5 s)."""
Row = dict[str, Any]


def now_ms() -> int:
    return int(time.time() * 1000)


class FaultPoints:
    """Test-only crash points (``KUBETRADE_FAULT_POINTS=a,b`` and ``KUBETRADE_FAULT_RATE``): SIGKILL self.

    Like etcd's gofail: the crash lands exactly in the windows that matter (between the
    database and the venue), which random timers alone would rarely hit.
    """

    def __init__(self) -> None:
        self.points = {p for p in os.environ.get("KUBETRADE_FAULT_POINTS", "").split(",") if p}
        self.rate = float(os.environ.get("KUBETRADE_FAULT_RATE", "0.05"))
        self.rng = random.Random(os.environ.get("KUBETRADE_FAULT_SEED"))

    def hit(self, point: str) -> None:
        if point in self.points and self.rng.random() < self.rate:
            log.warning("fault point: SIGKILL", extra={"point": point})
            os.kill(os.getpid(), signal.SIGKILL)


class Executor:
    def __init__(
        self,
        environment: str,
        dsn: str,
        nats_url: str,
        venue: Venue,
        *,
        sync_seconds: float = 5.0,
        ack_wait: float = 30.0,
        settle_seconds: float = 11.0,
        batch: int = 64,
        lanes: int = 2,
        settle_heap: bool = False,
    ) -> None:
        self.environment = environment
        self.dsn = dsn
        self.nats_url = nats_url
        self.venue = venue
        self.signing_key = signing.key_from_env()
        """Orders must carry the risk manager's signature under this key (None: no key, nothing checked)."""
        self.sync_seconds = sync_seconds
        self.ack_wait = ack_wait
        self.settle_seconds = settle_seconds
        self.batch = batch
        self.lanes = max(1, lanes)
        """Paper batches of different strategies in flight at once, each on its own connection."""
        self.settle_heap = settle_heap
        """Freeze the heap once serving (:mod:`kubetrade.observability.heap`): for the service process only."""
        self.faults = FaultPoints()
        self.gate = Gate()
        self._round_subs: list[Any] = []
        self.nc: Any = None
        self.conn: psycopg.AsyncConnection[Row] | None = None
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()
        self.waiting_for_lease = False
        self.beat: Any = lambda: None
        """Called each turn of the main loops (the liveness probe's heartbeat)."""
        self.resting: set[tuple[str, str]] = set()
        self._idle_recorded = float("-inf")
        self.stats = {"orders": 0, "fills": 0, "reconciled": 0, "uncertain": 0, "redelivered": 0, "overlapped": 0,
                      "unsigned": 0}
        self.batching = isinstance(venue, PaperVenue)
        self.memo = paperbatch.Memo()

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self, wait_for_lease: bool = True) -> None:
        import nats

        self.nc = await nats.connect(
            self.nats_url, **auth.credentials(f"executor-{self.environment}"), name=f"executor-{self.environment}",
            max_reconnect_attempts=-1, reconnect_time_wait=0.5
        )
        lease = Lease(self.dsn, self.environment)
        try:
            while not self.stopping.is_set():
                try:
                    self.beat()
                    if not await lease.try_acquire():
                        self.waiting_for_lease = True
                        if not wait_for_lease:
                            raise AlreadyHeld(f"another {self.environment} executor holds the lease")
                        await asyncio.sleep(1.0)
                        continue
                    self.waiting_for_lease = False
                    log.info("lease acquired", extra={"environment": self.environment})
                    await self._serve(lease)
                except (LeaseLost, psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    self.ready.clear()
                    log.warning("database or lease lost; reconnecting", extra={"error": str(exc)[:200]})
                    await lease.release()
                    await asyncio.sleep(0.5)
        finally:
            self.ready.clear()
            await lease.release()
            if self.conn is not None:
                await self.conn.close()
            await self.venue.close()
            await self.nc.drain()

    def readiness(self) -> list[str]:
        """What keeps the executor from taking orders (empty: ready)."""
        missing = []
        if self.nc is None or not self.nc.is_connected:
            missing.append("nats: not connected")
        if self.waiting_for_lease:
            missing.append(f"lease: another {self.environment} executor holds it (waiting)")
        elif not self.ready.is_set():
            missing.append("database: connecting, taking the lease and reconciling")
        return missing

    async def _serve(self, lease: Lease) -> None:
        self.conn = await connection.connect(self.dsn)
        self.memo = paperbatch.Memo()  # a fresh session re-reads what it writes against
        js = self.nc.jetstream()
        await ensure_order_streams(js)
        # a round after a lost database starts here again: its plain subscriptions replace the last round's
        for old in self._round_subs:
            with contextlib.suppress(Exception):
                await old.unsubscribe()
        self._round_subs = []
        if isinstance(self.venue, PaperVenue):
            self._round_subs.append(await self.nc.subscribe("md.>", cb=self._on_market_data))
        await self.reconcile()
        from nats.js.api import ConsumerConfig

        inbox = intake.Inbox()
        submit = await intake.subscribe(
            js,
            subjects.order_submit(self.environment),
            "ORDERS",
            f"executor-{self.environment}",
            inbox,
            ack_wait=self.ack_wait,
            max_ack_pending=10_000,
        )
        cfg = ConsumerConfig(ack_wait=self.ack_wait, max_deliver=-1, max_ack_pending=10_000)
        cancel = await js.pull_subscribe(
            subjects.order_cancel(self.environment),
            durable=f"executor-{self.environment}-cancel",
            stream="ORDERS",
            config=cfg,
        )
        self._round_subs.append(
            await self.nc.subscribe(subjects.close_strategy(self.environment), cb=self._on_close_strategy)
        )
        if self.settle_heap:
            heap.settle()
        self.ready.set()
        log.info("accepting orders", extra={"environment": self.environment})
        last_sync = last_check = time.monotonic()
        # cancels have their own loop so that an empty cancel stream never delays an order
        cancels = asyncio.create_task(self._cancel_loop(cancel))
        # paper batches: each in flight on a connection of its own, never two of one strategy
        free: list[psycopg.AsyncConnection[Row]] = []
        lane_conns: list[psycopg.AsyncConnection[Row]] = []
        in_flight: dict[asyncio.Task[None], tuple[Any, set[tuple[str, str]]]] = {}

        def reap(done: Any) -> None:
            finished = [t for t in done if t in in_flight]
            for t in finished:
                free.append(in_flight.pop(t)[0])
            for t in finished:
                t.result()  # a lost database or lease ends this round (the lane gave its orders back)

        try:
            for _ in range(self.lanes if self.batching else 0):
                lane_conns.append(await connection.connect(self.dsn))
            free.extend(lane_conns)
            while not self.stopping.is_set():
                self.beat()
                if time.monotonic() - last_check >= 0.5:
                    await lease.check()
                    last_check = time.monotonic()
                if cancels.done():
                    cancels.result()  # a lost database or lease ends this round
                reap([t for t in in_flight if t.done()])
                msgs = await inbox.take(self.batch, wait=0.2)
                reqs = [r for m in msgs if (r := self._valid(m)) is not None] if self.batching else []
                if msgs and len(reqs) == len(msgs):
                    books = {(r.namespace, r.strategy) for r in reqs}
                    try:
                        while not free or any(b & books for _, b in in_flight.values()):
                            done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                            reap(done)
                    except BaseException:
                        await self._give_back(msgs)
                        raise
                    conn = free.pop()
                    if in_flight:
                        self.stats["overlapped"] += 1
                    lane = asyncio.create_task(self._lane(conn, msgs, reqs))
                    in_flight[lane] = (conn, books)
                elif msgs:
                    await self._handle(msgs, self._on_submit)
                if time.monotonic() - last_sync >= self.sync_seconds:
                    await self.reconcile()
                    last_sync = time.monotonic()
        finally:
            if in_flight:  # a statement and a few publishes away; each gives its orders back if it fails
                await asyncio.wait(in_flight)
                for t in in_flight:
                    if not t.cancelled() and t.exception() is not None:
                        log.warning("paper batch failed", extra={"error": str(t.exception())[:200]})
            for c in lane_conns:
                with contextlib.suppress(Exception):
                    await c.close()
            cancels.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await cancels
            self.ready.clear()
            with contextlib.suppress(Exception):
                await submit.unsubscribe()
                await cancel.unsubscribe()
            await self._give_back(inbox.drain())
            with contextlib.suppress(Exception):
                await self.conn.close()
            self.conn = None

    async def _cancel_loop(self, sub: Any) -> None:
        import nats.errors
        import nats.js.errors

        while True:
            try:
                msgs = await sub.fetch(self.batch, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except (nats.errors.Error, nats.js.errors.Error) as exc:  # NATS restarting: try again shortly
                log.warning("fetch failed", extra={"error": type(exc).__name__})
                await asyncio.sleep(0.2)
                continue
            await self._handle(msgs, self._on_cancel)

    async def _handle(self, msgs: list[Any], handler: Any) -> None:
        """Messages one at a time, each with the gate to itself (the general path)."""
        for i, msg in enumerate(msgs):
            try:
                async with self.gate.exclusive():
                    with tracing.consumer_span("executor.order", msg, environment=self.environment):
                        await handler(msg)
            except Uncertain as exc:
                self.stats["uncertain"] += 1
                await msg.nak(delay=max(exc.retry_after, 1.0))
            except (psycopg.OperationalError, psycopg.InterfaceError, LeaseLost):
                await self._give_back(msgs[i:])
                raise  # the outer loop reconnects, takes the lease again and reconciles
            except Exception as exc:
                log.exception("order handling failed", extra={"error": str(exc)[:200]})
                await msg.nak(delay=2.0)

    async def _give_back(self, msgs: list[Any]) -> None:
        """Unfinished messages go back to the stream now rather than after ack_wait (a redelivery is harmless)."""
        for msg in msgs:
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)

    async def _lane(self, conn: psycopg.AsyncConnection[Row], msgs: list[Any], reqs: list[OrderRequest]) -> None:
        """Paper orders taken together in one transaction: one commit (one fsync) for the lot.

        Runs beside at most ``lanes - 1`` other batches, none of them of the same strategy:
        their guarded writes (:mod:`~kubetrade.ledger.paperbatch`) touch other ledgers and
        positions, and each remembers only its own in the memo.  A batch the fast path will
        not take (nothing written) goes down the general path, one order at a time.  Events
        and acks go out after the commit; a crash before it redelivers the batch, which the
        client order ids make harmless.
        """
        assert isinstance(self.venue, PaperVenue)
        try:
            async with self.gate.shared():
                done = await paperbatch.record_and_fill_batch(conn, self.venue, reqs, now_ms(), self.memo)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            await self._give_back(msgs)
            raise
        except Exception as exc:  # one bad apple: redo the batch one order at a time
            log.warning("batch failed; handling one by one", extra={"error": str(exc)[:200]})
            done = None
        if done is None:
            await self._handle(msgs, self._on_submit)
            return
        for msg, (order, fill) in zip(msgs, done, strict=True):
            with tracing.consumer_span("executor.order", msg, environment=self.environment):
                self.stats["orders"] += 1
                self.stats["fills"] += 1
                if msg.metadata.num_delivered > 1:
                    self.stats["redelivered"] += 1
                await self._publish(order, fill, None)
                await msg.ack()

    def _valid(self, msg: Any) -> OrderRequest | None:
        """The message's order if it is well-formed and addressed to this executor (no side effects)."""
        try:
            req = codec.decode(OrderRequest, msg.data)
        except codec.BadMessage:
            return None
        ok = (msg.headers or {}).get("Nats-Msg-Id") == req.client_order_id and req.environment == self.environment
        return req if ok and signing.verified(self.signing_key, msg.subject, msg.headers, msg.data) else None

    # --- message handlers --------------------------------------------------------------

    async def _on_submit(self, msg: Any) -> None:
        try:
            req = codec.decode(OrderRequest, msg.data)
            msg_id = (msg.headers or {}).get("Nats-Msg-Id")
            if msg_id != req.client_order_id:
                raise codec.BadMessage(f"Nats-Msg-Id {msg_id!r} is not the clientOrderId {req.client_order_id!r}")
            if req.environment != self.environment:
                raise codec.BadMessage(f"order for {req.environment} sent to the {self.environment} executor")
            if not signing.verified(self.signing_key, msg.subject, msg.headers, msg.data):
                self.stats["unsigned"] += 1
                log.error("order refused: not signed by the risk manager",
                          extra={"client_order_id": req.client_order_id, "strategy": req.strategy})
                raise codec.BadMessage("not signed by the risk manager (Kubetrade-Signature): refused")
        except codec.BadMessage as exc:
            await codec.dead_letter(self.nc, msg.subject, msg.data, str(exc))
            await msg.term()
            return
        if msg.metadata.num_delivered > 1:
            self.stats["redelivered"] += 1
        assert self.conn is not None
        if isinstance(self.venue, PaperVenue):
            fast = await paperbatch.record_and_fill(self.conn, self.venue, req, now_ms(), self.memo)
            if fast is not None:
                order, fill = fast
                self.stats["orders"] += 1
                self.stats["fills"] += 1
                await self._publish(order, fill, None)
                await msg.ack()
                return
        try:
            row, created = await record.record_new(self.conn, req)
        except LookupError as exc:
            await self._publish_rejection(req, str(exc))
            await msg.ack()
            return
        self.faults.hit("after_record")
        if created:
            self.stats["orders"] += 1
            if row["status"] == "rejected":
                await self._publish(row, None, row["reason"])
        if row["status"] == "pending":
            await self._drive(row, msg)
        await msg.ack()
        self.faults.hit("after_ack")

    async def _on_cancel(self, msg: Any) -> None:
        try:
            req = codec.decode(CancelRequest, msg.data)
        except codec.BadMessage as exc:
            await codec.dead_letter(self.nc, msg.subject, msg.data, str(exc))
            await msg.term()
            return
        assert self.conn is not None
        row = await record.request_cancel(self.conn, req.client_order_id)
        if row is None and now_ms() - req.time < CANCEL_PATIENCE_MS:
            # the cancel overtook its order (they travel on two consumers): try again shortly
            await msg.nak(delay=1.0)
            return
        if row is None:
            log.warning("cancel for an order never recorded", extra={"client_order_id": req.client_order_id})
        elif row["status"] in ("pending", "open", "partially_filled"):
            await self._cancel(row)
        await msg.ack()

    async def _on_market_data(self, msg: Any) -> None:
        got = price_of(msg.subject, msg.data)
        if got is None or not isinstance(self.venue, PaperVenue):
            return
        exchange, symbol, price, _ = got
        self.venue.on_price(exchange, symbol, price)
        if ".candle." in msg.subject:  # the bars paper exits decided on take their price from
            with contextlib.suppress(codec.BadMessage):
                c = codec.decode(Candle, msg.data)
                self.venue.on_candle(c.exchange, c.symbol, c.timeframe, c.time, c.open, c.high, c.low)
        if (exchange, symbol) in self.resting and self.ready.is_set() and self.gate.idle:
            async with self.gate.exclusive():
                await self._fill_resting(exchange, symbol)

    async def _on_close_strategy(self, msg: Any) -> None:
        async with self.gate.exclusive():
            assert self.conn is not None
            reply = await close_strategy(self.conn, self.environment, self.nc.jetstream(), self._cancel, msg.data)
        await msg.respond(reply)

    # --- order driving -----------------------------------------------------------------

    async def _drive(self, row: Row, msg: Any = None) -> None:
        """Take a pending order to the venue exactly once (lookups before any resend)."""
        assert self.conn is not None
        deadline = time.monotonic() + max(self.ack_wait * 0.8, self.settle_seconds * 3)
        while True:
            if row["submit_attempts"] > 0:
                await self._settled(row)
                found = await self.venue.lookup(row)
                self.faults.hit("after_lookup")
                if found is not None:
                    await self._apply(row, found)
                    return
            if row["cancel_requested"] or self._expired(row):
                reason = "cancelled before submission" if row["cancel_requested"] else "expired before submission"
                await self._apply(row, VenueOrder("cancelled" if row["cancel_requested"] else "expired"), reason)
                return
            if not self.batching:  # the paper venue is the database itself: nothing to look up later
                row["submit_attempts"] = await record.bump_attempt(self.conn, row["id"])
                row["updated_at"] = datetime.now(UTC)
            self.faults.hit("after_attempt")
            try:
                result = await self.venue.submit(row)
            except Rejected as exc:
                await self._apply(row, VenueOrder("rejected"), str(exc), exchange_error=True)
                return
            except Uncertain as exc:
                self.stats["uncertain"] += 1
                log.warning(
                    "submission outcome unknown; looking the order up",
                    extra={"client_order_id": row["client_order_id"], "error": str(exc)[:200]},
                )
                await self._publish(row, None, str(exc), exchange_error=True)
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(max(self.settle_seconds, exc.retry_after))
                if msg is not None:
                    await msg.in_progress()
                continue
            self.faults.hit("after_submit")
            await self._apply(row, result)
            self.faults.hit("after_apply")
            return

    def _expired(self, row: Row) -> bool:
        exp = row.get("expires_at")
        return exp is not None and exp < datetime.now(UTC)

    async def _apply(self, row: Row, vo: VenueOrder, reason: str | None = None, exchange_error: bool = False) -> Row:
        assert self.conn is not None
        applied = await record.apply(
            self.conn, row["client_order_id"], vo.status, vo.fills, vo.exchange_order_id, reason
        )
        order = applied.order
        if order["type"] == "limit" or order["status"] == "open":
            key = (order["exchange"], order["symbol"])
            if order["status"] in ("open", "partially_filled"):
                self.resting.add(key)
        self.stats["fills"] += len(applied.new_fills)
        for fill in applied.new_fills:
            await self._publish(order, fill, reason, exchange_error)
        if applied.changed and not applied.new_fills:
            await self._publish(order, None, reason, exchange_error)
        return order

    async def _settled(self, row: Row) -> None:
        """Wait until the last send is ``settle_seconds`` old: only then does "not found" mean "never arrived".

        A request can still be on its way (or queued at the exchange) right after a crash or a
        timeout; a lookup before then could miss it and a resend would double the order.
        """
        sent = row.get("updated_at")
        if sent is not None:
            age = (datetime.now(UTC) - sent).total_seconds()
            if age < self.settle_seconds:
                await asyncio.sleep(self.settle_seconds - age)

    async def _cancel(self, row: Row) -> None:
        if row["status"] == "pending" and row["submit_attempts"] == 0:
            await self._apply(row, VenueOrder("cancelled"), "cancelled before submission")
            return
        if row["status"] == "pending":
            await self._settled(row)
        result = await self.venue.cancel(row)
        if result is None:
            if row["status"] == "pending":  # sent, settled, and unknown to the exchange: it never arrived
                await self._apply(row, VenueOrder("cancelled"), "cancelled; never reached the exchange")
            return
        await self._apply(row, result, "cancel requested")

    async def _fill_resting(self, exchange: str, symbol: str) -> None:
        assert self.conn is not None and isinstance(self.venue, PaperVenue)
        still = False
        for row in await queries.live_orders(self.conn, self.environment):
            if (row["exchange"], row["symbol"]) != (exchange, symbol) or row["status"] == "pending":
                continue
            fill = self.venue.fill_for(row, now_ms())
            if fill is not None:
                await self._apply(row, VenueOrder("filled", row["client_order_id"], fill["quantity"], [fill]))
            else:
                still = True
        if not still:
            self.resting.discard((exchange, symbol))

    # --- reconciliation ----------------------------------------------------------------

    async def reconcile(self) -> list[dict[str, Any]]:
        """Bring every non-terminal order in line with the venue; record and return the differences.

        Paper with no live order (the usual case: the fast path records orders filled) has
        nothing to bring in line, and a look without the gate tells so: the gate, taken alone,
        would hold up the paper batches every few seconds for nothing.  Orders of the general
        path that are in flight hold the gate themselves and show up as live, so the look
        cannot miss one that matters.  A reconciliation that checked nothing and found nothing
        is recorded once every :data:`IDLE_RECONCILIATION_RECORD_SECONDS`, as a heartbeat.
        """
        assert self.conn is not None
        started = datetime.now(UTC)
        differences: list[dict[str, Any]] = []
        if isinstance(self.venue, PaperVenue):
            # self.conn is shared with the per-order path, which a paper batch's fallback may be
            # running right now (it holds the gate alone): wait for it rather than interleave
            async with self.gate.shared():
                if not await queries.live_orders(self.conn, self.environment):
                    self.stats["reconciled"] += 1
                    if time.monotonic() - self._idle_recorded >= IDLE_RECONCILIATION_RECORD_SECONDS:
                        await record.record_reconciliation(self.conn, self.environment, started, 0, [])
                        self._idle_recorded = time.monotonic()
                    return differences
        async with self.gate.exclusive():
            rows = await queries.live_orders(self.conn, self.environment)
            for row in rows:
                before = (row["status"], float(row["filled_quantity"]))
                try:
                    if row["status"] == "pending":
                        await self._drive(row)
                    elif isinstance(self.venue, PaperVenue):
                        if self._expired(row) and row["type"] == "market":
                            await self._apply(row, VenueOrder("expired"), "no market price before expiry")
                        else:
                            self.resting.add((row["exchange"], row["symbol"]))
                            fill = self.venue.fill_for(row, now_ms())
                            if fill is not None:
                                await self._apply(
                                    row, VenueOrder("filled", row["client_order_id"], fill["quantity"], [fill])
                                )
                    else:
                        found = await self.venue.lookup(row)
                        if found is None:
                            differences.append(
                                {"clientOrderId": row["client_order_id"], "db": row["status"], "exchange": "unknown"}
                            )
                        else:
                            await self._apply(row, found)
                            if row["cancel_requested"]:
                                await self._cancel(row)
                except Uncertain as exc:
                    differences.append({"clientOrderId": row["client_order_id"], "error": str(exc)[:200]})
                    continue
                after = await queries.order(self.conn, row["client_order_id"])
                if after is not None and (after["status"], float(after["filled_quantity"])) != before:
                    differences.append(
                        {
                            "clientOrderId": row["client_order_id"],
                            "db": before[0],
                            "now": after["status"],
                            "filled": float(after["filled_quantity"]),
                        }
                    )
            if isinstance(self.venue, CcxtVenue):
                differences += await self._unknown_exchange_orders(rows)
            if rows or differences or time.monotonic() - self._idle_recorded >= IDLE_RECONCILIATION_RECORD_SECONDS:
                await record.record_reconciliation(self.conn, self.environment, started, len(rows), differences)
                self._idle_recorded = time.monotonic()
        self.stats["reconciled"] += 1
        if differences:
            log.info("reconciliation found differences", extra={"count": len(differences)})
        return differences

    async def _unknown_exchange_orders(self, rows: list[Row]) -> list[dict[str, Any]]:
        assert self.conn is not None and isinstance(self.venue, CcxtVenue)
        symbols = await queries.traded_symbols(self.conn, self.environment)
        try:
            open_orders = await self.venue.open_orders(symbols)
        except Uncertain as exc:
            return [{"openOrders": "unavailable", "error": str(exc)[:200]}]
        diffs = []
        for o in open_orders:
            coid = o.get("clientOrderId")
            if coid and await queries.order(self.conn, coid) is None:
                diffs.append({"clientOrderId": coid, "db": "unknown", "exchange": o.get("status")})
        return diffs

    # --- events ------------------------------------------------------------------------

    async def _publish(self, order: Row, fill: Row | None, reason: str | None, exchange_error: bool = False) -> None:
        """Tell the risk manager and the runners; the database stays the record (events may be lost in a crash)."""
        event = OrderEvent(
            client_order_id=order["client_order_id"],
            strategy=order["strategy"],
            namespace=order["namespace"],
            environment=order["environment"],
            exchange=order["exchange"],
            symbol=order["symbol"],
            side=order["side"],
            status=order["status"],
            quantity=float(order["quantity"]),
            filled_quantity=float(order["filled_quantity"]),
            average_price=order["average_price"],
            fee=float(order["fee"]),
            reason=reason,
            exchange_error=exchange_error,
            time=now_ms(),
            fill=None
            if fill is None
            else Fill(
                trade_id=fill["trade_id"],
                quantity=float(fill["quantity"]),
                price=float(fill["price"]),
                fee=float(fill["fee"]),
                fee_currency=fill["fee_currency"] or "USDT",
                time=int(fill["time"].timestamp() * 1000),
            ),
        )
        subject, data = subjects.order_events(self.environment, order["strategy"]), codec.encode(event)
        labelled(ORDERS, self.environment, event.status).inc()
        if event.fill is not None:
            labelled(FILLS, self.environment, event.namespace, event.strategy).inc()
            labelled(FEES, self.environment, event.namespace, event.strategy, event.fill.fee_currency).inc(
                event.fill.fee
            )
        headers = tracing.inject()

        with contextlib.suppress(Exception):  # NATS down: the database has it; the risk manager resyncs
            await self.nc.publish(subject, data, headers=headers)
            if exchange_error:
                await self.nc.publish(subjects.exchange_errors(self.environment), data, headers=headers)

    async def _publish_rejection(self, req: OrderRequest, reason: str) -> None:
        event = OrderEvent(
            client_order_id=req.client_order_id,
            strategy=req.strategy,
            namespace=req.namespace,
            environment=req.environment,
            exchange=req.exchange,
            symbol=req.symbol,
            side=req.side,
            status="rejected",
            quantity=req.quantity,
            reason=reason,
            time=now_ms(),
        )
        with contextlib.suppress(Exception):
            await self.nc.publish(subjects.order_events(self.environment, req.strategy), codec.encode(event))
