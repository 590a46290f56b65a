"""The order executor: one per environment (paper, live), a singleton, that never loses or
doubles an order.

Layers: ``ledger`` and ``lifecycle`` are pure (position/PnL arithmetic, allowed status
changes, reading an exchange's order); ``store`` is the PostgreSQL record (the one source
of truth for what was decided and what happened); ``venues`` talks to the market (paper
fills against live NATS data with the backtester's cost model, or ccxt); ``executor`` is the
JetStream consumer with reconciliation; ``lease`` keeps a second executor of the same
environment from starting.
"""
