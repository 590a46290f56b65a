"""The risk manager over real NATS and PostgreSQL, with the paper executor behind it:
request/reply decisions, hot reload of the policy from NATS KV, idempotent retries,
bad input, and stops that close a position with no strategy runner alive."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest

from kubetrade.executor.executor import Executor
from kubetrade.executor.venues import PaperVenue
from kubetrade.ledger import allocation, connection, queries
from kubetrade.messaging import codec, kv, subjects
from kubetrade.messaging.schemas import RiskControlReply, RiskControlRequest, RiskDecision, Signal
from kubetrade.risk.manager import RiskManager
from tests.orders.conftest import now_ms, tick, wait_for


async def publish_policy(nc, spec: dict, name: str = "default") -> int:
    bucket = await kv.policy_bucket(nc.jetstream())
    value = {"namespace": "default", "name": name, "generation": 1, "spec": spec}
    return await bucket.put(kv.policy_key("default", name), json.dumps(value).encode())


def signal(coid: str, qty: float, side: str = "buy", price: float = 50_000.0, **kw) -> Signal:
    return Signal(
        strategy="alpha",
        client_order_id=coid,
        exchange="binance",
        symbol="BTC/USDT",
        side=side,
        quantity=qty,
        price=price,
        time=now_ms(),
        **kw,
    )


async def ask(nc, sig: Signal) -> RiskDecision:
    reply = await nc.request(subjects.RISK_CHECK, codec.encode(sig), timeout=10)
    return codec.decode(RiskDecision, reply.data)


@contextlib.asynccontextmanager
async def stack(dsn: str, url: str, refresh_seconds: float = 0.2):
    rm = RiskManager(dsn, url, refresh_seconds=refresh_seconds)
    ex = Executor("paper", dsn, url, PaperVenue(), sync_seconds=0.3)
    tasks = [asyncio.create_task(rm.run()), asyncio.create_task(ex.run())]

    async def ready():
        for t in tasks:
            if t.done():
                t.result()
        return rm.ready.is_set() and ex.ready.is_set()

    try:
        await wait_for(ready)
        yield rm, ex
    finally:
        rm.stopping.set()
        ex.stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def test_signals_get_decisions_policies_reload_and_stops_fire(orders_dsn, own_nats, nc) -> None:
    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "paper", "alpha", 10_000.0, risk_policy="default")
    await publish_policy(nc, {"stopLoss": {"defaultStopPct": 0.02}})
    async with stack(orders_dsn, own_nats.url) as (rm, _ex):
        await tick(nc, 50_000.0)
        await wait_for(lambda: _has(rm, "BTC/USDT"))
        # 1 BTC = 50k on 10k capital: cut to 20 % of capital (0.04 BTC), the rule named
        d = await ask(nc, signal("r-1", 1.0))
        assert d.approved and d.quantity == pytest.approx(0.04, rel=1e-6) and d.rule == "maxPositionPct"
        assert d.stop_price == pytest.approx(49_000.0) and d.policy == "default/default"
        filled = await wait_for(lambda: _status(conn, "r-1", "filled"))
        assert filled["quantity"] == pytest.approx(0.04, rel=1e-6)
        # a retried request (lost reply) gets the same answer and no second order
        again = await ask(nc, signal("r-1", 1.0))
        assert again == d
        # the position is at its limit now: a further buy is rejected by the same rule
        d2 = await ask(nc, signal("r-2", 0.01))
        assert not d2.approved and d2.rule == "maxPositionPct"
        # hot reload: the kill switch stops new positions without a restart ...
        rev = await publish_policy(nc, {"circuitBreaker": {"killSwitch": True}})
        await wait_for(lambda: _revision(rm, rev))
        d3 = await ask(nc, signal("r-3", 0.001, price=50_000.0))
        assert not d3.approved and d3.rule == "killSwitch" and d3.policy_revision == rev
        # ... a bad revision is refused and the kill switch stays on
        bucket = await kv.policy_bucket(nc.jetstream())
        await bucket.put(kv.policy_key("default", "default"), b'{"spec": {"portfolioLimits": {"maxDrawdownPct": 7}}}')
        await wait_for(lambda: _refused(rm))
        assert not (await ask(nc, signal("r-4", 0.001))).approved
        # bad input: answered with the reason, dead-lettered, nothing crashes
        reply = await nc.request(subjects.RISK_CHECK, b'{"strategy": "alpha"}', timeout=10)
        assert "error" in json.loads(reply.data)
        # a strategy without a ledger is refused
        ghost = signal("r-5", 0.001).model_copy(update={"strategy": "ghost"})
        assert (await ask(nc, ghost)).rule == "allocation"
        # stops hold with no runner: the price falls through 49,000 and the position is closed
        await tick(nc, 48_900.0)
        await wait_for(lambda: _flat(conn))
        assert rm.stops.triggered == 1
        cur = await conn.execute("SELECT * FROM orders WHERE reduce_only ORDER BY id")
        closes = await cur.fetchall()
        assert len(closes) == 1 and closes[0]["status"] == "filled" and closes[0]["client_order_id"].startswith("stop-")
        # the refreshes are timed and the last one is recent (what KubetradeRiskStateStale watches)
        from prometheus_client import REGISTRY

        assert REGISTRY.get_sample_value("kubetrade_risk_refresh_seconds_count") >= 2
        last = REGISTRY.get_sample_value("kubetrade_risk_last_refresh_timestamp_seconds")
        assert last is not None and abs(time.time() - last) < 10
        # metrics over NATS (what GET /api/v1/risk/metrics serves)
        m = await nc.request(subjects.RISK_CONTROL, codec.encode(RiskControlRequest(action="metrics")), timeout=10)
        metrics = codec.decode(RiskControlReply, m.data)
        assert metrics.ok and metrics.portfolios[0].kill_switch and metrics.portfolios[0].violations >= 3
    await conn.close()


async def test_a_strategy_exit_after_its_stop_fired_is_refused_by_the_risk_manager(orders_dsn, own_nats, nc) -> None:
    """The stop's close is counted in the book from the moment it is sent, like an approved order:
    the strategy's own exit decided before the next refresh sees the position closing and is
    refused here, with its reason (before, it was approved and then rejected by the executor)."""
    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "paper", "gamma", 10_000.0, risk_policy="default")
    await publish_policy(nc, {"stopLoss": {"defaultStopPct": 0.02}})
    # refreshed only when poked, so that the book's view between refreshes is what is tested
    async with stack(orders_dsn, own_nats.url, refresh_seconds=3600) as (rm, _ex):
        await tick(nc, 50_000.0)
        await wait_for(lambda: _has(rm, "BTC/USDT"))
        entry = signal("g-1", 0.04).model_copy(update={"strategy": "gamma"})
        assert (await ask(nc, entry)).approved
        await wait_for(lambda: _status(conn, "g-1", "filled"))
        key = ("paper", "default", "gamma", "BTC/USDT")
        rm.poke.set()
        await wait_for(lambda: _stop_loaded(rm, key))
        # the price falls through the stop: the stop closes the position, the executor fills it
        await tick(nc, 48_900.0)
        await wait_for(lambda: _flat(conn, "gamma"))
        assert rm.stops.triggered == 1
        book = rm.book.portfolio_of("paper", "default", "gamma")
        assert book is not None and book.state.holdings.get(("gamma", "BTC/USDT"), 0.0) == 0.0
        # the strategy's own exit, decided before any refresh: refused by the risk manager
        exit_ = signal("g-2", 0.04, side="sell", reduce_only=True).model_copy(update={"strategy": "gamma"})
        d = await ask(nc, exit_)
        assert not d.approved and d.rule == "reduceOnly", d
        assert await queries.order(conn, "g-2") is None  # never reached the executor
        # the next refresh reads the close back and releases its reservation
        rm.poke.set()
        await wait_for(lambda: _released(book))
        assert book.state.holdings.get(("gamma", "BTC/USDT"), 0.0) == 0.0
    await conn.close()


async def _stop_loaded(rm, key):
    return key in rm.stops.stops


async def _released(book):
    return not any(c.startswith("stop-") for c in book.reservations)


async def _has(rm, symbol):
    return symbol in rm.feed.symbols


async def _revision(rm, rev):
    pub = rm.policies.get("default", "default")
    return pub is not None and pub.revision == rev


async def _refused(rm):
    return bool(rm.policies.refused)


async def _status(conn, coid, status):
    row = await queries.order(conn, coid)
    return row if row is not None and row["status"] == status else None


async def _flat(conn, strategy="alpha"):
    cur = await conn.execute("SELECT quantity FROM positions WHERE strategy = %s", (strategy,))
    row = await cur.fetchone()
    return row is not None and row["quantity"] == 0


async def test_a_burst_of_exchange_errors_reported_by_the_executor_trips_the_breaker(orders_dsn, own_nats, nc) -> None:
    """Events reporting an exchange error also go to the exchange-errors subject; the risk manager counts
    those, and only those (it once listened on a subject nothing was published to, and counted nothing)."""
    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "paper", "alpha", 10_000.0, risk_policy="default")
    await publish_policy(nc, {"circuitBreaker": {"exchangeErrorBurst": 3, "errorWindowSeconds": 60}})
    async with stack(orders_dsn, own_nats.url) as (rm, ex):
        await tick(nc, 50_000.0)
        await wait_for(lambda: _has(rm, "BTC/USDT"))
        assert (await ask(nc, signal("e-1", 0.01))).approved
        row = await wait_for(lambda: _status(conn, "e-1", "filled"))
        # ordinary events (fills) count for nothing
        for _ in range(5):
            await ex._publish(row, None, None)
        await nc.flush()
        assert (await ask(nc, signal("e-2", 0.001))).approved
        # three events the way the executor reports a timeout or a 5xx: the burst limit is reached
        for _ in range(3):
            await ex._publish(row, None, "exchange timed out", exchange_error=True)
        await nc.flush()

        async def tripped():
            d = await ask(nc, signal(f"e-{now_ms()}", 0.001, dry_run=True))
            return d if not d.approved else None

        d = await wait_for(tripped)
        assert d.rule in ("exchangeErrorBurst", "circuitBreaker"), d
    await conn.close()


async def test_an_exit_whose_entry_the_book_has_not_read_yet_is_decided_on_a_fresh_read(orders_dsn, own_nats,
                                                                                        nc) -> None:
    """A risk book behind the sender's fills: the entry was approved before the risk manager restarted
    and filled by the executor after the new one read the ledger (a replica's approval is the same
    case).  The runner, told of the fill, exits; its signal carries the position it holds.  The book,
    read once at start and refreshed only when poked, holds nothing: it re-reads the ledger before
    deciding and approves the exit whole (before, "reduce-only sell but position is 0", and the
    strategy kept a position it had asked to close).  A sender whose position the fresh read does not
    show is still refused, and says so; an order never flips a position."""
    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "paper", "alpha", 10_000.0, risk_policy="default")
    await publish_policy(nc, {"stopLoss": {"defaultStopPct": 0.02}})
    first = RiskManager(orders_dsn, own_nats.url, refresh_seconds=3600)
    run = asyncio.create_task(first.run())
    await wait_for(lambda: _ready(first, run))
    await tick(nc, 50_000.0)
    await wait_for(lambda: _has(first, "BTC/USDT"))
    entry = await ask(nc, signal("b-1", 0.03))  # in the ORDERS stream; no executor runs yet
    assert entry.approved and entry.quantity == 0.03
    first.stopping.set()
    await asyncio.wait_for(run, 30)

    async with stack(orders_dsn, own_nats.url, refresh_seconds=3600) as (rm, _ex):
        # the new risk manager read the ledger before the executor (no price until now) recorded the entry
        await tick(nc, 50_100.0)
        await wait_for(lambda: _status(conn, "b-1", "filled"))
        await wait_for(lambda: _has(rm, "BTC/USDT"))
        book = rm.book.portfolio_of("paper", "default", "alpha")
        assert book is not None and book.state.position("alpha", "BTC/USDT") == 0.0 and not book.reservations
        started = rm._refreshes_started
        d = await ask(nc, signal("b-2", 0.03, side="sell", reduce_only=True, position=0.03))
        assert d.approved and d.quantity == 0.03 and d.rule is None, d
        assert rm._refreshes_started > started  # decided on a read made for it
        await wait_for(lambda: _flat(conn))
        rm.poke.set()
        await wait_for(lambda: _read_flat(book))
        # a sender that believes in more than the ledger holds (its exit filled already): refused, with why
        d = await ask(nc, signal("b-3", 0.03, side="sell", reduce_only=True, position=0.03))
        assert not d.approved and d.rule == "reduceOnly", d
        assert any("the ledger, re-read, holds 0" in r for r in d.reasons), d.reasons
        assert await queries.order(conn, "b-3") is None
        # short by its own account, selling to "reduce": the decision stands, no re-read, never a flip
        started = rm._refreshes_started
        d = await ask(nc, signal("b-4", 0.03, side="sell", reduce_only=True, position=-0.03))
        assert not d.approved and d.rule == "reduceOnly" and rm._refreshes_started == started, d
    await conn.close()


async def _ready(rm, task):
    if task.done():
        task.result()
    return rm.ready.is_set()


async def _read_flat(book):
    return not book.filled and not book.reservations


async def test_an_exit_the_book_cannot_catch_up_with_is_not_decided_and_a_retry_is(orders_dsn, own_nats, nc) -> None:
    """The ledger cannot be re-read in time (here: a transaction holds the ledgers table locked, as a
    migration or a stuck session would): the answer is ``bookBehind`` - not a refusal, not remembered,
    no order - and the same client order id asked again once the database answers is decided on a
    fresh read and approved.  The order is delayed, never lost, and never decided on a stale book."""
    from kubetrade.risk.manager import CATCH_UP_SECONDS

    conn = await connection.connect(orders_dsn)
    await allocation.allocate(conn, "paper", "alpha", 10_000.0, risk_policy="default")
    await publish_policy(nc, {"stopLoss": {"defaultStopPct": 0.02}})
    async with stack(orders_dsn, own_nats.url, refresh_seconds=3600) as (rm, _ex):
        await tick(nc, 50_000.0)
        await wait_for(lambda: _has(rm, "BTC/USDT"))
        entry = await ask(nc, signal("c-1", 0.03))
        assert entry.approved
        await wait_for(lambda: _status(conn, "c-1", "filled"))
        rm.poke.set()
        book = rm.book.portfolio_of("paper", "default", "alpha")
        assert book is not None
        await wait_for(lambda: _holds(book, 0.03))
        # the book forgets what it read (as a new replica's would not have it), and the ledger stalls
        book.filled.clear()
        book.state.holdings = type(book.state.holdings)({})
        blocker = await connection.connect(orders_dsn)
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE ledgers IN ACCESS EXCLUSIVE MODE")
            d = await ask(nc, signal("c-2", 0.03, side="sell", reduce_only=True, position=0.03))
            assert not d.approved and d.rule == "bookBehind", d
            assert f"could not be re-read within {CATCH_UP_SECONDS:g}s" in d.reasons[0]
            assert "retry with the same clientOrderId" in d.reasons[0] and "sender holds 0.03" in d.reasons[0]
        await blocker.close()
        assert "c-2" not in rm.decisions and await queries.order(conn, "c-2") is None
        d = await ask(nc, signal("c-2", 0.03, side="sell", reduce_only=True, position=0.03))
        assert d.approved and d.quantity == 0.03, d
        await wait_for(lambda: _flat(conn))
    await conn.close()


async def _holds(book, qty):
    return book.state.position("alpha", "BTC/USDT") == qty and not book.reservations
