"""Keeps each portfolio's :class:`PortfolioState` current: ledgers and positions from the
executor's database, reservations for approved-but-unfilled orders, market data from the
feed, the peak and daily equity and the breaker from ``risk_state``.

A portfolio is one RiskPolicy in one environment: the strategies whose ledger names that
policy.  The database is re-read every ``refresh`` (and soon after an exchange error), in one
REPEATABLE READ snapshot so that positions and order statuses agree: a reservation is
released only in the same snapshot that shows its fill in the position.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from psycopg import AsyncConnection

from kubetrade.ledger import queries
from kubetrade.resources.riskpolicy import RiskPolicySpec
from kubetrade.risk import breaker
from kubetrade.risk.feed import MarketFeed
from kubetrade.risk.state import Breaker, Holdings, PortfolioState

Row = dict[str, Any]
PortfolioKey = tuple[str, str, str]
"""(environment, namespace, policy)"""
RESERVATION_TTL_MS = 10 * 60_000
UNRESOLVED_CHUNK = 250
"""Reserved ids asked about per statement, and reservations looked at between two pauses of a
paced refresh; more when there are so many that the pauses would add up to more than
:data:`MAX_CHUNKS` of them (a refresh must stay well inside its period)."""
MAX_CHUNKS = 20
Pace = Callable[[], Awaitable[None]]
"""What a refresh awaits between its steps (a short sleep, in the service)."""
@dataclass
class Reservation:
    strategy: str
    symbol: str
    signed_qty: float
    created_ms: int


@dataclass
class Portfolio:
    key: PortfolioKey
    state: PortfolioState = field(default_factory=PortfolioState)
    filled: dict[tuple[str, str], float] = field(default_factory=dict)
    cash: dict[str, float] = field(default_factory=dict)
    reservations: dict[str, Reservation] = field(default_factory=dict)
    violations: int = 0
    day: date | None = None
    dirty: bool = False

    def rebuild_holdings(self, remaining: dict[str, float]) -> None:
        holdings = dict(self.filled)
        for coid, r in self.reservations.items():
            qty = remaining.get(coid, r.signed_qty)
            k = (r.strategy, r.symbol)
            holdings[k] = holdings.get(k, 0.0) + qty
        self.state.holdings = Holdings(holdings)


class RiskBook:
    def __init__(self, feed: MarketFeed) -> None:
        self.feed = feed
        self.portfolios: dict[PortfolioKey, Portfolio] = {}
        self.strategy_policy: dict[tuple[str, str, str], str] = {}
        """(environment, namespace, strategy) -> policy name, from the ledgers."""
        self.exchange_errors: dict[str, list[int]] = {"paper": [], "live": []}
        self.open_positions: list[Row] = []
        """Every position with a quantity, as the last refresh read it."""
        self.breaker_changes: list[tuple[PortfolioKey, Breaker]] = []
        """Breakers that opened or closed since the manager last announced them (its new state)."""

    def portfolio_of(self, environment: str, namespace: str, strategy: str) -> Portfolio | None:
        policy = self.strategy_policy.get((environment, namespace, strategy))
        if policy is None:
            return None
        key = (environment, namespace, policy)
        p = self.portfolios.get(key)
        if p is None:  # (not setdefault: a decision must not build a Portfolio it does not need)
            p = self.portfolios[key] = Portfolio(key)
        return p

    def apply_market(self, p: Portfolio) -> None:
        """Copy the feed's view of the market into the portfolio's state (cheap: references)."""
        st = p.state
        for sym, h in self.feed.symbols.items():
            st.prices[sym] = h.price
            st.last_data_ms[sym] = h.seen_ms
            st.last_move[sym] = h.last_move
        st.exchange_errors_ms = self.exchange_errors.get(p.key[0], [])

    def returns_for(self, p: Portfolio) -> None:
        p.state.correlations.clear()
        for sym in self.feed.symbols:
            p.state.bar_returns[sym] = self.feed.bar_returns(sym)
            p.state.daily_returns[sym] = self.feed.daily_returns(sym)

    def note_exchange_error(self, environment: str, at_ms: int) -> None:
        errors = self.exchange_errors.setdefault(environment, [])
        errors.append(at_ms)
        cutoff = at_ms - 86_400_000
        while errors and errors[0] < cutoff:
            errors.pop(0)

    async def refresh(
        self,
        conn: AsyncConnection[Row],
        policies: dict[tuple[str, str], RiskPolicySpec],
        pace: Pace | None = None,
    ) -> None:
        """Re-read ledgers, positions and reserved orders; update equity, peak, day and breaker.

        This runs every second beside a thousand decisions a second, so it reads only what it
        uses: the database answers which reservations are still unresolved (their orders not
        recorded yet, or still open) rather than sending back every reserved order, and the
        reserved ids go up as one string (a text array of a thousand ids costs psycopg a
        regular expression per element).

        ``pace``, awaited between the statements (and between chunks of the reserved ids),
        spreads the refresh's work - here and in PostgreSQL - over a few more milliseconds:
        taken in one burst, it added a third to the machine's load for ~10 ms every second,
        and the orders arriving then made up ~40% of the slowest 1%.  The statements still
        share one snapshot.
        """
        now = int(time.time() * 1000)
        unresolved: list[Row] = []
        async with conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            # the first query takes the snapshot every later one reads
            ledgers = await queries.ledgers(conn)
            # The reservations this refresh resolves, taken only now that the snapshot exists: one
            # made before it may have been filled and recorded before it too (the fill is then in
            # the positions read below), and only a reservation the snapshot is asked about is
            # released when it shows the fill.  Taken before the snapshot (as it once was), a
            # reservation made during BEGIN whose fill committed before the first query was kept
            # *and* its fill counted: its quantity twice until the next refresh, an exit's sign
            # turned (a closed long read as short), and the next reduce-only exit refused.
            asked = {c for p in self.portfolios.values() for c in p.reservations}
            ids = list(asked)
            size = max(UNRESOLVED_CHUNK, -(-len(ids) // MAX_CHUNKS))
            chunks = [" ".join(ids[i : i + size]) for i in range(0, len(ids), size)]
            if pace is not None:
                await pace()
            positions = await queries.open_positions(conn)
            for coids in chunks:
                if pace is not None:
                    await pace()
                unresolved += await queries.unsettled(conn, coids)
            saved = await (await conn.execute("SELECT * FROM risk_state")).fetchall()
        if pace is not None:
            await pace()
        self.open_positions = positions
        open_orders = {o["id"]: o for o in unresolved}
        self.strategy_policy = {
            (r["environment"], r["namespace"], r["strategy"]): r["risk_policy"] or "default" for r in ledgers
        }
        members: dict[PortfolioKey, list[Row]] = {}
        for r in ledgers:
            k = (r["environment"], r["namespace"], r["risk_policy"] or "default")
            members.setdefault(k, []).append(r)
            if k not in self.portfolios:
                self.portfolios[k] = Portfolio(k)
        held: dict[PortfolioKey, list[Row]] = {}
        for r in positions:
            named = self.strategy_policy.get((r["environment"], r["namespace"], r["strategy"]))
            if named is not None:
                held.setdefault((r["environment"], r["namespace"], named), []).append(r)
        saved_by = {(r["environment"], r["namespace"], r["policy"]): r for r in saved}
        today = datetime.now(UTC).date()
        for p in self.portfolios.values():
            _, ns, pol = p.key
            mine = members.get(p.key, [])
            p.state.capital = {r["strategy"]: float(r["capital"]) for r in mine}
            p.cash = {r["strategy"]: float(r["cash"]) for r in mine}
            p.filled = {(r["strategy"], r["symbol"]): float(r["quantity"]) for r in held.get(p.key, [])}
            for r in held.get(p.key, []):
                if r["symbol"] not in self.feed.symbols and r["mark_price"]:
                    p.state.prices.setdefault(r["symbol"], float(r["mark_price"]))
            remaining: dict[str, float] = {}
            for i, (coid, res) in enumerate(list(p.reservations.items())):
                if pace is not None and i and i % size == 0:
                    # decisions meanwhile still see the holdings as they were: they are replaced
                    # (rebuilt from the reservations then) only below, in one step
                    await pace()
                if coid not in asked:  # approved while the queries ran: the snapshot says nothing of it yet
                    continue
                o = open_orders.get(coid)
                if o is None:  # recorded and done: its fill (if any) is in the positions just read
                    p.reservations.pop(coid, None)
                elif o["status"] is None:  # not recorded yet: still on its way to the executor
                    if now - res.created_ms > RESERVATION_TTL_MS:
                        p.reservations.pop(coid, None)
                elif coid in p.reservations:
                    left = float(o["quantity"]) - float(o["filled_quantity"])
                    remaining[coid] = left if o["side"] == "buy" else -left
            self.apply_market(p)
            p.rebuild_holdings(remaining)
            equity = sum(p.cash.values()) + sum(q * p.state.prices.get(sym, 0.0) for (_, sym), q in p.filled.items())
            p.state.equity = equity
            s = saved_by.get(p.key)
            if s is not None and p.day is None:
                p.state.peak_equity = float(s["peak_equity"])
                p.day = s["day"]
                p.state.day_start_equity = float(s["day_start_equity"])
                p.violations = int(s["violations"])
                p.state.breaker = Breaker(
                    bool(s["breaker_open"]),
                    s["breaker_reason"],
                    int(s["breaker_since"].timestamp() * 1000) if s["breaker_since"] else 0,
                    bool(s["manual_reset"]),
                )
            if equity > p.state.peak_equity:
                p.state.peak_equity = equity
                p.dirty = True
            if p.day != today:
                p.day = today
                p.state.day_start_equity = equity
                p.dirty = True
            policy = policies.get((ns, pol))
            if policy is not None:
                new = breaker.evaluate(policy, p.state, now)
                if new != p.state.breaker:
                    if new.open != p.state.breaker.open:
                        self.breaker_changes.append((p.key, new))
                    p.state.breaker = new
                    p.dirty = True
        await self.save(conn)

    async def save(self, conn: AsyncConnection[Row], force: bool = False) -> None:
        for p in self.portfolios.values():
            if not (p.dirty or force) or p.day is None:
                continue
            env, ns, pol = p.key
            b = p.state.breaker
            await conn.execute(
                """INSERT INTO risk_state (environment, namespace, policy, peak_equity, day, day_start_equity,
                       breaker_open, breaker_reason, breaker_since, manual_reset, violations)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (environment, namespace, policy) DO UPDATE SET
                     peak_equity = EXCLUDED.peak_equity, day = EXCLUDED.day,
                     day_start_equity = EXCLUDED.day_start_equity, breaker_open = EXCLUDED.breaker_open,
                     breaker_reason = EXCLUDED.breaker_reason, breaker_since = EXCLUDED.breaker_since,
                     manual_reset = EXCLUDED.manual_reset, violations = EXCLUDED.violations, updated_at = now()""",
                (
                    env,
                    ns,
                    pol,
                    p.state.peak_equity,
                    p.day,
                    p.state.day_start_equity,
                    b.open,
                    b.reason,
                    datetime.fromtimestamp(b.since_ms / 1000, UTC) if b.since_ms else None,
                    b.manual_reset,
                    p.violations,
                ),
            )
            p.dirty = False
