"""The stop columns of ``positions``: the one part of a position the risk manager writes.

The executor sets a position's stop (level, trail, best price) when a fill opens it, from
the order that opened it; from then on the risk manager's stop watch owns those columns:
it tightens trailing stops and, when a stop's closing order failed, moves the stop to its
next generation (so the next trigger sends a closing order with a new client order id).
Quantities, prices, PnL and fees stay the executor's.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from kubetrade.ledger.connection import Row


async def tighten(conn: AsyncConnection[Row], moved: list[dict[str, Any]]) -> None:
    """Write tightened stops back, all in one transaction.  Each row: ``s`` the stop level, ``b``
    the best price, ``a`` the position's average price the stop belongs to (a position reopened
    since at another price is left alone), ``e``/``n``/``t``/``y`` its environment, namespace,
    strategy and symbol.  Monotonic in SQL too: a stop never loosens and a best price never goes
    back, whatever an older view of the stop says."""
    if not moved:
        return
    async with conn.transaction(), conn.cursor() as cur:  # one commit, the statements pipelined
        await cur.executemany(
            """UPDATE positions SET
                 stop_price = CASE WHEN quantity > 0 THEN GREATEST(COALESCE(stop_price, %(s)s), %(s)s)
                                   ELSE LEAST(COALESCE(stop_price, %(s)s), %(s)s) END,
                 best_price = CASE WHEN quantity > 0 THEN GREATEST(COALESCE(best_price, %(b)s), %(b)s)
                                   ELSE LEAST(COALESCE(best_price, %(b)s), %(b)s) END
               WHERE environment = %(e)s AND namespace = %(n)s AND strategy = %(t)s AND symbol = %(y)s
                 AND average_price = %(a)s""",
            moved,
        )


async def next_generation(conn: AsyncConnection[Row], environment: str, namespace: str, strategy: str,
                          symbol: str) -> None:
    """A stop whose closing order failed: its next trigger gets a new client order id."""
    await conn.execute(
        "UPDATE positions SET stop_generation = stop_generation + 1 WHERE environment = %s "
        "AND namespace = %s AND strategy = %s AND symbol = %s",
        (environment, namespace, strategy, symbol),
    )
