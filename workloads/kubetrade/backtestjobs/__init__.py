"""Backtest jobs (``kubetrade backtest-job <id>``): backtests asked for through the API,
recorded in the ``backtests`` table, run as a Job on a cluster or as a task of the API
process locally; both run :func:`kubetrade.backtestjobs.execute.execute`, so the result does
not depend on where it ran.  The backtester itself is :mod:`kubetrade.engine.backtest` (the
numba bar loop) behind :mod:`kubetrade.engine.runs`.
"""
