"""The strategy engine: indicators, backtester, genome compiler and evolution.

Layers, lowest first:

* ``kernels`` (numba indicator loops) and ``backtest`` (the numba bar loop) hold the hot
  code; their slow plain-Python twins live in the test bed (``kubetrade_testbed.reference``).
* ``indicators`` (registry: names, parameters, outputs), ``compile`` (genomes -> kernel
  tables + the live signal function), ``performance`` (Sharpe, drawdown, deflated Sharpe)
  and ``runs`` (the Python-facing API).
* ``genes`` and ``evolve`` (the NSGA-II genome search over candles; a Goal's whole run, with
  pair selection and Strategy resources, is :mod:`kubetrade.goalevolution`), ``publish``
  (Strategy manifests, PostgreSQL), ``templates``, ``plot`` and ``commands`` (the
  ``kubetrade backtest|evolve`` CLI).

Kernels are compiled with ``cache=True``; numba keeps the machine code next to the
sources or, where that is read-only (an installed image), in ``$NUMBA_CACHE_DIR``.  A
long-running role calls :func:`warmup` at start so no bar ever waits for the compiler.
"""

from __future__ import annotations


def warmup() -> None:
    """Compile (or load from the numba cache) every kernel on a few synthetic bars."""
    import numpy as np

    from kubetrade.candles import from_arrays
    from kubetrade.engine import indicators
    from kubetrade.engine.live import LiveSignal
    from kubetrade.engine.runs import Costs, backtest, backtest_many
    from kubetrade.engine.templates import ema_cross

    n = 300
    close = 100 + np.cumsum(np.sin(np.arange(n) / 7.0))
    c = from_arrays(np.arange(n) * 60_000, close, close + 1, close - 1, close, np.ones(n), timeframe="1m")
    for name in list(indicators.REGISTRY):
        indicators.compute(name, c, {})
    backtest(ema_cross(5, 20), c, Costs())
    backtest_many([ema_cross(5, 20)], c, Costs())
    LiveSignal(ema_cross(5, 20)).on_bar(0, 1.0, 1.0, 1.0, 1.0, 1.0)
