"""The risk manager process: answers ``risk.check`` requests, submits approved orders,
watches stops, and reports each policy's state.

Per signal: decode (a bad one is dead-lettered and answered with the reason), find the
strategy's portfolio and policy (none -> rejected: no policy, no trading), call the pure
:func:`~kubetrade.risk.decide.decide`, and if approved publish the order to JetStream with
``Nats-Msg-Id = clientOrderId`` *before* replying, reserving its size at once so the next
signal already sees it.  Decisions are remembered by client order id, so a runner that
retries a request (its reply was lost) gets the same answer and no second order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import psycopg

from kubetrade.ledger import connection, queries
from kubetrade.ledger import stops as ledger_stops
from kubetrade.messaging import auth, codec, signing, subjects
from kubetrade.messaging.acked import AckedPublisher
from kubetrade.messaging.schemas import (
    AlertEvent,
    Candle,
    OrderEvent,
    OrderRequest,
    PortfolioRisk,
    RiskControlReply,
    RiskControlRequest,
    RiskDecision,
    RiskRejection,
    Signal,
    StatusReport,
)
from kubetrade.messaging.streams import ensure_order_streams
from kubetrade.observability import heap
from kubetrade.observability import tracecontext as tracing
from kubetrade.observability.metrics import (
    RISK_DECISIONS,
    RISK_LAST_REFRESH,
    RISK_REFRESH_SECONDS,
    export_portfolio,
    initialize_risk_decisions,
    labelled,
)
from kubetrade.resources.riskpolicy import RiskPolicySpec
from kubetrade.risk import breaker, measures
from kubetrade.risk.decide import decide, hold, reject, reserve
from kubetrade.risk.feed import MarketFeed
from kubetrade.risk.policies import PolicyStore
from kubetrade.risk.portfolios import MAX_CHUNKS, Portfolio, Reservation, RiskBook
from kubetrade.risk.state import Breaker
from kubetrade.risk.stopwatch import StopWatch

log = logging.getLogger("kubetrade.risk")
POLICY_RESYNC_SECONDS = 3.0
REFRESH_PACE_SECONDS = 0.002
"""The pause between the steps of a refresh (and between chunks of stops): it spreads the
refresh's few milliseconds of CPU over a few tens, once a second."""
MIN_REFRESH_SECONDS = 0.25
"""Exchange errors hurry a refresh (the breaker may trip), but at most four a second."""
STATUS_EVERY_SECONDS = 15.0
ORDER_TTL_MS = 60_000
"""An approved order not on the exchange within this time is expired, not sent late."""
CATCH_UP_SECONDS = 2.0
"""How long a reduce-only decision waits for a re-read of the ledger when the sender reports a position
the book's last read does not hold (well inside a runner's 5 s request timeout)."""
CATCH_UP_GAP_SECONDS = 0.02
"""A catch-up refresh follows the previous one after at least this long (not MIN_REFRESH_SECONDS)."""
QUANTITY_TOLERANCE = 1e-9
"""Relative: two positions closer than this (float arithmetic of the same fills) are the same."""


def now_ms() -> int:
    return int(time.time() * 1000)


def breaker_event(key: tuple[str, str, str], b: Breaker, now: int) -> AlertEvent:
    """The platform event of a breaker that opened (firing) or closed (resolved)."""
    env, ns, pol = key
    since = b.since_ms or now
    if b.open:
        message = f"Circuit breaker of {ns}/{pol} ({env}) tripped: {b.reason}; no new positions until it closes"
        event_key = f"KubetradeBreakerTripped/{env}/{ns}/{pol}/{since}"
    else:
        message = f"Circuit breaker of {ns}/{pol} ({env}) closed: trading resumes"
        event_key = f"KubetradeBreakerTripped/{env}/{ns}/{pol}/closed/{since}"
    return AlertEvent(name="circuit breaker", severity="critical", status="firing" if b.open else "resolved",
                      namespace=ns, target=pol, message=message, time=now, source="platform",
                      alertname="KubetradeBreakerTripped", key=event_key,
                      labels={"category": "risk", "environment": env, "policy": pol},
                      description=b.reason or "" if b.open else "")


async def _pause() -> None:
    await asyncio.sleep(REFRESH_PACE_SECONDS)


class RiskManager:
    def __init__(
        self,
        dsn: str,
        nats_url: str,
        *,
        refresh_seconds: float = 1.0,
        cache_size: int = 100_000,
        settle_heap: bool = False,
    ) -> None:
        self.dsn = dsn
        self.nats_url = nats_url
        self.signing_key = signing.key_from_env()
        """Every approved order is signed with it, so that executors can tell it came from here."""
        self.refresh_seconds = refresh_seconds
        self.feed = MarketFeed()
        self.book = RiskBook(self.feed)
        self.policies = PolicyStore()
        self.stops = StopWatch(held=self._held, reserve=self._reserve_close)
        self.decisions: OrderedDict[str, bytes] = OrderedDict()
        """Decisions by client order id, encoded: bytes are invisible to the garbage collector."""
        self.cache_size = cache_size
        self.settle_heap = settle_heap
        """Freeze the heap once serving (:mod:`kubetrade.observability.heap`): for the service process, not a
        library user such as a test, whose heap it would freeze too."""
        self.nc: Any = None
        self.js: Any = None
        self.acked: AckedPublisher | None = None
        self.conn: psycopg.AsyncConnection[dict[str, Any]] | None = None
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()
        self.poke = asyncio.Event()
        self.hurry = False
        """A decision waits for the next refresh (:meth:`_catch_up`): start it without the usual gap."""
        self._refreshes_started = 0
        self._last_refresh_done = 0
        """The number (in start order) of the last refresh that completed."""
        self._refreshed = asyncio.Condition()
        self.stats = {"checks": 0, "approved": 0, "rejected": 0, "reduced": 0, "bad": 0}
        self._tasks: set[asyncio.Task[None]] = set()
        self._policy_sync = time.monotonic()
        self.refreshed_at: float | None = None
        """When the book was last read from the database (monotonic): the readiness probe's database check."""
        self.beat: Callable[[], None] = lambda: None
        """Called each turn of the main loop (the liveness probe's heartbeat)."""
        self._reported: dict[tuple[str, str, str], tuple[tuple[object, ...], float]] = {}

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        import nats

        initialize_risk_decisions()

        self.nc = await nats.connect(
            self.nats_url, **auth.credentials("risk-manager"), name="risk-manager", max_reconnect_attempts=-1,
            reconnect_time_wait=0.5
        )
        self.js = self.nc.jetstream()
        await ensure_order_streams(self.js)
        self.acked = AckedPublisher(self.nc)
        await self.acked.start()
        await self.policies.start(self.js)
        self.conn = await connection.connect(self.dsn)
        await self._timed_refresh()
        await self.nc.subscribe("md.>", cb=self._on_market_data)
        await self.nc.subscribe(subjects.exchange_errors("*"), cb=self._on_exchange_error)
        await self.nc.subscribe(subjects.RISK_CHECK, queue="risk-manager", cb=self._on_check)
        await self.nc.subscribe(subjects.RISK_CONTROL, cb=self._on_control)
        if self.settle_heap:
            heap.settle()
        self.ready.set()
        log.info("risk manager ready")
        stopping = asyncio.ensure_future(self.stopping.wait())
        try:
            last = time.monotonic()
            while not self.stopping.is_set():
                self.beat()
                poked = asyncio.ensure_future(self.poke.wait())
                # a stop wakes the wait as a poke does: a long refresh period must not delay shutdown
                await asyncio.wait((poked, stopping), timeout=self.refresh_seconds, return_when=asyncio.FIRST_COMPLETED)
                poked.cancel()
                if self.stopping.is_set():
                    break
                # exchange errors hurry a refresh, never more often than MIN_REFRESH_SECONDS (or the
                # configured period, if that is shorter)
                gap = min(CATCH_UP_GAP_SECONDS if self.hurry else MIN_REFRESH_SECONDS, self.refresh_seconds)
                await asyncio.sleep(max(0.0, gap - (time.monotonic() - last)))
                self.poke.clear()
                self.hurry = False
                last = time.monotonic()
                try:
                    await self._timed_refresh()
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    log.warning(
                        "database unavailable; decisions continue on the last state", extra={"error": str(exc)[:200]}
                    )
                    await self._reconnect()
        finally:
            stopping.cancel()
            self.ready.clear()
            await self.policies.stop()
            if self.conn is not None:
                await self.conn.close()
            await self.nc.drain()

    def readiness(self) -> list[str]:
        """What keeps the risk manager from deciding on current state (empty: ready)."""
        missing = []
        if self.nc is None or not self.nc.is_connected:
            missing.append("nats: not connected")
        if not self.ready.is_set():
            missing.append("starting: policies and the book are not loaded yet")
        elif self.refreshed_at is None or time.monotonic() - self.refreshed_at > max(15.0, 5 * self.refresh_seconds):
            age = "never" if self.refreshed_at is None else f"{time.monotonic() - self.refreshed_at:.0f}s ago"
            missing.append(f"database: unreachable (book last read {age})")
        return missing

    async def _reconnect(self) -> None:
        with contextlib.suppress(Exception):
            if self.conn is not None:
                await self.conn.close()
        try:
            self.conn = await connection.connect(self.dsn)
        except psycopg.OperationalError:
            await asyncio.sleep(1.0)

    def _policy_map(self) -> dict[tuple[str, str], RiskPolicySpec]:
        return {(p.namespace, p.name): p.spec for p in self.policies.policies.values()}

    async def _timed_refresh(self) -> None:
        """A refresh, timed, and the time of the last one that completed (an alert watches it)."""
        started = time.monotonic()
        self._refreshes_started += 1
        number = self._refreshes_started
        await self._refresh()
        self.refreshed_at = time.monotonic()
        async with self._refreshed:
            self._last_refresh_done = number
            self._refreshed.notify_all()
        RISK_REFRESH_SECONDS.observe(time.monotonic() - started)
        RISK_LAST_REFRESH.set(time.time())
        await self._announce_breakers()

    async def _announce_breakers(self) -> None:
        """A breaker that opened or closed is a platform event (``KubetradeBreakerTripped``, critical, with its
        reason) on ``events.alerts.critical``; the API's alert dispatcher hands it to Alertmanager.  Published
        with its key as the JetStream message id, so a re-send is stored once; one that cannot be published
        now is tried again after the next refresh (and the breaker's gauge alerts meanwhile)."""
        if not self.book.breaker_changes or self.acked is None:
            return
        pending, self.book.breaker_changes = self.book.breaker_changes, []
        for i, (key, b) in enumerate(pending):
            event = breaker_event(key, b, now_ms())
            try:
                await self.acked.publish(subjects.alerts(event.severity), codec.encode(event),
                                         headers={"Nats-Msg-Id": event.key or ""})
            except Exception as exc:
                log.warning("breaker event not published yet", extra={"error": type(exc).__name__})
                self.book.breaker_changes = pending[i:] + self.book.breaker_changes
                return

    async def _refresh(self) -> None:
        """Re-read the book and the stops.  Between its steps it lets the event loop answer the
        decisions that arrived meanwhile, and pauses (:data:`REFRESH_PACE_SECONDS`): a refresh
        is milliseconds of CPU here and in PostgreSQL, and taken in one go on a busy machine
        it is a stall that a thousand signals a second queue behind."""
        assert self.conn is not None
        await self.book.refresh(self.conn, self._policy_map(), pace=_pause)
        closes_in_flight = bool(self.stops.closing)
        # closing orders first: a close seen done here is already reflected in the positions read next
        if closes_in_flight:
            done = await queries.finished(self.conn, list(self.stops.closing))
            for o in done:
                self.stops.closing.discard(o["client_order_id"])
                key = (o["environment"], o["namespace"], o["strategy"], o["symbol"])
                self.stops.stops.pop(key, None)  # reloaded below from the positions, if still open
                if o["status"] != "filled":  # the close failed: the next trigger gets a new id
                    await ledger_stops.next_generation(
                        self.conn, o["environment"], o["namespace"], o["strategy"], o["symbol"]
                    )
        # with no close in flight, the positions the book just read are the ones to watch
        rows = await queries.open_positions(self.conn) if closes_in_flight else self.book.open_positions
        # paced as the book is, in at most MAX_CHUNKS steps however many positions and symbols there are
        for _ in self.stops.loading(rows, self._stop_settings, chunk=max(64, -(-len(rows) // MAX_CHUNKS))):
            await _pause()
        # a price that arrived before a new position's stop was loaded still counts
        symbols = sorted({k[3] for k in self.stops.stops})
        per_pause = max(1, -(-len(symbols) // MAX_CHUNKS))
        for i, sym in enumerate(symbols):
            h = self.feed.symbols.get(sym)
            if h is not None and h.price > 0:
                with contextlib.suppress(Exception):
                    # a candle's close names its bar: the paper fill is then the kernel's, not the close
                    await self.stops.on_price(self.js, sym, h.price, h.bar)
            if (i + 1) % per_pause == 0:
                await _pause()
        await self.stops.save(self.conn)
        for p in self.book.portfolios.values():
            self.book.returns_for(p)
        await _pause()
        if time.monotonic() - self._policy_sync >= POLICY_RESYNC_SECONDS:
            self._policy_sync = time.monotonic()
            try:
                await self.policies.resync(self.js)
            except Exception as exc:  # NATS down: the policies in force stay in force
                log.warning("policy resync failed", extra={"error": str(exc)[:200]})
        await self._report()

    def _held(self, key: tuple[str, str, str, str]) -> float | None:
        """The book's holding of a position: filled as of the last refresh, plus approved orders since."""
        env, ns, strategy, symbol = key
        p = self.book.portfolio_of(env, ns, strategy)
        return None if p is None else p.state.holdings.get((strategy, symbol), 0.0)

    def _reserve_close(self, key: tuple[str, str, str, str], coid: str, signed_qty: float | None) -> None:
        """A stop's close, counted in the book like an approved order (None: it was not sent after all)."""
        env, ns, strategy, symbol = key
        p = self.book.portfolio_of(env, ns, strategy)
        if p is None:
            return
        if signed_qty is None:
            gone = p.reservations.pop(coid, None)
            if gone is not None:
                hold(p.state, strategy, symbol, -gone.signed_qty)
            return
        if coid in p.reservations:  # the same close again (same id): counted once
            return
        p.reservations[coid] = Reservation(strategy, symbol, signed_qty, now_ms())
        hold(p.state, strategy, symbol, signed_qty)

    def _stop_settings(self, env: str, ns: str, strategy: str) -> Any:
        p = self.book.portfolio_of(env, ns, strategy)
        pub = self.policies.get(ns, p.key[2]) if p else None
        return pub.spec.stop_loss if pub else None

    # --- handlers ----------------------------------------------------------------------

    async def _on_market_data(self, msg: Any) -> None:
        got = self.feed.on_message(msg.subject, msg.data)
        bar = None
        if got is not None and ".candle." in msg.subject:
            with contextlib.suppress(codec.BadMessage):
                c = codec.decode(Candle, msg.data)
                bar = (c.timeframe, c.time)
                self.feed.symbols[got[1]].bar = bar
        if got is not None and self.stops.stops:
            try:
                await self.stops.on_price(self.js, got[1], got[2], bar)
            except Exception as exc:  # NATS restarting: the next price retries the same id
                log.warning("stop order not published", extra={"error": str(exc)[:200]})

    async def _on_exchange_error(self, msg: Any) -> None:
        """An order event reporting an exchange error: counted for the burst breaker, and a refresh soon."""
        try:
            event = codec.decode(OrderEvent, msg.data)
        except codec.BadMessage:
            return
        if event.exchange_error:
            self.book.note_exchange_error(event.environment, event.time)
        self.poke.set()

    async def _on_check(self, msg: Any) -> None:
        """Each request in its own task: waiting for JetStream's ack must not hold up the next decision."""
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Any) -> None:
        self.stats["checks"] += 1
        try:
            signal = codec.decode(Signal, msg.data)
        except codec.BadMessage as exc:
            self.stats["bad"] += 1
            with contextlib.suppress(Exception):
                await codec.dead_letter(self.nc, msg.subject, msg.data, str(exc))
            await msg.respond(json.dumps({"error": str(exc)}).encode())
            return
        with tracing.consumer_span("risk.check", msg, strategy=signal.strategy, environment=signal.mode):
            decision = await self.check(signal)
        verdict = "rejected" if not decision.approved else "approved"
        if decision.approved and decision.quantity < signal.quantity:
            verdict = "reduced"
        labelled(RISK_DECISIONS, signal.mode, verdict, decision.rule or "none").inc()
        await msg.respond(codec.encode(decision))
        if not decision.approved and not signal.dry_run and decision.rule not in ("submissionUncertain", "bookBehind"):
            await self._tell_rejected(signal, decision)

    async def _tell_rejected(self, signal: Signal, decision: RiskDecision) -> None:
        """Record the refusal where people look (the console's rejections; the EVENTS stream keeps it):
        a refused signal leaves no order row.  After the answer, so it costs the decision nothing."""
        event = RiskRejection(
            client_order_id=signal.client_order_id, strategy=signal.strategy, namespace=signal.namespace,
            environment=signal.mode, exchange=signal.exchange, symbol=signal.symbol, side=signal.side,
            quantity=signal.quantity, price=signal.price, reduce_only=signal.reduce_only, rule=decision.rule,
            reasons=decision.reasons, policy=decision.policy, time=decision.time)
        try:
            await self.nc.publish(subjects.risk_rejected(signal.strategy), codec.encode(event))
        except Exception as exc:  # the decision stands; only its record is missing
            log.warning("rejection not published", extra={"error": type(exc).__name__})

    async def check(self, signal: Signal) -> RiskDecision:
        """Decide on one signal and, if approved, submit its order; idempotent per client order id."""
        cached = None if signal.dry_run else self.decisions.get(signal.client_order_id)
        if cached is not None:
            return codec.decode(RiskDecision, cached)
        now = now_ms()
        portfolio = self.book.portfolio_of(signal.mode, signal.namespace, signal.strategy)
        # configuration problems are not remembered: once fixed, a retry of this id deserves a real decision
        if portfolio is None:
            return reject(
                signal, "allocation", f"no ledger: the strategy has no capital allocated in {signal.mode}", now
            )
        pub = self.policies.get(signal.namespace, portfolio.key[2])
        if pub is None:
            return reject(
                signal,
                "policy",
                f"RiskPolicy {signal.namespace}/{portfolio.key[2]} is not published: no policy, no trading",
                now,
            )
        self.book.apply_market(portfolio)
        decision = decide(pub.spec, portfolio.state, signal, now, f"{pub.namespace}/{pub.name}", pub.revision)
        if self._behind(portfolio, signal, decision):
            # the sender holds a position the book's last read of the ledger does not: a fill it booked
            # landed after that read (or was approved elsewhere: another replica, before a restart).
            # Decide on a fresh read, not on the stale one: refusing would drop a real exit.
            caught = await self._catch_up()
            cached = None if signal.dry_run else self.decisions.get(signal.client_order_id)
            if cached is not None:  # the same id, decided by a retry meanwhile
                return codec.decode(RiskDecision, cached)
            now = now_ms()
            portfolio = self.book.portfolio_of(signal.mode, signal.namespace, signal.strategy)
            pub = self.policies.get(signal.namespace, portfolio.key[2]) if portfolio is not None else None
            if portfolio is None or pub is None:
                return reject(signal, "bookBehind", "the strategy's ledger or policy is gone since the re-read", now)
            held = portfolio.state.position(signal.strategy, signal.symbol)
            if not caught:  # not remembered: a retry with this id gets a real decision
                return reject(
                    signal, "bookBehind",
                    f"reduce-only {signal.side}: the sender holds {signal.position:g} {signal.symbol}, the risk "
                    f"book {held:g}, and the ledger could not be re-read within {CATCH_UP_SECONDS:g}s; not decided: "
                    "retry with the same clientOrderId", now)
            self.book.apply_market(portfolio)
            decision = decide(pub.spec, portfolio.state, signal, now, f"{pub.namespace}/{pub.name}", pub.revision)
            if not decision.approved and decision.rule == "reduceOnly":
                filled = portfolio.filled.get((signal.strategy, signal.symbol), 0.0)
                decision = decision.model_copy(update={"reasons": [
                    *decision.reasons, f"the ledger, re-read, holds {filled:g} (the sender said {signal.position:g})"]})
        if signal.dry_run:
            return decision
        if not decision.approved:
            self.stats["rejected"] += 1
            portfolio.violations += 1
            portfolio.dirty = True
            return self._remember(decision)
        if not signal.reduce_only:
            key = (signal.mode, signal.namespace, signal.strategy, signal.symbol)
            if abs(self._held(key) or 0.0) <= 1e-12:
                # a new position where the last one was closed since the stops were loaded: that one's stop
                # (its entry, its quantity) must not guard this one; the next load brings this one's stop
                self.stops.forget(key)
        # reserve before the first await: the next signal, decided while this order is being
        # published, already sees its size (decide + reserve are one step for the event loop)
        reserve(portfolio.state, signal, decision)
        self._reserve(portfolio, signal, decision, now)
        self._remember(decision)
        try:
            await self._submit(signal, decision, pub.spec)
        except Exception as exc:
            # the order may or may not be in the stream: the size stays reserved, the answer is
            # "not approved", and a retry with the same id re-publishes (JetStream drops a duplicate)
            self.decisions.pop(signal.client_order_id, None)
            return reject(
                signal,
                "submissionUncertain",
                f"order not confirmed by JetStream ({type(exc).__name__}); retry with the same clientOrderId",
                now,
            )
        self.stats["approved"] += 1
        if decision.quantity < signal.quantity:
            self.stats["reduced"] += 1
            portfolio.violations += 1
            portfolio.dirty = True
        return decision

    @staticmethod
    def _behind(p: Portfolio, signal: Signal, d: RiskDecision) -> bool:
        """Whether a reduce-only decision that is not a full approval rests on a read of the ledger
        older than the sender's fills: the sender reports a position to reduce (on this decision's side)
        that the last read's *filled* position is not.  A close in flight (a stop's, counted in the
        holdings) is not staleness: the filled position then is the sender's, and the refusal stands."""
        claimed = signal.position
        if not signal.reduce_only or claimed is None or (d.approved and d.quantity >= signal.quantity):
            return False
        if claimed == 0.0 or (claimed > 0) != (signal.side == "sell"):
            return False  # nothing to reduce by the sender's own account: the decision stands
        filled = p.filled.get((signal.strategy, signal.symbol), 0.0)
        return abs(filled - claimed) > QUANTITY_TOLERANCE * max(abs(claimed), abs(filled))

    async def _catch_up(self) -> bool:
        """Wait for a refresh that starts from now (asked for at once); False if none completes in time."""
        target = self._refreshes_started + 1  # one already running may have read before the sender's fill
        self.hurry = True
        self.poke.set()
        try:
            async with asyncio.timeout(CATCH_UP_SECONDS), self._refreshed:
                await self._refreshed.wait_for(lambda: self._last_refresh_done >= target)
        except TimeoutError:
            return False
        return True

    def _reserve(self, p: Portfolio, signal: Signal, d: RiskDecision, now: int) -> None:
        sign = 1.0 if signal.side == "buy" else -1.0
        p.reservations[signal.client_order_id] = Reservation(signal.strategy, signal.symbol, sign * d.quantity, now)

    async def _submit(self, signal: Signal, d: RiskDecision, spec: RiskPolicySpec) -> None:
        order = OrderRequest(
            client_order_id=signal.client_order_id,
            strategy=signal.strategy,
            namespace=signal.namespace,
            environment=signal.mode,
            exchange=signal.exchange,
            symbol=signal.symbol,
            side=signal.side,
            type=signal.order_type,
            quantity=d.quantity,
            price=signal.price,
            stop_price=d.stop_price,
            trailing_pct=signal.trailing_pct
            or ((spec.stop_loss.trailing_pct or spec.stop_loss.default_stop_pct) if spec.stop_loss.trailing else None),
            reduce_only=signal.reduce_only,
            bar_exit=signal.bar_exit if signal.mode == "paper" and signal.reduce_only else None,
            fee_rate=0.001 if signal.fee_rate is None else signal.fee_rate,
            slippage_bps=2.0 if signal.slippage_bps is None else signal.slippage_bps,
            time=d.time,
            expires_at=d.time + ORDER_TTL_MS,
        )
        assert self.acked is not None
        subject, data = subjects.order_submit(order.environment), codec.encode(order)
        await self.acked.publish(
            subject,
            data,
            headers=tracing.inject(signing.headers(self.signing_key, subject, order.client_order_id, data)),
            ack_wait=2.0,
        )

    def _remember(self, d: RiskDecision) -> RiskDecision:
        self.decisions[d.client_order_id] = codec.encode(d)
        while len(self.decisions) > self.cache_size:
            self.decisions.popitem(last=False)
        return d

    # --- control and reporting ---------------------------------------------------------

    async def _on_control(self, msg: Any) -> None:
        try:
            req = codec.decode(RiskControlRequest, msg.data)
        except codec.BadMessage as exc:
            await msg.respond(codec.encode(RiskControlReply(ok=False, message=str(exc))))
            return
        chosen = [
            p
            for p in self.book.portfolios.values()
            if (req.environment is None or p.key[0] == req.environment)
            and (req.namespace is None or p.key[1] == req.namespace)
            and (req.policy is None or p.key[2] == req.policy)
        ]
        if req.action == "reset-breaker":
            for p in chosen:
                was_open = p.state.breaker.open
                p.state.breaker = breaker.reset(p.state, now_ms())
                p.dirty = True
                if was_open:
                    self.book.breaker_changes.append((p.key, p.state.breaker))
            if self.conn is not None:
                await self.book.save(self.conn)
            await self._announce_breakers()
            await msg.respond(
                codec.encode(
                    RiskControlReply(
                        ok=True, message=f"reset {len(chosen)} breaker(s)", portfolios=[self.metrics(p) for p in chosen]
                    )
                )
            )
            return
        await msg.respond(codec.encode(RiskControlReply(ok=True, portfolios=[self.metrics(p) for p in chosen])))

    def metrics(self, p: Portfolio) -> PortfolioRisk:
        env, ns, pol = p.key
        st = p.state
        pub = self.policies.get(ns, pol)
        values: dict[str, float] = {}
        for (_, sym), q in st.holdings.items():
            values[sym] = values.get(sym, 0.0) + q * st.prices.get(sym, 0.0)
        var = cvar = None
        if pub is not None:
            pl = pub.spec.portfolio_limits
            res = measures.portfolio_var(
                values, st.daily_returns, pl.var_confidence, pl.var_method, pl.var_lookback_days
            )
            if res is not None:
                var, cvar = res.var, res.cvar
        return PortfolioRisk(
            environment=env,
            namespace=ns,
            policy=pol,
            policy_revision=pub.revision if pub else None,
            equity=st.equity,
            peak_equity=st.peak_equity,
            drawdown=1 - st.equity / st.peak_equity if st.peak_equity > 0 else 0.0,
            daily_pnl_pct=st.equity / st.day_start_equity - 1 if st.day_start_equity > 0 else 0.0,
            gross_exposure=sum(abs(v) for v in values.values()),
            open_positions=st.open_positions(),
            var=var,
            cvar=cvar,
            breaker_open=st.breaker.open,
            breaker_reason=st.breaker.reason,
            kill_switch=bool(pub and pub.spec.circuit_breaker.kill_switch),
            violations=p.violations,
            strategies=sorted(st.capital),
        )

    async def _report(self) -> None:
        """Status of each policy for the operator: the live portfolio if the policy has one, else paper."""
        live = {(p.key[1], p.key[2]) for p in self.book.portfolios.values() if p.key[0] == "live" and p.state.capital}
        for p in self.book.portfolios.values():
            env, ns, pol = p.key
            m = self.metrics(p)
            pub = self.policies.get(ns, pol)
            limits = pub.spec.portfolio_limits if pub is not None else None
            export_portfolio(m, limits.max_drawdown_pct if limits else None, limits.var_limit_pct if limits else None)
            if env == "paper" and (ns, pol) in live:
                continue
            b = p.state.breaker
            status = {
                "equity": m.equity,
                "peakEquity": m.peak_equity,
                "currentDrawdown": m.drawdown,
                "violations": m.violations,
                "breaker": {"state": "Open" if b.open else "Closed", "reason": b.reason},
            }
            # the operator patches the resource per report: send changes of state at once, figures every 15 s
            sig = (b.open, b.reason, m.violations)
            last = self._reported.get(p.key)
            if last is not None and last[0] == sig and time.monotonic() - last[1] < STATUS_EVERY_SECONDS:
                continue
            self._reported[p.key] = (sig, time.monotonic())
            report = StatusReport(kind="RiskPolicy", namespace=ns, name=pol, status=status, time=now_ms())
            with contextlib.suppress(Exception):
                await self.nc.publish(subjects.status_report("RiskPolicy", ns, pol), codec.encode(report))
