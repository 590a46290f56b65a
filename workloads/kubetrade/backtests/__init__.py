"""Backtests asked for through the API: recorded in ``backtests``, run as a Job on a cluster
(``kubetrade backtest-job <id>``) or as a task of the API process locally; both run
:func:`kubetrade.backtests.execute.execute`, so the result does not depend on where it ran.
"""
