"""The paper executor's fast path: a batch of new market orders recorded and filled in two statements.

Only the executor calls it (it is the executor's write, like :mod:`kubetrade.ledger.record`).

The general path (:func:`record.record_new` then :func:`record.apply`) takes about twenty
statements per order, each a round trip; at a thousand orders a second that is the whole
budget.  For the common paper case - new orders, a known price, ledgers that can pay - this

1. reads what the decisions need for the whole batch in **one statement** (its ledgers and
   positions, the open orders that reserve cash or sell quantity, and whether any of its
   client order ids is already recorded), without locks;
2. decides in Python with the same pure functions as the general path
   (:func:`accounting.spend_check`, :func:`accounting.apply_fill`), touching nothing;
3. writes the whole batch - orders, fills, positions, ledgers, lifecycle events - in **one
   statement** unpacking one JSON document: one implicit transaction, one commit (one
   fsync), all or nothing.

The write is *guarded* (optimistic concurrency): every ledger and position it changes must
still hold the values the decisions were made on (``WHERE cash = <read value>``...), a
position it opens must not exist yet (plain INSERT), and the statement fails whole
(SQLSTATE ``KT409``, see migration 0304) if any row did not match.  Orders themselves are
written only by the executor, a singleton, under its lock, so the open orders read cannot
move in between; ledgers can (capital re-allocated through the API) and positions'
stops can (the risk manager), which the guards and the untouched stop columns take care of.

Anything else - a replay, a rejection, no price yet, a limit order, a guard that failed -
writes nothing and returns None, and the caller takes the general path (which locks), one
order at a time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from psycopg import AsyncConnection, pq

from kubetrade.ledger import accounting
from kubetrade.ledger.connection import Row, is_spot
from kubetrade.messaging.schemas import OrderRequest

STALE = "KT409"
"""SQLSTATE of a guarded write whose rows moved since they were read (migration 0304)."""
PositionKey = tuple[str, str, str]
"""(namespace, strategy, symbol)"""


class Filler(Protocol):
    """Where a paper order fills: the executor's paper venue (the last price, the backtester's costs)."""

    def fill_for(self, order: Row, time_ms: int) -> dict[str, Any] | None: ...


READ = """
WITH want AS (SELECT %(want)s::jsonb AS j),
books AS (SELECT * FROM jsonb_to_recordset((SELECT j->'books' FROM want)) AS b(n text, s text)),
pairs AS (SELECT * FROM jsonb_to_recordset((SELECT j->'pairs' FROM want)) AS p(n text, s text, y text)),
l AS (
  SELECT namespace AS n, strategy AS s, cash FROM ledgers
  WHERE environment = %(e)s AND (namespace, strategy) IN (SELECT n, s FROM books)
),
p AS (
  SELECT namespace AS n, strategy AS s, symbol AS y, quantity AS q, average_price AS a, realised_pnl AS r, fees AS f
  FROM positions WHERE environment = %(e)s AND (namespace, strategy, symbol) IN (SELECT n, s, y FROM pairs)
),
o AS (
  SELECT namespace AS n, strategy AS s, symbol AS y, side, sum(quantity - filled_quantity) AS q,
         sum((quantity - filled_quantity) * price * (1 + fee_rate)) AS v
  FROM orders WHERE environment = %(e)s AND status IN ('pending', 'open', 'partially_filled')
    AND (namespace, strategy) IN (SELECT n, s FROM books)
  GROUP BY namespace, strategy, symbol, side
)
SELECT (SELECT coalesce(json_agg(l), '[]') FROM l) AS ledgers,
       (SELECT coalesce(json_agg(p), '[]') FROM p) AS positions,
       (SELECT coalesce(json_agg(o), '[]') FROM o) AS open,
       (SELECT count(*) FROM orders WHERE environment = %(e)s AND status IN ('pending', 'open', 'partially_filled')
          AND (namespace, strategy) IN (SELECT n, s FROM books)) AS open_count,
       EXISTS (SELECT 1 FROM orders WHERE client_order_id IN
               (SELECT jsonb_array_elements_text(j->'orders') FROM want)) AS known
"""
"""Everything the batch's decisions read, in one statement: its ledgers and positions, the open
orders that reserve cash or sell quantity, and whether any of its client order ids is already
recorded."""

WRITE = "SELECT kubetrade_paper_fill_batch(%(e)s, %(w)s::float8, %(open)s, %(batch)s::jsonb) AS ok"
"""The whole batch in one statement (migration 0304): orders and their fills, positions opened
(a plain INSERT: one that appeared since the read fails the batch) and moved (the stop, trail
and best price reset only when a fill opens it), ledger cash, and lifecycle events in order
(each order's ``pending`` before its ``filled``).  Positions and ledgers are guarded by the
values the decisions used, and the number of open orders of the batch's strategies by the
number they saw; SQLSTATE KT409 if anything moved, and then nothing is written."""


@dataclass
class _Batch:
    """What a batch writes, as the JSON document :data:`WRITE` unpacks, and what it returns."""

    orders: list[dict[str, Any]] = field(default_factory=list)
    opened: list[dict[str, Any]] = field(default_factory=list)
    moved: list[dict[str, Any]] = field(default_factory=list)
    ledgers: list[dict[str, Any]] = field(default_factory=list)
    out: list[tuple[Row, Row]] = field(default_factory=list)

    def document(self) -> str:
        return json.dumps(
            {"orders": self.orders, "opened": self.opened, "moved": self.moved, "ledgers": self.ledgers},
            allow_nan=False,
        )


@dataclass
class Memo:
    """The ledgers' cash and the positions as the fast path last read or wrote them.

    With every ledger and position of a batch remembered, the batch skips the read and is
    one statement: the write's guards check the remembered values (and that the strategies
    still have no open order) against the database, so a stale memo costs a failed
    statement and a re-read, never a wrong fill.  Anything the general path, a re-allocation
    or the risk manager changes is caught the same way.
    """

    cash: dict[tuple[str, str], float] = field(default_factory=dict)
    positions: dict[PositionKey, accounting.Position | None] = field(default_factory=dict)
    """None: no row (the batch opens the position with an INSERT)."""

    def knows(self, books: list[tuple[str, str]], pairs: list[PositionKey]) -> bool:
        return all(b in self.cash for b in books) and all(p in self.positions for p in pairs)

    def forget(self, books: list[tuple[str, str]], pairs: list[PositionKey]) -> None:
        for b in books:
            self.cash.pop(b, None)
        for p in pairs:
            self.positions.pop(p, None)

    def learn(self, batch: _Batch) -> None:
        """The values the batch's write set, computed as the database computed them."""
        for row in batch.ledgers:
            self.cash[(row["n"], row["s"])] = row["c0"] + row["d"]
        for row in batch.moved + batch.opened:
            self.positions[(row["n"], row["s"], row["y"])] = accounting.Position(row["q"], row["a"], row["r"], row["f"])


async def record_and_fill(
    conn: AsyncConnection[Row], venue: Filler, req: OrderRequest, now_ms: int, memo: Memo | None = None
) -> tuple[Row, Row] | None:
    """One order through the batch path: (order, fill) as recorded, or None for the general path."""
    done = await record_and_fill_batch(conn, venue, [req], now_ms, memo)
    return done[0] if done else None


async def record_and_fill_batch(
    conn: AsyncConnection[Row], venue: Filler, reqs: list[OrderRequest], now_ms: int, memo: Memo | None = None
) -> list[tuple[Row, Row]] | None:
    """A batch of new paper market orders, recorded and filled in one or two statements; or None.

    One statement (the guarded write) when ``memo`` remembers every ledger and position of
    the batch, two (read, then write) otherwise.  The connection must be idle in autocommit
    mode: the write is one statement, and so its own transaction.  None means nothing was
    written and the caller takes the per-order path.
    """
    status = conn.info.transaction_status
    if conn.broken or conn.closed or status in (pq.TransactionStatus.UNKNOWN, pq.TransactionStatus.INERROR,
                                                 pq.TransactionStatus.INTRANS):
        # lost, or left inside a transaction: the caller replaces the connection (it reconnects
        # and reconciles on OperationalError); reported as anything else, every order would be
        # retried on the same connection forever
        raise psycopg.OperationalError(f"the executor's database connection is unusable ({status.name})")
    if status != pq.TransactionStatus.IDLE or not conn.autocommit:
        raise RuntimeError(f"the paper fast path needs an idle autocommit connection, not {status.name}")
    if not reqs or any(r.type != "market" for r in reqs):
        return None
    coids = [r.client_order_id for r in reqs]
    env = reqs[0].environment
    if len(set(coids)) != len(coids) or any(r.environment != env for r in reqs):
        return None
    books = sorted({(r.namespace, r.strategy) for r in reqs})
    pairs = sorted({(r.namespace, r.strategy, r.symbol) for r in reqs})
    memo = memo if memo is not None else Memo()
    if memo.knows(books, pairs):
        cash = {b: memo.cash[b] for b in books}
        positions = {p: pos for p in pairs if (pos := memo.positions[p]) is not None}
        done = await _write(conn, venue, reqs, env, cash, positions, [], 0, now_ms, memo)
        if done is not None:
            return done
        memo.forget(books, pairs)  # stale, or the batch cannot take the fast path: read and try once more
    want = json.dumps(
        {
            "books": [{"n": n, "s": st} for n, st in books],
            "pairs": [{"n": n, "s": st, "y": y} for n, st, y in pairs],
            "orders": coids,
        }
    )
    cur = await conn.execute(READ, {"e": env, "want": want})
    got = await cur.fetchone()
    assert got is not None
    cash = {(r["n"], r["s"]): float(r["cash"]) for r in got["ledgers"]}
    positions = {
        (r["n"], r["s"], r["y"]): accounting.Position(float(r["q"]), float(r["a"]), float(r["r"]), float(r["f"]))
        for r in got["positions"]
    }
    if got["known"] or len(cash) != len(books):
        return None
    return await _write(conn, venue, reqs, env, cash, positions, got["open"], int(got["open_count"]), now_ms, memo)


async def _write(
    conn: AsyncConnection[Row],
    venue: Filler,
    reqs: list[OrderRequest],
    env: str,
    cash: dict[tuple[str, str], float],
    positions: dict[PositionKey, accounting.Position],
    open_rows: list[Row],
    open_count: int,
    now_ms: int,
    memo: Memo,
) -> list[tuple[Row, Row]] | None:
    """Decide the batch on these values and write it, guarded by them; None if it cannot or they moved."""
    batch = _plan(venue, reqs, env, cash, positions, open_rows, now_ms)
    if batch is None:
        return None
    try:
        await conn.execute(WRITE, {"e": env, "w": now_ms, "open": open_count, "batch": batch.document()})
    except (psycopg.errors.UniqueViolation, psycopg.errors.CheckViolation, psycopg.errors.ForeignKeyViolation):
        return None  # a replay or a position opened since the read; the general path sorts it out
    except psycopg.DatabaseError as exc:
        if exc.sqlstate == STALE:
            return None
        raise
    memo.learn(batch)
    return batch.out


def _plan(
    venue: Filler,
    reqs: list[OrderRequest],
    env: str,
    cash: dict[tuple[str, str], float],
    positions: dict[PositionKey, accounting.Position],
    open_rows: list[Row],
    now_ms: int,
) -> _Batch | None:
    """Fill every order in memory, in arrival order; None if any one cannot take the fast path."""
    read = dict(positions)
    cash_read = dict(cash)
    reserved: dict[tuple[str, str], float] = {}
    selling: dict[PositionKey, float] = {}
    for r in open_rows:
        if r["side"] == "buy":
            k2 = (r["n"], r["s"])
            reserved[k2] = reserved.get(k2, 0.0) + float(r["v"])
        else:
            selling[(r["n"], r["s"], r["y"])] = float(r["q"])
    when = datetime.fromtimestamp(now_ms / 1000, UTC)
    batch = _Batch()
    marks: dict[PositionKey, tuple[str, float]] = {}
    opener: dict[PositionKey, tuple[OrderRequest, float]] = {}
    """The order (and its fill price) that opened a position in this batch: it sets the stop."""
    deltas: dict[tuple[str, str], list[float]] = {}
    for req in reqs:
        book, key = (req.namespace, req.strategy), (req.namespace, req.strategy, req.symbol)
        pos = positions.get(key, accounting.Position())
        order: Row = {
            "client_order_id": req.client_order_id,
            "environment": env,
            "namespace": req.namespace,
            "strategy": req.strategy,
            "exchange": req.exchange,
            "symbol": req.symbol,
            "side": req.side,
            "type": "market",
            "quantity": req.quantity,
            "price": req.price,
            "filled_quantity": 0.0,
            "slippage_bps": req.slippage_bps,
            "fee_rate": req.fee_rate,
            "reduce_only": req.reduce_only,
            "bar_exit": req.bar_exit.to_k8s() if req.bar_exit is not None else None,
        }
        fill = venue.fill_for(order, now_ms)
        if (
            fill is None
            or accounting.spend_check(
                cash[book],
                reserved.get(book, 0.0),
                req.side,
                req.quantity,
                fill["price"],
                req.fee_rate,
                pos.quantity - selling.get(key, 0.0),
                is_spot(req.symbol),
                req.reduce_only,
            )
            is not None
        ):
            return None
        new_pos, realised = accounting.apply_fill(pos, req.side, fill["quantity"], fill["price"], fill["fee"])
        opened = new_pos.quantity != 0 and (pos.quantity == 0 or (pos.quantity > 0) != (new_pos.quantity > 0))
        positions[key] = new_pos
        marks[key] = (req.exchange, fill["price"])
        if opened:
            opener[key] = (req, fill["price"])
        elif new_pos.quantity == 0:
            opener.pop(key, None)
        delta = accounting.cash_after_fill(0.0, req.side, fill["quantity"], fill["price"], fill["fee"])
        cash[book] += delta
        d = deltas.setdefault(book, [0.0, 0.0, 0.0])
        d[0] += delta
        d[1] += realised
        d[2] += fill["fee"]
        batch.orders.append(
            {
                "c": req.client_order_id,
                "n": req.namespace,
                "s": req.strategy,
                "x": req.exchange,
                "y": req.symbol,
                "sd": req.side,
                "q": req.quantity,
                "p": req.price,
                "sp": req.stop_price,
                "tp": req.trailing_pct,
                "ro": req.reduce_only,
                "fr": req.fee_rate,
                "sb": req.slippage_bps,
                "fq": fill["quantity"],
                "fp": fill["price"],
                "fe": fill["fee"],
                "da": req.time,
                "ea": req.expires_at,
                "t": fill["trade_id"],
                "fc": fill["fee_currency"],
                "r": realised,
            }
        )
        order.update(status="filled", filled_quantity=fill["quantity"], average_price=fill["price"], fee=fill["fee"])
        batch.out.append(
            (
                order,
                {
                    "trade_id": fill["trade_id"],
                    "quantity": fill["quantity"],
                    "price": fill["price"],
                    "fee": fill["fee"],
                    "fee_currency": fill["fee_currency"],
                    "time": when,
                },
            )
        )
    for key in sorted(marks):
        pos, (exchange, mark) = positions[key], marks[key]
        opened_by = opener.get(key)
        first = opened_by[0] if opened_by else None
        row = {
            "n": key[0],
            "s": key[1],
            "y": key[2],
            "q": pos.quantity,
            "a": pos.average_price,
            "r": pos.realised_pnl,
            "f": pos.fees,
            "m": mark,
            "sp": first.stop_price if first is not None and not first.reduce_only else None,
            "tp": first.trailing_pct if first is not None else None,
            "bp": opened_by[1] if opened_by else mark,
        }
        if key in read:
            before = read[key]
            batch.moved.append(
                {
                    **row,
                    "o": first is not None,
                    "q0": before.quantity,
                    "a0": before.average_price,
                    "r0": before.realised_pnl,
                    "f0": before.fees,
                }
            )
        else:
            batch.opened.append({**row, "x": exchange})
    batch.ledgers = [
        {"n": ns, "s": strategy, "d": d[0], "r": d[1], "f": d[2], "c0": cash_read[(ns, strategy)]}
        for (ns, strategy), d in sorted(deltas.items())
    ]
    return batch
