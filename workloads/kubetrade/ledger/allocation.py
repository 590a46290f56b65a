"""A strategy's ledger, created or resized to its capital.

Whoever applies a Strategy's capital calls this: its runner when it starts, ``kubetrade
executor allocate``, the local stack.  It is the one write to the order record outside the
executor, and it touches only ``ledgers``' capital, cash and risk policy; idempotent.
"""

from __future__ import annotations

from psycopg import AsyncConnection

from kubetrade.ledger.connection import Row


async def allocate(
    conn: AsyncConnection[Row],
    environment: str,
    strategy: str,
    capital: float,
    namespace: str = "default",
    risk_policy: str | None = None,
    currency: str = "USDT",
) -> None:
    """Create or resize a strategy's ledger; resizing moves cash by the change in capital."""
    await conn.execute(
        """INSERT INTO ledgers (environment, namespace, strategy, risk_policy, currency, capital, cash)
           VALUES (%(e)s, %(n)s, %(s)s, %(p)s, %(c)s, %(k)s, %(k)s)
           ON CONFLICT (environment, namespace, strategy) DO UPDATE
           SET cash = ledgers.cash + EXCLUDED.capital - ledgers.capital, capital = EXCLUDED.capital,
               risk_policy = COALESCE(EXCLUDED.risk_policy, ledgers.risk_policy), updated_at = now()""",
        {"e": environment, "n": namespace, "s": strategy, "p": risk_policy, "c": currency, "k": capital},
    )

