"""The risk book's refresh against a real database: which reservations it releases.

An approved order is reserved (counted in the holdings) from the decision until the
refresh sees its outcome in the same snapshot as the positions: released once recorded
and done (its fill is then in the position), kept while it is not recorded yet (still on
its way through JetStream) or still open (for what is left of it), and dropped when it
was never recorded within the reservation's time to live.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from kubetrade.executor.venues import PaperVenue
from kubetrade.ledger import allocation, connection, paperbatch, record
from kubetrade.messaging.schemas import OrderRequest, Signal
from kubetrade.resources.riskpolicy import RiskPolicySpec
from kubetrade.risk.decide import decide, hold
from kubetrade.risk.feed import MarketFeed
from kubetrade.risk.portfolios import RESERVATION_TTL_MS, Reservation, RiskBook
from tests.orders.conftest import now_ms, order


@pytest.fixture
async def conn(orders_dsn: str) -> Any:
    c = await connection.connect(orders_dsn)
    yield c
    await c.close()


async def _book(conn: Any, capital: float, *strategies: str) -> tuple[PaperVenue, Any, RiskBook]:
    """Ledgers for ``strategies`` under the default policy, a paper venue at 50,000, and a book read once."""
    for strategy in strategies:
        await allocation.allocate(conn, "paper", strategy, capital, risk_policy="default")
    venue = PaperVenue()
    venue.on_price("binance", "BTC/USDT", 50_000.0)
    policies = {("default", "default"): RiskPolicySpec.model_validate({})}
    book = RiskBook(MarketFeed())
    await book.refresh(conn, policies)
    return venue, policies, book


async def test_refresh_releases_done_orders_and_keeps_those_in_flight_or_open(conn: Any) -> None:
    venue, policies, book = await _book(conn, 100_000.0, "alpha", "beta")
    p = book.portfolio_of("paper", "default", "alpha")
    assert p is not None and p is book.portfolio_of("paper", "default", "beta")

    filled = order("filled-1", qty=0.01)
    assert await paperbatch.record_and_fill(conn, venue, filled, now_ms()) is not None
    resting = order("resting-1", qty=0.02, type="limit", price=40_000.0)  # below the market: stays open
    row, _ = await record.record_new(conn, resting)
    assert row["status"] == "pending"
    now = now_ms()
    p.reservations = {
        "filled-1": Reservation("alpha", "BTC/USDT", 0.01, now),
        "resting-1": Reservation("alpha", "BTC/USDT", 0.02, now),
        "in-flight-1": Reservation("beta", "BTC/USDT", 0.03, now),
        "lost-1": Reservation("beta", "BTC/USDT", 0.5, now - RESERVATION_TTL_MS - 1),
    }
    await book.refresh(conn, policies)

    assert set(p.reservations) == {"resting-1", "in-flight-1"}
    assert p.filled == {("alpha", "BTC/USDT"): pytest.approx(0.01)}
    holdings = p.state.holdings
    assert holdings[("alpha", "BTC/USDT")] == pytest.approx(0.01 + 0.02)  # the position and the open order
    assert holdings[("beta", "BTC/USDT")] == pytest.approx(0.03)  # not recorded yet: its reserved size
    assert p.cash["alpha"] < 100_000.0 and p.cash["beta"] == 100_000.0
    assert p.state.capital == {"alpha": 100_000.0, "beta": 100_000.0}

    # once the executor has recorded it and it is done, the next refresh releases it too; an
    # order approved while that refresh's queries run is not in its snapshot and stays reserved
    flight = order("in-flight-1", strategy="beta", qty=0.03)
    assert await paperbatch.record_and_fill(conn, venue, flight, now_ms()) is not None
    refresh = asyncio.create_task(book.refresh(conn, policies))
    await asyncio.sleep(0)  # the refresh waits for the database: its snapshot is not taken yet
    p.reservations["late-1"] = Reservation("beta", "BTC/USDT", 0.04, now_ms())
    await refresh
    assert set(p.reservations) == {"resting-1", "late-1"}
    assert p.state.holdings[("beta", "BTC/USDT")] == pytest.approx(0.03 + 0.04)
    del p.reservations["late-1"]
    await book.refresh(conn, policies)
    assert set(p.reservations) == {"resting-1"}
    assert holdings is not p.state.holdings
    assert p.state.holdings[("beta", "BTC/USDT")] == pytest.approx(0.03)


async def test_a_paced_refresh_resolves_every_chunk_and_keeps_what_decisions_did_in_its_pauses(conn: Any) -> None:
    """The service's refresh pauses between its statements and between chunks of reservations,
    and decisions run in those pauses: reserving (changing the holdings) and adding reservations.
    Every done order of every chunk is released, nothing reserved during a pause is lost, and the
    holdings decisions saw stay whole until they are replaced in one step."""
    from kubetrade.messaging.schemas import RiskDecision, Signal
    from kubetrade.risk.decide import reserve
    from kubetrade.risk.portfolios import UNRESOLVED_CHUNK

    venue, policies, book = await _book(conn, 1_000_000.0, "alpha")
    p = book.portfolio_of("paper", "default", "alpha")
    assert p is not None
    n = 2 * UNRESOLVED_CHUNK + 17  # three chunks of ids, and three chunks of the reservation loop
    done = [order(f"done-{i}", qty=0.001) for i in range(n)]
    for i in range(0, n, 50):
        assert await paperbatch.record_and_fill_batch(conn, venue, done[i : i + 50], now_ms()) is not None
    now = now_ms()
    p.reservations = {o.client_order_id: Reservation("alpha", "BTC/USDT", 0.001, now) for o in done}
    p.reservations["in-flight"] = Reservation("alpha", "BTC/USDT", 0.25, now)
    p.rebuild_holdings({})
    before = p.state.holdings[("alpha", "BTC/USDT")]
    assert before == pytest.approx(n * 0.001 + 0.25)

    pauses = 0
    seen: list[float] = []

    async def pace() -> None:  # a decision in every pause, as the event loop would run one
        nonlocal pauses
        pauses += 1
        seen.append(p.state.holdings[("alpha", "BTC/USDT")])
        coid = f"mid-{pauses}"
        sig = Signal(
            strategy="alpha",
            client_order_id=coid,
            exchange="binance",
            symbol="BTC/USDT",
            side="buy",
            quantity=0.01,
            price=50_000.0,
            time=now_ms(),
        )
        d = RiskDecision(
            client_order_id=coid, strategy="alpha", approved=True, quantity=0.01, requested_quantity=0.01, time=now_ms()
        )
        reserve(p.state, sig, d)
        p.reservations[coid] = Reservation("alpha", "BTC/USDT", 0.01, now_ms())
        await asyncio.sleep(0)

    await book.refresh(conn, policies, pace=pace)
    assert pauses >= 3 + 2  # between the statements, and inside the reservation loop
    # until the end, decisions saw every reservation still counted (no half-released holdings)
    assert all(h >= before - 1e-9 for h in seen)
    assert set(p.reservations) == {"in-flight"} | {f"mid-{i}" for i in range(1, pauses + 1)}
    assert p.filled[("alpha", "BTC/USDT")] == pytest.approx(n * 0.001)
    assert p.state.holdings[("alpha", "BTC/USDT")] == pytest.approx(n * 0.001 + 0.25 + pauses * 0.01)


def _filled_meanwhile(dsn: str, venue: PaperVenue, req: OrderRequest) -> None:
    """The executor records and fills ``req`` on its own connection while this event loop stands still
    (in a thread, joined without awaiting): everything the loop's tasks sent waits meanwhile."""
    done: list[Any] = []

    async def fill() -> None:
        c = await connection.connect(dsn)
        try:
            done.append(await paperbatch.record_and_fill(c, venue, req, now_ms()))
        finally:
            await c.close()

    t = threading.Thread(target=lambda: asyncio.run(fill()))
    t.start()
    t.join()
    assert done and done[0] is not None


async def test_an_exit_filled_before_the_refresh_takes_its_snapshot_is_counted_once(conn: Any, orders_dsn: str) -> None:
    """The reduce-only race seen under load ("reduce-only sell but position is -0.000395").

    A refresh begins (BEGIN on its way to the database); meanwhile an exit is approved - reserved,
    as the risk manager does - and the executor fills and records it before the refresh's first
    query takes the snapshot.  The snapshot then shows the position closed, and the exit's
    reservation must be released by it.  It was kept instead (the refresh listed its reservations
    before its snapshot existed), so the closed long read as a short of the exit's size until the
    next refresh: the runner's next entry was decided as *reducing* that phantom short, and the
    exit after it was refused with the position's sign turned."""
    venue, policies, book = await _book(conn, 100_000.0, "alpha")
    p = book.portfolio_of("paper", "default", "alpha")
    assert p is not None
    key = ("alpha", "BTC/USDT")
    assert await paperbatch.record_and_fill(conn, venue, order("entry-1", qty=0.01), now_ms()) is not None
    await book.refresh(conn, policies)
    assert p.state.position(*key) == pytest.approx(0.01) and not p.reservations

    refresh = asyncio.create_task(book.refresh(conn, policies))
    await asyncio.sleep(0)  # the refresh has sent BEGIN and waits for the database
    p.reservations["exit-1"] = Reservation("alpha", "BTC/USDT", -0.01, now_ms())
    hold(p.state, "alpha", "BTC/USDT", -0.01)
    _filled_meanwhile(orders_dsn, venue, order("exit-1", side="sell", qty=0.01, reduce_only=True))
    await refresh
    assert p.filled == {}  # the snapshot saw the exit's fill ...
    assert "exit-1" not in p.reservations  # ... so it released the exit's reservation
    assert p.state.position(*key) == 0.0

    # the runner's next round trip: an entry of 0.008 (approved and reserved), then its reduce-only exit
    p.reservations["entry-2"] = Reservation("alpha", "BTC/USDT", 0.008, now_ms())
    hold(p.state, "alpha", "BTC/USDT", 0.008)
    exit_ = Signal(strategy="alpha", client_order_id="exit-2", exchange="binance", symbol="BTC/USDT", side="sell",
                   quantity=0.008, price=50_000.0, time=now_ms(), reduce_only=True)
    d = decide(policies[("default", "default")], p.state, exit_, now_ms())
    assert d.approved and d.quantity == pytest.approx(0.008), d.reasons
