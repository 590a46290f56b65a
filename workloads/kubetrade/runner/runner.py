"""The runner's I/O shell: candles in, risk requests out, order events in, status out.

Per closed candle of one of its symbols the runner (1) feeds the live signal function -
the backtester's own kernel - (2) turns its decision into order intents against what the
strategy actually holds (:mod:`kubetrade.runner.intents`), (3) asks the risk manager on
``risk.check`` (request/reply; the risk manager itself publishes an approved order to the
executor's JetStream subject, so *nothing* reaches an executor without an approval), and
(4) waits for the order to settle before the next bar.  Faults, and what they do:

* **Risk manager unreachable** (no responders, timeout): no order; the intent is kept and
  asked again at the next bar *with the same client order id*, so a reply that was merely
  lost returns the cached decision instead of a second order.
* **Executor unreachable**: the approved order waits in JetStream; the runner keeps it in
  flight (no new order for that symbol) and books it when its events arrive - never resent,
  never forgotten.
* **SIGTERM**: the current bar is finished (a request in flight is answered or timed out,
  never cut), a last status is published, then the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubetrade import settings
from kubetrade.engine import codes as bt
from kubetrade.engine.compile import alt_refs
from kubetrade.engine.costs import bps_to_fraction
from kubetrade.engine.stream import StreamSignal, genome_streams
from kubetrade.messaging import auth, codec, kv, subjects
from kubetrade.messaging.schemas import (
    TERMINAL_STATUSES,
    AltPoint,
    Candle,
    OrderEvent,
    RiskDecision,
    Signal,
    StatusReport,
)
from kubetrade.observability import tracecontext as tracing
from kubetrade.prediction.errors import ModelInputError
from kubetrade.runner.account import Book
from kubetrade.runner.config import RunnerConfig
from kubetrade.runner.intents import Intent, Sizing, intents
from kubetrade.runner.paritycheck import ParityCheck
from kubetrade.runner.probes import Probes, RunnerMetrics
from kubetrade.runner.store import books, history
from kubetrade.timeframes import Bars, CandleError, timeframe_ms

log = logging.getLogger("kubetrade.runner")


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def live_signal(genome: Any, **kw: Any) -> Any:
    """The genome's live signal: streamed in plain Python when it can be, else the numba kernel's window.

    StreamSignal (every built-in indicator) keeps numba and LLVM out of the runner's process; a
    genome with an indicator registered at run time (the ONNX ``prediction``) needs the kernel's
    :class:`~kubetrade.engine.live.LiveSignal`, imported only then (docs/architecture.md).
    """
    if not needs_kernels(genome, kw.get("market", "spot")):
        kw.pop("alt", None)  # a streamable genome has no alternative-data operands
        return StreamSignal(genome, **kw)
    from kubetrade.engine.live import LiveSignal

    return LiveSignal(genome, **kw)


def needs_kernels(genome: Any, market: str) -> bool:
    """Whether this genome's live signal runs the numba kernels (then compile them before the first bar)."""
    if settings.current().runner_signal == "kernel":
        return True
    # False too for an indicator registered at run time whose model was refused: the runner says so
    return not genome_streams(genome, market)  # type: ignore[arg-type]


@dataclass
class SymbolState:
    symbol: str
    index: int
    book: Book
    live: StreamSignal | Any = None
    """The live signal: a StreamSignal, or the kernel's LiveSignal for a genome that needs it."""
    last_time: int = -1
    undecided: dict[str, Intent] = field(default_factory=dict)
    inflight: dict[str, Intent] = field(default_factory=dict)


@dataclass
class RunnerOptions:
    probe_port: int | None = 9090
    status_interval: float = 10.0
    status_min_interval: float = 1.0
    """Shortest gap between two on-change status reports (0: one per change)."""
    risk_timeout: float = 5.0
    order_wait: float = 30.0
    warmup_wait: float = 10.0
    """How long to wait for the stored history to reach the first live candle (the sink may lag)."""
    compile: Callable[[], None] | None = None
    """Compiles (or loads) the numba kernels before the first bar; run in a thread once the probes
    answer, so a slow compile (a minute and more on a busy node) is "not ready", never "dead"."""


class Runner:
    def __init__(self, cfg: RunnerConfig, nats_url: str, dsn: str | None, options: RunnerOptions | None = None) -> None:
        self.cfg = cfg
        self.spec = cfg.spec
        self.nats_url, self.dsn = nats_url, dsn
        self.opts = options or RunnerOptions()
        share = self.spec.capital.amount / len(self.spec.symbols)
        self.symbols = {s: SymbolState(s, i, Book(share)) for i, s in enumerate(self.spec.symbols)}
        self.queue: asyncio.Queue[tuple[Candle, Any]] = asyncio.Queue()
        """Closed candles and the messages they came in (whose headers carry the trace)."""
        self.done: dict[str, asyncio.Event] = {}
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self.started = asyncio.Event()
        """Set once the candle and order-event subscriptions are in place."""
        self.metrics = RunnerMetrics(cfg.name)
        self.probes = Probes(self.metrics, self._not_ready)
        self.multiplier = 1.0
        self.issue: str | None = None
        self.last_signal_ms: int | None = None
        self.rejections = 0
        self.nc: Any = None
        self.probe_port: int | None = None
        self._changed = asyncio.Event()
        self._last_report = 0.0
        self._started_at = time.monotonic()
        self.fee = self.spec.execution.fee_rate
        self.slippage = bps_to_fraction(self.spec.execution.slippage_bps)
        self.bar_ms = timeframe_ms(self.spec.timeframe)
        self.alt_refs = alt_refs(cfg.genome)
        self.alt: dict[str, Any] = {}
        """AltSeries by key (engine.altdata, imported only for a genome that uses alternative data: numpy)."""
        """The alternative-data series the genome uses: stored history at warm-up, then each point as it arrives."""
        self._alt_loaded = False
        self.check = ParityCheck(365 * 86_400_000 / self.bar_ms)
        """Paper trading against a backtest of the same bars (``status.paperCheck``, the live gate's input)."""

    # --- lifecycle ---------------------------------------------------------------------

    def _not_ready(self) -> str | None:
        if self.nc is None:
            return self.issue or "connecting to NATS"
        if not self.nc.is_connected:
            return "not connected to NATS"
        if not self.ready.is_set():
            return self.issue or "waiting for the first candle (warm-up)"
        return None

    async def _compile(self, compile_kernels: Callable[[], None]) -> None:
        self.issue = "compiling the strategy's kernels"
        done = asyncio.Event()

        async def beat() -> None:  # the main loop has not started: the compile is what is alive
            while not done.is_set():
                self.probes.beat()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 5)

        beating = asyncio.create_task(beat())
        try:
            await asyncio.to_thread(compile_kernels)
        finally:
            done.set()
            await beating
        self.issue = None

    async def run(self) -> None:
        import nats

        if self.opts.probe_port is not None:
            self.probe_port = await self.probes.start(self.opts.probe_port)
        if self.cfg.model_error is not None:
            await self._refuse(self.cfg.model_error)
            return
        if self.opts.compile is not None:
            await self._compile(self.opts.compile)
        self.nc = await nats.connect(self.nats_url, **auth.credentials("runner"), name=f"runner-{self.cfg.name}",
                                     max_reconnect_attempts=-1, reconnect_time_wait=0.5)
        try:
            await self._open_books()
            subs = [await self.nc.subscribe(subjects.order_events(self.spec.mode, self.cfg.name), cb=self._on_event)]
            for ref in self.alt_refs:
                subs.append(await self.nc.subscribe(f"alt.*.{subjects.token(ref.provider)}.{subjects.token(ref.topic)}",
                                                    cb=self._on_alt))
            for s in self.spec.symbols:
                subs.append(await self.nc.subscribe(subjects.candle(self.spec.exchange, s, self.spec.timeframe),
                                                    cb=self._on_candle))
            await self.nc.flush()  # the server has our subscriptions before anyone is told we started
            log.info("runner started", extra={"strategy": self.cfg.label, "mode": self.spec.mode,
                                              "symbols": self.spec.symbols, "timeframe": self.spec.timeframe})
            self.started.set()
            reporter = asyncio.create_task(self._report_loop())
            try:
                while not self.stopping.is_set():
                    self.probes.beat()
                    try:
                        candle, msg = await asyncio.wait_for(self.queue.get(), 1.0)
                    except TimeoutError:
                        continue
                    try:
                        # the candle's trace continues through this bar's signals, decisions and orders
                        with tracing.consumer_span("runner.bar", msg, strategy=self.cfg.label, symbol=candle.symbol):
                            await self._on_bar(candle)
                    except ModelInputError as exc:  # no prediction from bad inputs, never a silent zero
                        self.issue = f"model refused: bar {iso(candle.time)}: {str(exc)[:300]}; no order on it"
                        self.metrics.model_refused.set(1)
                        log.error("model refused its input; no order on this bar",
                                  extra={"strategy": self.cfg.label, "bar": iso(candle.time), "error": str(exc)})
                        self._changed.set()
                    except Exception as exc:  # one bad bar must not take the strategy down; say so loudly
                        self.issue = f"bar {iso(candle.time)} failed: {type(exc).__name__}: {str(exc)[:200]}"
                        log.exception("bar failed", extra={"strategy": self.cfg.label, "bar": iso(candle.time)})
                        self._changed.set()
            finally:
                for sub in subs:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter
                await self.publish_status(force=True)
                log.info("runner stopped", extra={"strategy": self.cfg.label, "inflight": self._inflight_ids()})
        finally:
            await self.probes.stop()
            with contextlib.suppress(Exception):
                await self.nc.drain()

    async def _refuse(self, reason: str) -> None:
        """A model the strategy needs was refused: trade nothing, say why until stopped (status, metric, log)."""
        import nats

        self.issue = f"model refused: {reason}; not trading"
        self.metrics.model_refused.set(1)
        log.error("model refused; the strategy does not trade", extra={"strategy": self.cfg.label, "error": reason})
        self.nc = await nats.connect(self.nats_url, **auth.credentials("runner"), name=f"runner-{self.cfg.name}",
                                     max_reconnect_attempts=-1, reconnect_time_wait=0.5)
        try:
            self.started.set()
            while not self.stopping.is_set():
                self.probes.beat()
                await self.publish_status(force=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), self.opts.status_interval)
            await self.publish_status(force=True)
        finally:
            await self.probes.stop()
            with contextlib.suppress(Exception):
                await self.nc.drain()

    def _inflight_ids(self) -> list[str]:
        return [c for st in self.symbols.values() for c in (*st.inflight, *st.undecided)]

    async def _open_books(self) -> None:
        """Allocate the ledger (idempotent) and rebuild the books from the fills already recorded.

        The database work runs in a process of its own (:mod:`kubetrade.runner.store`): no psycopg here."""
        if not self.dsn:
            log.warning("no database: books start from the allocated capital", extra={"strategy": self.cfg.label})
            return
        fills = await books(self.dsn, self.spec.mode, self.cfg.namespace, self.cfg.name, self.spec.capital.amount,
                            self.spec.risk_policy_ref.name, self.spec.capital.currency)
        for coid, trade_id, symbol, side, qty, price, fee, t in fills:
            self._book_fill(coid, trade_id, symbol, side, qty, price, fee, t)

    # --- inputs ------------------------------------------------------------------------

    async def _on_candle(self, msg: Any) -> None:
        try:
            candle = codec.decode(Candle, msg.data)
        except codec.BadMessage as exc:
            log.warning("candle not understood; skipped", extra={"subject": msg.subject, "error": str(exc)})
            return
        await self.queue.put((candle, msg))

    async def _on_alt(self, msg: Any) -> None:
        """A new alternative-data point of a series the genome uses: from now on, bars closing after it see it."""
        from kubetrade.engine import altdata

        try:
            p = codec.decode(AltPoint, msg.data)
        except codec.BadMessage:
            return
        for ref in self.alt_refs:
            if (ref.provider, ref.topic, ref.metric) == (p.provider, p.topic, p.metric):
                s = self.alt.get(ref.key)
                try:
                    self.alt[ref.key] = (altdata.series(ref, [p.time], [p.value]) if s is None
                                         else altdata.append(s, p.time, p.value))
                except altdata.AltDataError as exc:
                    log.warning("alternative-data point refused", extra={"strategy": self.cfg.label,
                                                                          "error": str(exc)})

    async def _load_alt(self, first: Candle) -> None:
        """The stored history of the genome's alternative-data series, once, from before the warm-up's first bar."""
        if self._alt_loaded or not self.alt_refs:
            return
        self._alt_loaded = True
        if self.dsn is None:
            log.warning("no database: alternative data starts empty and fills as points arrive",
                        extra={"strategy": self.cfg.label})
            return
        import psycopg

        from kubetrade.engine import altdata
        from kubetrade.storage import altpoints

        since = datetime.fromtimestamp((first.time - self.spec.warmup_bars * self.bar_ms) / 1000 - 7 * 86400, UTC)
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            stored = await altpoints.load(conn, self.alt_refs, since, required=False)
        for key, s in stored.items():
            now = self.alt.get(key)
            if now is not None:  # points that arrived while loading stay
                for t, v in zip(now.known, now.values, strict=True):
                    s = altdata.append(s, int(t) - altdata.known_after(s.ref.provider, s.ref.metric), float(v))
            self.alt[key] = s
        missing = [r.key for r in self.alt_refs if r.key not in self.alt]
        if missing:
            self.issue = f"no alternative data stored for {', '.join(missing)}: rules on it stay false until it comes"
            log.warning("alternative data missing", extra={"strategy": self.cfg.label, "series": missing})

    def _bar_time(self, coid: str, fallback: int) -> int:
        parts = coid.split("-")
        if len(parts) == 4 and parts[0] == self.cfg.order_prefix and parts[2].isdigit():
            return int(parts[2])
        return fallback

    def _book_fill(self, coid: str, trade_id: str, symbol: str, side: str, qty: float, price: float, fee: float,
                   t: int) -> bool:
        st = self.symbols.get(symbol)
        if st is None:
            return False
        before = len(st.book.trades)
        booked = st.book.apply_fill(trade_id, symbol, side, float(qty), float(price), float(fee),
                                    self._bar_time(coid, t))
        if len(st.book.trades) > before:
            self.metrics.trades.inc(len(st.book.trades) - before)
        return booked

    async def _on_event(self, msg: Any) -> None:
        try:
            ev = codec.decode(OrderEvent, msg.data)
        except codec.BadMessage:
            return
        if ev.namespace != self.cfg.namespace:
            return
        if ev.fill is not None:
            self._book_fill(ev.client_order_id, ev.fill.trade_id, ev.symbol, ev.side, ev.fill.quantity,
                            ev.fill.price, ev.fill.fee, ev.fill.time)
        if ev.status in TERMINAL_STATUSES:
            self.metrics.orders.labels(self.cfg.name, ev.status).inc()
            st = self.symbols.get(ev.symbol)
            if st is not None and st.inflight.pop(ev.client_order_id, None) is not None and ev.status != "filled":
                log.warning("order ended without a fill", extra={"strategy": self.cfg.label, "status": ev.status,
                                                                 "client_order_id": ev.client_order_id,
                                                                 "reason": ev.reason})
            self.done.setdefault(ev.client_order_id, asyncio.Event()).set()
            if self.issue and self.issue.startswith("executor"):
                self.issue = None
        self._changed.set()

    # --- one bar -----------------------------------------------------------------------

    async def _history(self, symbol: str, before: int) -> Bars | None:
        """The stored candles right before ``before`` (contiguous with it), or None."""
        if self.dsn is None or self.spec.warmup_bars == 0:
            return None
        # asked again for up to warmup_wait until the newest stored bar is the one before ``before``
        work = asyncio.ensure_future(history(self.dsn, self.spec.exchange, symbol, self.spec.timeframe,
                                             before - self.spec.warmup_bars * self.bar_ms, before,
                                             self.spec.warmup_bars, self.opts.warmup_wait))
        stopping = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not work.done():  # stopping: the runner is going; the work is not wanted
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            return None
        rows = work.result()
        if not rows or rows[-1][0] != before - self.bar_ms:
            log.warning("no stored history reaches the first live candle; indicators warm up live",
                        extra={"strategy": self.cfg.label, "symbol": symbol, "stored": len(rows)})
            return None
        c = Bars.of_rows(rows, self.spec.timeframe)  # type: ignore[arg-type]
        gaps = [i for i in range(1, len(c)) if c.time[i] - c.time[i - 1] != self.bar_ms]
        return c.since(gaps[-1]) if gaps else c

    async def _warm(self, st: SymbolState, first: Candle) -> None:
        await self._load_alt(first)
        st.live = live_signal(self.cfg.genome, market=self.spec.market, timeframe=self.spec.timeframe,
                              fee=self.fee, slippage=self.slippage, capital=st.book.capital, alt=self.alt)
        hist = await self._history(st.symbol, first.time)
        if hist is not None and len(hist):
            st.live.prime(hist)
        held = st.book.position(st.symbol)
        if held != 0:
            if hist is not None and len(hist) > 0:
                self._adopt(st, held, len(hist) - 1, float(hist.close[-1]))
            else:
                self._adopt(st, held, -1, first.open)
        log.info("warmed up", extra={"strategy": self.cfg.label, "symbol": st.symbol,
                                     "bars": 0 if hist is None else len(hist), "first_live": iso(first.time)})

    def _adopt(self, st: SymbolState, held: float, bar: int, close: float) -> None:
        """A restarted runner takes over the position its fills say it holds (rather than closing it):
        from the next bar the genome's exits and stops manage it as if it had opened it on the last stored bar."""
        assert st.live is not None
        pos = st.book.positions[st.symbol]
        state = st.live.state
        state[bt.S_SIDE] = 1.0 if held > 0 else -1.0
        state[bt.S_QTY] = abs(held)
        state[bt.S_CASH] = st.book.cash
        state[bt.S_CASH_BEFORE] = pos.cash_before
        state[bt.S_ENTRY_PX] = pos.average_price
        state[bt.S_EXTREME] = close
        state[bt.S_ENTRY_BAR] = float(bar)
        log.info("adopted the open position", extra={"strategy": self.cfg.label, "symbol": st.symbol,
                                                     "quantity": held, "average_price": pos.average_price})

    async def _on_bar(self, c: Candle) -> None:
        st = self.symbols.get(c.symbol)
        if st is None or c.timeframe != self.spec.timeframe or c.time <= st.last_time:
            return
        if st.live is None:
            await self._warm(st, c)
        assert st.live is not None
        try:
            sig = st.live.on_bar(c.time, c.open, c.high, c.low, c.close, c.volume)
        except CandleError as exc:
            log.warning("candle gap; warming up again from history", extra={"strategy": self.cfg.label,
                                                                             "error": str(exc)})
            await self._warm(st, c)
            # the backtest beside the paper book lost its bars too: the comparison starts again
            self.check = ParityCheck(self.check.bars_per_year)
            for other in self.symbols.values():
                if other.live is not None:
                    other.live.shadow = None
            sig = st.live.on_bar(c.time, c.open, c.high, c.low, c.close, c.volume)
        st.last_time = c.time
        if not self.ready.is_set() and self.issue and self.issue.startswith("no candles"):
            self.issue = None
        if self.issue and self.issue.startswith("model refused: bar"):  # the model took this bar's input
            self.issue = None
            self.metrics.model_refused.set(0)
        self.ready.set()
        st.book.mark(c.symbol, c.close)
        await self._retry_undecided(st, sig.position)
        g = self.cfg.genome
        sizing = Sizing(g.position_pct, self.multiplier, self.fee, self.slippage, g.stop_loss_pct,
                               g.trailing_stop_pct)
        for intent in intents(sig, symbol=c.symbol, symbol_index=st.index, bar_time=c.time, close=c.close,
                                     held=st.book.position(c.symbol), cash=st.book.cash, sizing=sizing,
                                     prefix=self.cfg.order_prefix, busy=bool(st.inflight or st.undecided),
                                     timeframe=self.spec.timeframe):
            if not await self._execute(st, intent):
                break
        st.book.mark(c.symbol, c.close)  # a fill marked the position at its price; the bar closes at the close
        st.book.close_bar()
        self._check_parity(st, c, sig.position)
        self.last_signal_ms = c.time + self.bar_ms
        self.metrics.bars.inc()
        self.metrics.last_bar.set(self.last_signal_ms / 1000)
        await self.publish_status()

    def _check_parity(self, st: SymbolState, c: Candle, wanted: int) -> None:
        """Step the paper/backtest comparison after a bar; arm this symbol's shadow once all is flat."""
        live = st.live
        assert live is not None
        if live.shadow is None:
            if wanted == 0 and st.book.position(c.symbol) == 0 and not st.inflight and not st.undecided:
                live.arm_shadow(st.book.equity)
                self.check.arm(c.symbol, c.time + self.bar_ms, st.book.equity)
            return
        armed = [s for s in self.symbols.values() if s.live is not None and s.live.shadow is not None]
        self.check.on_bar(sum(s.book.equity for s in armed),
                          sum(s.live.shadow.equity for s in armed if s.live is not None and s.live.shadow is not None))

    async def _retry_undecided(self, st: SymbolState, wanted: int) -> None:
        for coid, intent in list(st.undecided.items()):
            if intent.kind == "entry" and wanted != (1 if intent.side == "buy" else -1):
                st.undecided.pop(coid)  # the strategy no longer wants it; if it was approved, flatten handles it
                continue
            await self._execute(st, intent)

    async def _execute(self, st: SymbolState, it: Intent) -> bool:
        """Ask the risk manager, then wait for the order to settle; False when the bar must stop here."""
        import nats.errors

        signal = Signal(strategy=self.cfg.name, namespace=self.cfg.namespace, client_order_id=it.client_order_id,
                        exchange=self.spec.exchange, symbol=it.symbol, side=it.side, quantity=it.quantity,
                        price=it.price, stop_price=it.stop_price, reduce_only=it.reduce_only, time=now_ms(),
                        mode=self.spec.mode, order_type=self.spec.execution.order_type, fee_rate=self.fee,
                        slippage_bps=self.spec.execution.slippage_bps, trailing_pct=it.trailing_pct,
                        bar_exit=it.bar_exit if self.spec.mode == "paper" else None,
                        # the basis of an exit: a risk book that has not read this position's fills yet re-reads
                        position=st.book.position(it.symbol) if it.reduce_only else None)
        try:
            reply = await self.nc.request(subjects.RISK_CHECK, codec.encode(signal), timeout=self.opts.risk_timeout,
                                          headers=tracing.inject())
            decision = codec.decode(RiskDecision, reply.data)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError) as exc:
            st.undecided[it.client_order_id] = it
            self.metrics.risk_unreachable.inc()
            self.issue = "risk manager unreachable: no order is sent without an approval"
            log.warning("risk manager unreachable; no order sent, will ask again with the same client order id",
                        extra={"strategy": self.cfg.label, "client_order_id": it.client_order_id, "kind": it.kind,
                               "error": type(exc).__name__})
            self._changed.set()
            return False
        except codec.BadMessage as exc:
            st.undecided.pop(it.client_order_id, None)
            log.error("risk manager answer not understood; no order", extra={"strategy": self.cfg.label,
                                                                             "error": str(exc)})
            return False
        st.undecided.pop(it.client_order_id, None)
        if self.issue and self.issue.startswith("risk"):
            self.issue = None
        if not decision.approved:
            if decision.rule in ("submissionUncertain", "bookBehind"):
                # not decided (the order may be in the stream; the risk book could not read our fills):
                # asked again at the next bar with the same id, never dropped
                st.undecided[it.client_order_id] = it
                log.warning("risk manager did not decide; asking again at the next bar", extra={
                    "strategy": self.cfg.label, "client_order_id": it.client_order_id, "rule": decision.rule,
                    "reasons": decision.reasons})
                return False
            self.rejections += 1
            self.metrics.decisions.labels(self.cfg.name, "rejected").inc()
            log.info("risk manager rejected the order", extra={
                "strategy": self.cfg.label, "client_order_id": it.client_order_id, "kind": it.kind,
                "rule": decision.rule, "reasons": decision.reasons})
            return it.kind != "exit"
        reduced = decision.quantity < it.quantity
        self.metrics.decisions.labels(self.cfg.name, "reduced" if reduced else "approved").inc()
        if reduced:
            log.info("risk manager reduced the order", extra={"strategy": self.cfg.label, "rule": decision.rule,
                                                              "requested": it.quantity, "approved": decision.quantity})
        done = self.done.setdefault(it.client_order_id, asyncio.Event())
        if done.is_set():  # the order settled before the approval reached us
            self.done.pop(it.client_order_id, None)
            return True
        st.inflight[it.client_order_id] = it
        try:
            await asyncio.wait_for(done.wait(), self.opts.order_wait)
        except TimeoutError:
            self.issue = "executor has not confirmed an approved order; waiting for it (never resent)"
            log.warning("executor has not confirmed the order; it stays in flight and is not resent",
                        extra={"strategy": self.cfg.label, "client_order_id": it.client_order_id,
                               "waited_seconds": self.opts.order_wait})
            self._changed.set()
            return False
        self.done.pop(it.client_order_id, None)
        return True

    # --- status ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        books = [st.book for st in self.symbols.values()]
        equity = sum(b.equity for b in books)
        capital = self.spec.capital.amount
        sharpes = [s for b in books if (s := b.sharpe(365 * 86_400_000 / self.bar_ms)) is not None]
        out: dict[str, Any] = {
            "equity": round(equity, 8),
            "pnl": round(equity - capital, 8),
            "drawdown": max(b.drawdown for b in books),
            "maxDrawdown": max(b.max_drawdown for b in books),
            "trades": sum(len(b.trades) for b in books),
            "openPositions": sum(b.open_positions for b in books),
            "message": self.issue or ("healthy" if self.ready.is_set() else "warming up"),
        }
        if sharpes:
            out["sharpe"] = sum(sharpes) / len(sharpes)
        check = self.check.report([t for b in books for t in b.trades],
                                  {st.symbol: st.live.shadow.trades for st in self.symbols.values()
                                   if st.live is not None and st.live.shadow is not None})
        if check is not None:
            out["paperCheck"] = check
        if self.last_signal_ms is not None:
            out["lastSignalTime"] = iso(self.last_signal_ms)
        return out

    async def publish_status(self, force: bool = False) -> None:
        """Report now, or (within ``status_min_interval`` of the last report) leave it to the report loop."""
        if not force and time.monotonic() - self._last_report < self.opts.status_min_interval:
            self._changed.set()
            return
        self._changed.clear()
        self._last_report = time.monotonic()
        st = self.status()
        self.metrics.equity.set(st["equity"])
        self.metrics.pnl.set(st["pnl"])
        self.metrics.drawdown.set(st["drawdown"])
        self.metrics.open_positions.set(st["openPositions"])
        self.metrics.multiplier.set(self.multiplier)
        report = StatusReport(kind="Strategy", namespace=self.cfg.namespace, name=self.cfg.name, status=st,
                              time=now_ms())
        with contextlib.suppress(Exception):
            await self.nc.publish(subjects.status_report("Strategy", self.cfg.namespace, self.cfg.name),
                                  codec.encode(report))

    async def _refresh_multiplier(self) -> None:
        goal = self.spec.goal_ref
        if goal is None:
            return
        try:
            bucket = await self.nc.jetstream().key_value(kv.GOAL_SIZING_BUCKET)
            entry = await bucket.get(kv.goal_sizing_key(self.cfg.namespace, goal.name))
            value = codec.decode(kv.GoalSizingEntry, entry.value).multiplier
        except Exception:
            return  # no multiplier published (yet): keep the last one, 1.0 at start
        if value != self.multiplier:
            log.info("goal sizing multiplier changed", extra={"strategy": self.cfg.label, "from": self.multiplier,
                                                              "to": value})
            self.multiplier = max(0.0, value)

    def _check_silence(self) -> None:
        """No candle at all long after one was due: most likely no Collector provides this market."""
        waited = time.monotonic() - self._started_at
        if not self.ready.is_set() and waited > 2 * self.bar_ms / 1000 + 60 and self.issue is None:
            markets = f"{', '.join(self.spec.symbols)} {self.spec.timeframe} on {self.spec.exchange}"
            self.issue = f"no candles for {markets} after {waited:.0f}s: is a Collector providing them?"
            log.warning("no candles arrive", extra={"strategy": self.cfg.label, "waited_seconds": round(waited)})

    async def _report_loop(self) -> None:
        """Every ``status_interval``, and soon after a change that the throttle held back."""
        while True:
            self._check_silence()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.opts.status_interval)
            await asyncio.sleep(max(0.0, self._last_report + self.opts.status_min_interval - time.monotonic()))
            await self._refresh_multiplier()
            await self.publish_status(force=True)
